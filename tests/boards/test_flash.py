"""`ditmos flash` programs exactly the measured firmware.elf, with fake
programmers on PATH that record their arguments."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from ditmos.boards import flash as flash_mod
from ditmos.cli import main

FAKE = """#!{python}
import json, os, subprocess, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
    if os.path.basename(sys.argv[0]) == "openocd":
        f.write(json.dumps(["openocd_at", os.path.dirname(sys.argv[0])]) + "\\n")
args = sys.argv[1:]
if os.path.basename(sys.argv[0]) == "pio":
    if args[:2] == ["pkg", "exec"]:  # as PlatformIO does: package bin/ first on PATH
        pkg = os.environ["FAKE_PIO_PKG"]
        env = dict(os.environ, PATH=os.path.join(pkg, "bin") + os.pathsep + os.environ["PATH"])
        sys.exit(subprocess.call(args[args.index("--") + 1:], env=env))
    if args[:2] == ["pkg", "list"]:
        print(open(os.environ["FAKE_PIO_TOOLS"]).read() if os.path.exists(
            os.environ["FAKE_PIO_TOOLS"]) else "")
    if args[:2] == ["pkg", "install"]:
        if os.environ.get("FAKE_PIO_OFFLINE"):
            sys.exit(1)
        open(os.environ["FAKE_PIO_TOOLS"], "w").write("platformio/tool-openocd @ 3.1200.0")
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


@pytest.fixture
def build(nucleo_build, tmp_path):
    """A private copy of the Nucleo build (tests may tamper with it)."""
    dest = tmp_path / "build"
    shutil.copytree(nucleo_build, dest)
    return dest


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Put fake pio/openocd/st-flash in an empty PATH; returns (install, calls)."""
    python = os.sys.executable
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_PIO_TOOLS", str(tmp_path / "pio_tools"))

    pkg = tmp_path / "packages" / "tool-openocd"
    (pkg / "bin").mkdir(parents=True)
    monkeypatch.setenv("FAKE_PIO_PKG", str(pkg))

    def install(*names, where=bindir):
        for name in names:
            p = where / name
            p.write_text(FAKE.format(python=python))
            p.chmod(p.stat().st_mode | stat.S_IEXEC)

    install("openocd", where=pkg / "bin")  # PlatformIO's package
    # PATH: the fakes, plus only the two programs the PlatformIO shell line needs
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("sh", "dirname"):
        (tools / name).symlink_to(shutil.which(name))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{tools}")

    def calls():
        return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []

    # this environment's own pio (beside the interpreter) stays out of the way
    monkeypatch.setattr(flash_mod.sys, "executable", str(tmp_path / "nopython" / "python"))
    # a USB bus (sysfs layout) with a root hub and the Nucleo's ST-LINK/V2-1 plugged in
    usb = tmp_path / "usb"
    for name, vendor, product in (("usb1", "1d6b", "0002"), ("1-1", "0483", "374b")):
        (usb / name).mkdir(parents=True)
        (usb / name / "idVendor").write_text(vendor + "\n")
        (usb / name / "idProduct").write_text(product + "\n")
    (usb / "1-1:1.0").mkdir()  # an interface: no ids
    monkeypatch.setattr(flash_mod, "USB_DEVICES", usb)
    return install, calls


def program_command(elf: Path) -> list[str]:
    return ["-f", "board/st_nucleo_f7.cfg", "-c", f"program {{{elf.resolve()}}} verify reset exit"]


def test_platformio_installs_openocd_on_first_use_then_programs_the_elf(build, fakes, capsys):
    install, calls = fakes
    install("pio", "openocd", "st-flash")
    assert main(["flash", "--build", str(build)]) == 0
    c = calls()
    assert c[:3] == [
        ["pio", "pkg", "list", "-g", "--only-tools"],
        ["pio", "pkg", "install", "-g", "-t", "platformio/tool-openocd"],
        [
            "pio",
            "pkg",
            "exec",
            "-p",
            "tool-openocd",
            "--",
            "sh",
            "-c",
            flash_mod.PIO_OPENOCD_SHELL,
            "openocd",
            *program_command(build / "firmware.elf"),
        ],
    ]
    # The package's openocd ran, with the package's scripts directory.
    pkg = os.environ["FAKE_PIO_PKG"]
    assert c[3:] == [
        ["openocd", "-s", f"{pkg}/bin/../openocd/scripts", *program_command(build / "firmware.elf")],
        ["openocd_at", f"{pkg}/bin"],
    ]
    out = capsys.readouterr()
    assert "with platformio" in out.out and "installing platformio/tool-openocd" in out.err
    # Second time: already installed, nothing fetched.
    assert main(["flash", "--build", str(build)]) == 0
    assert [c[:3] for c in calls()[5:]] == [
        ["pio", "pkg", "list"],
        ["pio", "pkg", "exec"],
        ["openocd", "-s", f"{pkg}/bin/../openocd/scripts"],
        ["openocd_at", f"{pkg}/bin"],
    ]


def test_offline_platformio_falls_back_to_system_openocd_with_a_hint(build, fakes, monkeypatch, capsys):
    install, calls = fakes
    install("pio", "openocd")
    monkeypatch.setenv("FAKE_PIO_OFFLINE", "1")
    assert main(["flash", "--build", str(build)]) == 0
    assert calls()[-2:] == [
        ["openocd", *program_command(build / "firmware.elf")],
        ["openocd_at", str(build.parent / "bin")],
    ]
    hints = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("hint:")]
    assert len(hints) == 1 and "system's openocd" in hints[0]


def test_st_flash_writes_the_checked_binary(build, fakes, capsys):
    install, calls = fakes
    install("st-flash")
    assert main(["flash", "--build", str(build)]) == 0
    assert calls() == [["st-flash", "--reset", "write", str((build / "firmware.bin").resolve()), "0x08000000"]]


def test_offline_platformio_and_no_system_programmer_say_so(build, fakes, monkeypatch, capsys):
    install, calls = fakes
    install("pio")
    monkeypatch.setenv("FAKE_PIO_OFFLINE", "1")
    assert main(["flash", "--build", str(build)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("ditmos: error: no programmer found") and "no network" in err[-1]
    assert [c[:3] for c in calls()] == [["pio", "pkg", "list"], ["pio", "pkg", "install"]]


def test_a_changed_elf_is_refused_before_any_programmer_runs(build, fakes, capsys):
    install, calls = fakes
    install("pio", "openocd", "st-flash")
    elf = build / "firmware.elf"
    data = bytearray(elf.read_bytes())
    data[-1] ^= 0xFF
    elf.write_bytes(bytes(data))
    assert main(["flash", "--build", str(build)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not the firmware that was built and measured" in err
    assert calls() == []


def test_a_changed_binary_is_refused_by_st_flash(build, fakes, capsys):
    install, calls = fakes
    install("st-flash")
    (build / "firmware.bin").write_bytes(b"\0" * 16)
    assert main(["flash", "--build", str(build), "--tool", "st-flash"]) == 2
    assert "firmware.bin is not the firmware" in capsys.readouterr().err
    assert calls() == []


def test_programmer_failure_and_missing_programmers_are_one_line_errors(build, fakes, monkeypatch, capsys):
    install, calls = fakes
    assert main(["flash", "--build", str(build)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no programmer found" in err and "apt-get install" in err
    install("openocd")
    monkeypatch.setenv("FAKE_EXIT", "1")
    assert main(["flash", "--build", str(build), "--tool", "openocd"]) == 2
    assert "openocd failed (exit 1)" in capsys.readouterr().err


def test_flash_refuses_a_build_for_another_board(mps2_build, fakes, capsys):
    assert main(["flash", "--build", str(mps2_build)]) == 2
    assert "for mps2_an500, not nucleo_f767zi" in capsys.readouterr().err


def test_without_an_st_link_on_usb_no_programmer_runs(build, fakes, tmp_path, monkeypatch, capsys):
    install, calls = fakes
    install("pio", "openocd", "st-flash")
    assert flash_mod.find_stlink() == ["ST-LINK/V2-1 at 1-1"]
    shutil.rmtree(tmp_path / "usb" / "1-1")  # unplugged: only the root hub is left
    assert main(["flash", "--build", str(build)]) == 2
    err = capsys.readouterr().err
    assert "no ST-LINK probe on USB" in err and "Traceback" not in err
    monkeypatch.setattr(flash_mod, "USB_DEVICES", tmp_path / "no_such_bus")  # a container
    assert main(["flash", "--build", str(build)]) == 2
    assert "shows no USB bus" in capsys.readouterr().err
    assert calls() == []  # no install attempt, no programmer started
