"""The wheel works outside a checkout: build, install, run the whole pipeline.

What the test does, and why it is built this way:

1. **Clean source tree.**  The files git tracks (``git ls-files``, symlinks
   kept as symlinks, current contents) are copied to a temporary folder, so
   nothing untracked (``.venv``, ``runs/``, build outputs) can leak into the
   package, just as in a fresh clone.
2. **sdist and wheel.**  ``python -m build --no-isolation`` builds the sdist
   and then the wheel *from the sdist*, so a file missing from the sdist also
   breaks the wheel.  ``--no-isolation`` uses this environment's setuptools
   and ``build`` (test extras) instead of downloading them: offline and
   about 15 s.
3. **Fresh venv, shared heavy dependencies.**  ``python -m venv --without-pip``
   makes an empty environment; this environment's pip installs the wheel into
   it (``pip --python NEW install --no-deps --no-index``), which creates the
   ``ditmos`` console script as for a user.  TensorFlow and the other
   dependencies are not reinstalled (gigabytes, minutes, network): a ``.pth``
   file appends this environment's site-packages to the new one's
   ``sys.path``.  The new venv's own site-packages comes first, so ``import
   ditmos`` finds the wheel's copy; the ``.pth`` line adds a plain path (its
   own ``.pth`` files, e.g. an editable install of ditmos, are not run).
   ``--system-site-packages`` would not help: the dependencies live in a venv.
4. **Nothing read from the checkout.**  Every command runs from a temporary
   folder with ``PYTHONPATH`` removed, and under a Python audit hook
   (installed by another ``.pth`` in the new venv) that logs every opened,
   listed, copied or executed path lying in the checkout, the source copy or
   the location of an editable install.  The log must stay empty, the package
   and its assets must resolve inside the new venv, and no generated file may
   mention the checkout.
5. **The pipeline.**  ``ditmos --version``, ``doctor``, ``data list``, a tiny
   training run (the ``tiny_config`` overrides as a ``--config`` file),
   ``quantize``, ``build --board mps2_an500``, ``evaluate --emulate`` on the
   first test samples (0 mismatches), ``build --board nucleo_f767zi`` (an ELF)
   and a bad-input error: none of them may print a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]

# Installed into the new venv as _ditmos_guard.py + a .pth that imports it.
_GUARD = r"""
import os, sys

_LOG = os.environ.get("DITMOS_GUARD_LOG")
_FORBID = [p for p in os.environ.get("DITMOS_GUARD_FORBID", "").split(os.pathsep) if p]
_ALLOW = [p for p in os.environ.get("DITMOS_GUARD_ALLOW", "").split(os.pathsep) if p]
_PREFIXES = ("open", "os.", "shutil.", "glob.", "subprocess.", "pathlib.")
_busy = []


def _under(path, roots):
    return any(path == r or path.startswith(r + os.sep) for r in roots)


def _paths(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _paths(a)
        elif isinstance(a, (str, bytes, os.PathLike)):
            try:
                p = os.fsdecode(a)
            except (TypeError, ValueError):
                continue
            if p and (os.sep in p or os.path.exists(p)):
                yield p


def _hook(event, args):
    if _busy or not event.startswith(_PREFIXES):
        return
    _busy.append(1)
    try:
        for p in _paths(args):
            for cand in {os.path.abspath(p), os.path.realpath(p)}:
                if _under(cand, _FORBID) and not _under(os.path.realpath(p), _ALLOW):
                    with open(_LOG, "a") as f:
                        f.write(f"{os.getpid()} {event} {p}\n")
                    break
    finally:
        _busy.pop()


if _LOG and _FORBID:
    sys.addaudithook(_hook)
"""


def _run(cmd, *, cwd, env, timeout=600, ok=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    shown = " ".join(str(c) for c in cmd)
    if ok:
        assert proc.returncode == 0, f"{shown}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, f"{shown} printed a traceback:\n{proc.stderr}"
    return proc


def _clean_copy(dest: Path) -> Path:
    """The tracked files of the checkout, as a fresh clone would have them."""
    listed = (
        subprocess.run(["git", "-C", str(CHECKOUT), "ls-files", "-z"], capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src, dst = CHECKOUT / rel, dest / rel
        if not (src.exists() or src.is_symlink()):
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)
    return dest


def _editable_location() -> list[str]:
    """Where an editable install of ditmos in this environment points, if any."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        text = distribution("ditmos").read_text("direct_url.json")
    except PackageNotFoundError:
        return []
    if not text:
        return []
    url = json.loads(text).get("url", "")
    return [os.path.realpath(url[len("file://") :])] if url.startswith("file://") else []


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_wheel_installs_and_runs_the_pipeline_outside_the_checkout(tmp_path):
    for mod in ("build", "setuptools"):
        assert __import__("importlib").util.find_spec(mod), (
            f"the packaging test needs '{mod}' (pip install -e '.[test]')"
        )
    src = _clean_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DITMOS_DEBUG", "PYTHONHOME")}
    base_env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    base_env["MPLBACKEND"] = "Agg"

    # -- sdist, then the wheel built from it ------------------------------------------
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, src], cwd=tmp_path, env=base_env)
    (sdist,) = dist.glob("ditmos-*.tar.gz")
    (wheel,) = dist.glob("ditmos-*-py3-none-any.whl")
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
        metadata = zf.read(next(n for n in in_wheel if n.endswith(".dist-info/METADATA")))
    shipped = [
        "ditmos/boards/boards.json",
        "ditmos/_assets/templates/model.c.j2",
        "ditmos/_assets/firmware/tools/ditmos_insn_plugin.c",
        "ditmos/_assets/firmware/runtime/ditmos_main.c",
        "ditmos/_assets/datasets/hapt/hapt.npz",
        "ditmos/_assets/datasets/hapt/README.md",
        "ditmos/_assets/datasets/hapt/LICENSE",
        "ditmos/_assets/datasets/fsdd/fsdd.npz",
        "ditmos/_assets/datasets/fsdd/LICENSE",
    ]
    for name in shipped:
        assert name in in_sdist, f"{name} missing from the sdist"
        assert name in in_wheel, f"{name} missing from the wheel"
    meta = metadata.decode()
    assert "License-Expression: Apache-2.0 AND CC-BY-4.0 AND CC-BY-SA-4.0" in meta
    for lic in ("LICENSE", "datasets/hapt/LICENSE", "datasets/fsdd/LICENSE"):
        assert f"License-File: {lic}" in meta

    # -- a fresh venv with the wheel; dependencies shared ------------------------------
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=base_env)
    py = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            py,
            "install",
            "--no-deps",
            "--no-index",
            "--no-compile",
            "--disable-pip-version-check",
            "-q",
            wheel,
        ],
        cwd=tmp_path,
        env=base_env,
    )
    site = Path(
        subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    shared = os.path.realpath(sysconfig.get_path("purelib"))
    shared_plat = os.path.realpath(sysconfig.get_path("platlib"))
    (site / "_shared_deps.pth").write_text("\n".join(dict.fromkeys([shared, shared_plat])) + "\n")
    (site / "_ditmos_guard.py").write_text(_GUARD)
    (site / "_ditmos_guard.pth").write_text("import _ditmos_guard\n")

    work = tmp_path / "user project"  # outside the checkout, with a space for good measure
    work.mkdir()
    guard_log = tmp_path / "checkout_reads.log"
    forbid = {str(CHECKOUT), os.path.realpath(CHECKOUT), str(src), *_editable_location()}
    allow = {shared, shared_plat, os.path.realpath(sys.prefix), os.path.realpath(venv)}
    env = dict(base_env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{base_env.get('PATH', '')}"
    env["DITMOS_GUARD_LOG"] = str(guard_log)
    env["DITMOS_GUARD_FORBID"] = os.pathsep.join(sorted(forbid))
    env["DITMOS_GUARD_ALLOW"] = os.pathsep.join(sorted(allow))
    ditmos = venv / "bin" / "ditmos"

    # The guard is live: reading a checkout file from the new venv is logged.
    _run([py, "-c", f"open({str(CHECKOUT / 'pyproject.toml')!r}).close()"], cwd=work, env=env)
    assert "pyproject.toml" in guard_log.read_text()
    guard_log.unlink()

    # The wheel's package (not the checkout's) is imported, and its data resolve inside it.
    where = json.loads(
        _run(
            [
                py,
                "-c",
                (
                    "import json, ditmos, ditmos.paths as p; print(json.dumps({"
                    "'pkg': ditmos.__file__, 'root': str(p.package_root()), "
                    "'files': [str(f) for f in p.all_resources()]}))"
                ),
            ],
            cwd=work,
            env=env,
        ).stdout
    )
    pkg_dir = os.path.realpath(site / "ditmos")
    assert os.path.realpath(where["pkg"]).startswith(pkg_dir + os.sep)
    assert os.path.realpath(where["root"]) == pkg_dir
    assert len(where["files"]) > 40
    for f in where["files"]:
        assert os.path.realpath(f).startswith(pkg_dir + os.sep), f
        assert not Path(f).is_symlink(), f
    for lic in ("hapt", "fsdd"):
        assert (site / "ditmos/_assets/datasets" / lic / "LICENSE").is_file()

    # -- the pipeline, as a user would run it ------------------------------------------
    assert "0.1.0" in _run([ditmos, "--version"], cwd=work, env=env).stdout
    _run([ditmos, "doctor"], cwd=work, env=env)
    listed = _run([ditmos, "data", "list"], cwd=work, env=env).stdout
    assert "hapt" in listed and "fsdd" in listed

    from ditmos.training.testing import tiny_config

    (work / "tiny.json").write_text(json.dumps(tiny_config("hapt")))
    _run(
        [
            ditmos,
            "train",
            "--dataset",
            "hapt",
            "--preset",
            "quick",
            "--config",
            "tiny.json",
            "--out",
            "runs/tiny",
            "--quiet",
        ],
        cwd=work,
        env=env,
    )
    _run([ditmos, "quantize", "runs/tiny", "--calibration-samples", "200", "--quiet"], cwd=work, env=env)
    _run(
        [ditmos, "build", "--board", "mps2_an500", "--run", "runs/tiny", "--out", "build/mps2", "--quiet"],
        cwd=work,
        env=env,
    )
    _run(
        [
            ditmos,
            "evaluate",
            "--run",
            "runs/tiny",
            "--build",
            "build/mps2",
            "--emulate",
            "--limit",
            "40",
            "--out",
            "eval",
            "--quiet",
        ],
        cwd=work,
        env=env,
    )
    report = json.loads((work / "eval" / "report.json").read_text())
    assert report["samples"] == 40 and report["mismatches"] == 0, report
    _run(
        [ditmos, "build", "--board", "nucleo_f767zi", "--run", "runs/tiny", "--out", "build/nucleo", "--quiet"],
        cwd=work,
        env=env,
    )
    assert (work / "build/nucleo/firmware.elf").stat().st_size > 0
    assert json.loads((work / "build/nucleo/manifest.json").read_text())["board"] == "nucleo_f767zi"
    bad = _run([ditmos, "emulate", "--build", "no-such-build"], cwd=work, env=env, ok=False)
    assert bad.returncode == 2 and bad.stderr.startswith("ditmos: error: ")

    # -- nothing came from the checkout ------------------------------------------------
    reads = guard_log.read_text() if guard_log.exists() else ""
    assert reads == "", f"files of the checkout were used:\n{reads[:3000]}"
    needles = sorted(forbid)
    for f in work.rglob("*"):
        if f.is_file() and f.suffix in (".c", ".h", ".json", ".ini", ".ld", ".mk", "") and f.stat().st_size < 5_000_000:
            text = f.read_bytes().decode("utf-8", "replace")
            for needle in needles:
                assert needle not in text, f"{f} mentions {needle}"
