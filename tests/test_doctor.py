"""`ditmos doctor` names the missing system tools and the one apt command that
installs them; its exit code says whether a required tool is missing."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REQUIRED = [
    "ditmos data files",
    "Python dependencies",
    "make",
    "gcc",
    "arm-none-eabi-gcc",
    "arm-none-eabi-objcopy",
    "newlib (arm-none-eabi libc)",
    "qemu-system-arm",
]


def _doctor(path_dirs: list[Path] | None, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path_dirs is not None:
        env["PATH"] = os.pathsep.join(str(d) for d in path_dirs)
    return subprocess.run(
        [sys.executable, "-m", "ditmos", "doctor", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _only(tmp_path: Path, *tools: str) -> Path:
    """A PATH folder holding links to just these tools of this machine."""
    d = tmp_path / "bin"
    d.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found, f"{tool} is needed on this machine for the test (scripts/setup.sh)"
        (d / tool).symlink_to(found)
    return d


def test_this_machine_has_every_required_tool():
    proc = _doctor(None, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    for name in REQUIRED:
        assert checks[name]["required"] and checks[name]["ok"], checks[name]
    assert report["ok"] and report["install"] is None
    assert "libc.a" in checks["newlib (arm-none-eabi libc)"]["detail"]


def test_missing_tools_are_named_with_one_apt_command(tmp_path):
    proc = _doctor([_only(tmp_path, "make")])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    for name in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm", "newlib (arm-none-eabi libc)"):
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert "MISSING" in line, line
    assert next(ln for ln in out.splitlines() if ln.startswith("make ")).split()[1] == "ok"
    install = [ln.strip() for ln in out.splitlines() if "apt-get install -y gcc" in ln]
    assert len(install) == 1, out
    assert install[0].split("apt-get install -y ")[1].split() == [
        "gcc",
        "gcc-arm-none-eabi",
        "libnewlib-arm-none-eabi",
        "qemu-system-arm",
    ]
    assert "Traceback" not in proc.stderr


def test_only_qemu_missing(tmp_path):
    bin_dir = _only(tmp_path, "make", "gcc", "arm-none-eabi-gcc", "arm-none-eabi-objcopy")
    proc = _doctor([bin_dir], "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    missing = [c["name"] for c in report["checks"] if c["required"] and not c["ok"]]
    assert missing == ["qemu-system-arm"]
    assert report["install"].endswith("apt-get install -y qemu-system-arm")


def test_optional_tools_do_not_fail_the_check(tmp_path):
    bin_dir = _only(tmp_path, "make", "gcc", "arm-none-eabi-gcc", "arm-none-eabi-objcopy", "qemu-system-arm")
    proc = _doctor([bin_dir], "--json")
    assert proc.returncode == 0, proc.stdout
    report = json.loads(proc.stdout)
    optional = {c["name"]: c for c in report["checks"] if not c["required"]}
    assert set(optional) == {"pio", "openocd", "st-flash"}
    assert not optional["openocd"]["ok"] and not optional["st-flash"]["ok"]
    assert report["install"] is None
    assert report["install_optional"].endswith("apt-get install -y openocd stlink-tools")
