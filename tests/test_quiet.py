"""Quiet means quiet: TensorFlow's native log lines (``I0000 ... port.cc]
oneDNN custom operations are on``, ``E0000 ... NodeDef mentions attribute``)
never reach the user's stderr from a ditmos command unless ``--debug``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from ditmos.tfenv import is_native_log_line

NATIVE = re.compile(r"^[IWE]\d{4} \d\d:\d\d:|InitializeLog|oneDNN", re.M)


def _env(**extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL", "GLOG_minloglevel", "DITMOS_DEBUG")
    }
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"  # makes TensorFlow print its oneDNN notice on any CPU
    env.update(extra)
    return env


def test_native_line_pattern():
    assert is_native_log_line(b"I0000 00:00:1796175647.895098   24126 port.cc:153] oneDNN custom operations are on.")
    assert is_native_log_line(
        b"E0000 00:00:1764.5 12 meta_optimizer.cc:967] NodeDef mentions "
        b"attribute use_unbounded_threadpool which is not in the op definition"
    )
    assert is_native_log_line(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_native_log_line(b"F0000 00:00:1764.5 12 check.cc:1] fatal: check failed")
    assert not is_native_log_line(b"ditmos: error: something real")
    assert not is_native_log_line(b"Traceback (most recent call last):")


def test_tensorflow_import_prints_native_lines_without_the_filter():
    """The control: plain TensorFlow does print (else the next test proves nothing)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, timeout=300, env=_env()
    )
    assert proc.returncode == 0 and NATIVE.search(proc.stderr), proc.stderr


def test_filter_drops_native_lines_and_keeps_everything_else():
    code = (
        "import os, sys\n"
        "import ditmos\n"
        "from ditmos.tfenv import filter_native_stderr\n"
        "assert filter_native_stderr()\n"
        "import tensorflow as tf\n"
        "tf.constant(1.0) + 1.0\n"
        "print('python stderr', file=sys.stderr)\n"
        "os.write(2, b'native but not a log line\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["python stderr", "native but not a log line"], proc.stderr


@pytest.mark.slow
def test_train_quiet_prints_nothing_on_stderr(tmp_path):
    """A real (tiny) training run from the command line: stdout has the result
    line, stderr stays empty."""
    from ditmos.training.testing import tiny_config

    cfg = tiny_config()
    for stage in ("strong", "classifier_pretrain", "selector_pretrain"):
        cfg[stage] = dict(cfg[stage], epochs=1)
    cfg["adversarial"] = dict(cfg["adversarial"], rounds=1, selector_epochs=1, classifier_epochs=1)
    cfg["split"] = dict(cfg["split"], n_init=1)
    (tmp_path / "tiny.json").write_text(json.dumps(cfg))
    args = [
        sys.executable,
        "-m",
        "ditmos",
        "train",
        "--dataset",
        "hapt",
        "--config",
        str(tmp_path / "tiny.json"),
        "--quiet",
    ]
    proc = subprocess.run(
        args + ["--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=900, env=_env(), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    assert "test accuracy DiTMoS" in proc.stdout
