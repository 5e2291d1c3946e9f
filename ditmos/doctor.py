"""``ditmos doctor``: which system tools are present, and the one command that
installs the missing ones.

pip installs the Python side of ditmos; building and emulating firmware also
needs a few Debian/Ubuntu packages.  Required tools (exit 1 when one is
missing): ``make`` and ``gcc`` (host builds, the QEMU plugin),
``arm-none-eabi-gcc``/``-objcopy`` with newlib's C library (Arm firmware), and
``qemu-system-arm`` with the ``mps2-an500`` machine (``evaluate --emulate``).
Optional: PlatformIO, OpenOCD and st-flash (flashing a Nucleo).  It also
checks that the package's own data files (board facts, templates, firmware,
datasets) and its declared Python dependencies are installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from ditmos.errors import DitmosError


@dataclass
class Check:
    name: str
    required: bool
    ok: bool
    detail: str  # path/version when present, what is wrong when not
    needed_for: str
    apt: str | None  # Debian/Ubuntu package that provides it
    hint: str | None = None  # non-apt way to get it


def _first_line(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run ({err})"
    text = (proc.stdout or proc.stderr).strip().splitlines()
    return text[0].strip() if text else ""


def _tool(
    name: str,
    *,
    required: bool,
    needed_for: str,
    apt: str | None,
    version_arg: str | None = "--version",
    hint: str | None = None,
    beside_python: bool = False,
) -> Check:
    path = shutil.which(name)
    if beside_python:  # a pip-installed tool in this Python's environment (as `ditmos flash`)
        own = Path(sys.executable).with_name(name)
        path = str(own) if own.is_file() else path
    if path is None:
        return Check(name, required, False, "not found on PATH", needed_for, apt, hint)
    detail = path
    if version_arg:
        version = _first_line([path, version_arg])
        if version:
            detail = f"{path} ({version})"
    return Check(name, required, True, detail, needed_for, apt, hint)


def _arm_cflags() -> list[str]:
    from ditmos.boards.registry import get_board

    return list(get_board("nucleo_f767zi").cflags)


def _newlib() -> Check:
    """newlib's libc.a for the boards' float ABI, as the cross compiler sees it."""
    name, needed_for, apt = "newlib (arm-none-eabi libc)", "Arm firmware (libc, libm)", "libnewlib-arm-none-eabi"
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is None:
        return Check(name, True, False, "not checked: arm-none-eabi-gcc is missing", needed_for, apt)
    found = _first_line([cc, *_arm_cflags(), "-print-file-name=libc.a"])
    if found and os.path.isabs(found) and Path(found).is_file():
        return Check(name, True, True, str(Path(found).resolve()), needed_for, apt)
    return Check(name, True, False, "arm-none-eabi-gcc finds no libc.a", needed_for, apt)


def _qemu() -> Check:
    check = _tool(
        "qemu-system-arm", required=True, needed_for="ditmos emulate, evaluate --emulate", apt="qemu-system-arm"
    )
    if not check.ok:
        return check
    machines = subprocess.run(
        [shutil.which("qemu-system-arm"), "-machine", "help"], capture_output=True, text=True, timeout=30
    ).stdout
    if "mps2-an500" not in machines:
        check.ok = False
        check.detail += "; lacks the mps2-an500 machine (QEMU 4.0 or newer needed)"
    return check


def _package_data() -> Check:
    from ditmos import paths

    try:
        n = len(paths.all_resources())
        detail = f"{n} files under {paths.package_root()}"
        ok = True
    except DitmosError as err:
        ok, detail = False, str(err)
    return Check(
        "ditmos data files",
        True,
        ok,
        detail,
        "every command",
        None,
        hint="reinstall ditmos (pip install --force-reinstall ditmos)",
    )


def _python_deps() -> Check:
    """The Python packages ditmos declares (without extras) are installed."""
    import re
    from importlib.metadata import PackageNotFoundError, requires, version

    name, needed_for = "Python dependencies", "every command"
    try:
        reqs = requires("ditmos") or []
    except PackageNotFoundError:
        return Check(
            name, False, True, "not checked: ditmos runs from a source tree without being installed", needed_for, None
        )
    missing, n = [], 0
    for req in reqs:
        if "extra ==" in req:
            continue
        dist = re.match(r"[A-Za-z0-9._-]+", req).group(0)
        n += 1
        try:
            version(dist)
        except PackageNotFoundError:
            missing.append(dist)
    if missing:
        return Check(
            name,
            True,
            False,
            f"not installed: {', '.join(missing)}",
            needed_for,
            None,
            hint="pip install ditmos (without --no-deps)",
        )
    return Check(name, True, True, f"{n} packages installed", needed_for, None)


def run_checks() -> list[Check]:
    return [
        _package_data(),
        _python_deps(),
        _tool("make", required=True, needed_for="ditmos build", apt="make"),
        _tool("gcc", required=True, needed_for="host board, QEMU instruction-count plugin", apt="gcc"),
        _tool("arm-none-eabi-gcc", required=True, needed_for="ditmos build (Arm boards)", apt="gcc-arm-none-eabi"),
        _tool("arm-none-eabi-objcopy", required=True, needed_for="firmware.bin", apt="gcc-arm-none-eabi"),
        _newlib(),
        _qemu(),
        _tool(
            "pio",
            required=False,
            needed_for="ditmos flash",
            apt=None,
            hint="pip install 'ditmos[flash]'",
            beside_python=True,
        ),
        _tool("openocd", required=False, needed_for="flashing without PlatformIO", apt="openocd"),
        _tool("st-flash", required=False, needed_for="flashing without PlatformIO", apt="stlink-tools"),
    ]


def apt_command(packages: list[str]) -> str:
    """One apt-get line (with sudo unless run as root)."""
    unique = list(dict.fromkeys(packages))
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y {' '.join(unique)}"


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def doctor(as_json: bool) -> None:
    """Check the system tools ditmos needs and print the command that installs
    the missing ones.

    Exit code 0 when every required tool is present (optional flashing tools
    may be missing), 1 when a required one is missing.
    """
    checks = run_checks()
    missing = [c for c in checks if c.required and not c.ok]
    missing_apt = [c.apt for c in missing if c.apt]
    optional_apt = [c.apt for c in checks if not c.required and not c.ok and c.apt]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": not missing,
                    "checks": [asdict(c) for c in checks],
                    "install": apt_command(missing_apt) if missing_apt else None,
                    "install_optional": apt_command(optional_apt) if optional_apt else None,
                },
                indent=2,
            )
        )
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            status = "ok" if c.ok else ("MISSING" if c.required else "missing (optional)")
            click.echo(f"{c.name:<{width}}  {status:<18}  {c.detail}")
            if not c.ok:
                click.echo(f"{'':<{width}}  {'':<18}  needed for: {c.needed_for}" + (f"; {c.hint}" if c.hint else ""))
        click.echo("")
        if missing:
            click.echo(f"{len(missing)} required tool(s) missing.")
            if missing_apt:
                click.echo(f"Install them (Debian/Ubuntu) with:\n  {apt_command(missing_apt)}")
        else:
            click.echo("All required tools are present.")
        if optional_apt:
            click.echo(f"Optional flashing tools: {apt_command(optional_apt)}")
    if missing:
        raise click.exceptions.Exit(1)


__all__ = ["doctor", "run_checks", "apt_command", "Check"]
