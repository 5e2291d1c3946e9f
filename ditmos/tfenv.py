"""TensorFlow's process environment, set before TensorFlow is imported.

Imported by ``ditmos/__init__.py``, so it takes effect for every ``ditmos``
command and for library use, as long as ``ditmos`` is imported before
TensorFlow.  Two settings:

* ``TF_ENABLE_ONEDNN_OPTS=1``.  The K classifiers train as one grouped
  convolution, and TensorFlow computes gradients of grouped convolutions on
  the CPU only through oneDNN.  TensorFlow switches oneDNN on by itself only
  on CPUs with AVX-512-class instructions; on others (e.g. AVX2-only
  machines) training would stop with "Gradients for grouped convolutions are
  not supported on CPU".  A value the user set is kept.
* Quiet native logging.  TensorFlow's C++ code writes lines such as
  ``I0000 ... cpu_feature_guard`` or ``E0000 ... NodeDef mentions attribute
  use_unbounded_threadpool`` to stderr, independent of ``--quiet``; an ``E``
  line in a successful run wrongly tells the user something broke.  Unless
  debugging (``ditmos --debug`` or ``DITMOS_DEBUG=1``), ``TF_CPP_MIN_LOG_LEVEL``
  is set to 3 (fatal only) and absl's ``ABSL_MIN_LOG_LEVEL``/``GLOG_minloglevel``
  likewise; real failures still surface as Python exceptions.  A
  ``TF_CPP_MIN_LOG_LEVEL`` the user set explicitly is kept.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "ABSL_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3"}
_set_by_us: set[str] = set()


def _setdefault(name: str, value: str) -> None:
    if name not in os.environ:
        os.environ[name] = value
        _set_by_us.add(name)


def configure(debug: bool | None = None) -> None:
    """Set TensorFlow's environment (see the module doc).  ``debug=True``
    undoes the quiet settings this module made (not the user's own)."""
    if debug is None:
        debug = bool(os.environ.get("DITMOS_DEBUG"))
    _setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if debug:
        for name in _QUIET:
            if name in _set_by_us:
                os.environ.pop(name, None)
                _set_by_us.discard(name)
        return
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ and "TF_CPP_MIN_LOG_LEVEL" not in _set_by_us:
        return  # the user chose TensorFlow's verbosity
    for name, value in _QUIET.items():
        _setdefault(name, value)
    _quiet_python_loggers()


def _quiet_python_loggers() -> None:
    """TensorFlow's and absl's Python loggers: errors only."""
    import logging

    for name in ("tensorflow", "absl", "h5py", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --------------------------------------------------------------------------- #
# Native log lines written to fd 2 regardless of TF_CPP_MIN_LOG_LEVEL
# --------------------------------------------------------------------------- #

# Some lines are written before TensorFlow reads its log level (e.g. the
# "oneDNN custom operations are on" notice, once per TensorFlow library that
# loads, through absl before absl::InitializeLog).  They are filtered at the
# file-descriptor level: fd 2 becomes a pipe read by a thread that drops
# native INFO/WARNING/ERROR log lines and their known continuation lines and
# passes everything else (fatal "F" lines, compiler output of child
# processes, ...) to the real stderr.  Python's own sys.stderr is re-pointed
# at the real stderr, so tracebacks, progress bars and terminal detection are
# unaffected.
_NATIVE_LINE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./+-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|To enable the following instructions: .* rebuild TensorFlow"
    rb"|\t \[\[\{\{node )"
)
_filter: dict | None = None


def is_native_log_line(line: bytes) -> bool:
    """True for a line TensorFlow/absl's C++ logging writes (not a fatal one)."""
    return bool(_NATIVE_LINE.match(line))


def filter_native_stderr() -> bool:
    """Install the fd-2 filter for the rest of the process (idempotent).
    Returns False (and does nothing) when stderr is not fd 2 (e.g. captured
    by a test runner), when debugging or when the user set
    ``TF_CPP_MIN_LOG_LEVEL``."""
    global _filter
    if _filter is not None:
        return True
    if os.environ.get("DITMOS_DEBUG") or "TF_CPP_MIN_LOG_LEVEL" not in _set_by_us:
        return False  # debugging, or the user chose TensorFlow's verbosity
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return False
    except (AttributeError, OSError, ValueError):
        return False
    sys.stderr.flush()
    real = os.dup(2)
    r, w = os.pipe()
    os.dup2(w, 2)
    os.close(w)
    old = sys.stderr
    sys.stderr = open(
        real, "w", buffering=1, encoding=old.encoding or "utf-8", errors=old.errors or "backslashreplace", closefd=False
    )

    def pump():
        pending = b""
        while True:
            try:
                chunk = os.read(r, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = b"".join(ln + b"\n" for ln in lines if not is_native_log_line(ln))
            if out:
                os.write(real, out)
        if pending and not is_native_log_line(pending):
            os.write(real, pending)
        os.close(r)

    thread = threading.Thread(target=pump, name="ditmos-stderr-filter", daemon=True)
    thread.start()
    _filter = {"real": real, "thread": thread, "python_stderr": old}
    atexit.register(_restore_stderr)
    return True


def _restore_stderr() -> None:
    """Give fd 2 back to the real stderr and let the filter drain."""
    global _filter
    if _filter is None:
        return
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(_filter["real"], 2)  # closes our end of the pipe: the pump sees EOF
    _filter["thread"].join(timeout=2.0)  # child processes may still hold the pipe
    _filter = None
