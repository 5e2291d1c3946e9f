"""``ditmos flash``: program exactly the firmware that ``ditmos build`` measured.

The image is BUILD_DIR/firmware.elf, whose sha256 ``ditmos build`` recorded in
manifest.json (``elf_sha256``; ``bin_sha256`` for the raw image st-flash
writes).  Nothing is rebuilt: a changed file is refused.

Programmers, in this order with ``tool="auto"``:

1. ``platformio``: OpenOCD from PlatformIO's ``tool-openocd`` package
   (``pio pkg exec -p tool-openocd -- openocd -s SCRIPTS ...``), installed by
   PlatformIO on first use;
2. ``openocd``: the system's OpenOCD;
3. ``st-flash``: the system's stlink-tools, writing firmware.bin.

OpenOCD runs ``program ELF verify reset exit``: write, read back and compare,
then start the firmware.

On Linux the board's ST-LINK probe is looked for on the USB bus first (sysfs:
vendor 0x0483 with an ST-LINK product id): without it no programmer can reach
the board, so ``ditmos flash`` says so at once instead of installing or
starting one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from ditmos.boards.registry import Board
from ditmos.errors import DitmosError

TOOLS = ("auto", "platformio", "openocd", "st-flash")
PIO_OPENOCD = "tool-openocd"
# sysfs lists every USB device with its idVendor/idProduct (libusb, which
# OpenOCD and st-flash use, reads the same tree)
USB_DEVICES = Path("/sys/bus/usb/devices")
ST_VENDOR = "0483"
STLINK_PRODUCTS = {
    "3744": "ST-LINK/V1",
    "3748": "ST-LINK/V2",
    "374a": "ST-LINK/V2-1",
    "374b": "ST-LINK/V2-1",
    "374d": "STLINK-V3",
    "374e": "STLINK-V3",
    "374f": "STLINK-V3",
    "3752": "ST-LINK/V2-1",
    "3753": "STLINK-V3",
    "3754": "STLINK-V3",
    "3757": "STLINK-V3",
}
PIO_OPENOCD_SPEC = "platformio/tool-openocd"
# PlatformIO's OpenOCD package keeps its scripts in PACKAGE_DIR/openocd/scripts
# (PlatformIO itself passes `-s` with that path); `pio pkg exec` puts
# PACKAGE_DIR/bin first on PATH, so the directory is found from the binary.
PIO_OPENOCD_SHELL = 'exec openocd -s "$(dirname "$(command -v openocd)")/../openocd/scripts" "$@"'
INSTALL_HINT = (
    "install one: `pip install platformio` (it fetches OpenOCD itself), or "
    "`apt-get install openocd` / `apt-get install stlink-tools`"
)


def find_pio() -> str | None:
    """PlatformIO from PATH first, then from this Python's environment."""
    found = shutil.which("pio") or shutil.which("platformio")
    if found:
        return found
    beside = Path(sys.executable).with_name("pio")
    return str(beside) if beside.is_file() else None


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_image(build_dir: Path, manifest: dict, *, binary: bool = False) -> Path:
    """The ELF (or raw binary) of a build, after checking it against manifest.json."""
    name, key = ("firmware.bin", "bin_sha256") if binary else ("firmware.elf", "elf_sha256")
    path = build_dir / name
    if not path.is_file():
        raise DitmosError(f"{build_dir} has no {name}; run `ditmos build` again")
    expected = manifest.get(key)
    if not expected:
        raise DitmosError(
            f"{build_dir}/manifest.json records no {key} for {name}; rebuild "
            "with this version of ditmos (`ditmos build`)"
        )
    actual = sha256_of(path)
    if actual != expected:
        raise DitmosError(
            f"{path} is not the firmware that was built and measured (sha256 {actual[:16]}..., "
            f"manifest.json says {expected[:16]}...); refusing to flash it: run `ditmos build` "
            "again"
        )
    return path


def find_stlink(devices: Path | None = None) -> list[str]:
    """The ST-LINK probes on the USB bus, as 'NAME at BUS-PORT' (empty: none).

    Raises DitmosError when this Linux machine shows no USB bus at all (a
    container without USB passed through): no programmer could reach a board."""
    devices = USB_DEVICES if devices is None else devices
    if not devices.is_dir():
        raise DitmosError(
            f"this machine shows no USB bus ({devices} is missing; a container "
            "or VM without USB passed through?): the Nucleo's ST-LINK cannot be "
            "reached from here; flash from the machine the board is plugged into"
        )
    found = []
    for dev in sorted(devices.iterdir()):
        try:
            vendor = (dev / "idVendor").read_text().strip().lower()
            product = (dev / "idProduct").read_text().strip().lower()
        except OSError:  # interfaces and hubs' ports have no ids
            continue
        if vendor == ST_VENDOR and product in STLINK_PRODUCTS:
            found.append(f"{STLINK_PRODUCTS[product]} at {dev.name}")
    return found


def _check_probe() -> None:
    if not sys.platform.startswith("linux"):
        return  # no sysfs to look in: the programmer's own message will tell
    if not find_stlink():
        raise DitmosError(
            "no ST-LINK probe on USB: connect the Nucleo's ST-LINK USB port "
            "(CN1, beside the reset button) with a data cable; `lsusb` should "
            "list 0483:374b"
        )


def openocd_args(board: Board, elf: Path) -> list[str]:
    config = board.extra.get("openocd_config")
    if not config:
        raise DitmosError(f"no OpenOCD configuration is known for {board.name}")
    return ["-f", config, "-c", f"program {{{elf.resolve()}}} verify reset exit"]


def _pio_openocd(pio: str, echo: Callable[[str], None]) -> bool:
    """True when PlatformIO has (or has just installed) its OpenOCD package."""
    listed = subprocess.run([pio, "pkg", "list", "-g", "--only-tools"], capture_output=True, text=True)
    if listed.returncode == 0 and PIO_OPENOCD in listed.stdout:
        return True
    echo(f"PlatformIO: installing {PIO_OPENOCD_SPEC} (first use; needs the network)")
    return subprocess.call([pio, "pkg", "install", "-g", "-t", PIO_OPENOCD_SPEC]) == 0


def _run(cmd: list[str], what: str) -> None:
    rc = subprocess.call(cmd)
    if rc != 0:
        raise DitmosError(
            f"{what} failed (exit {rc}); is the Nucleo connected over its ST-LINK USB port "
            "(CN1) and no other debugger session open?  Its messages are above"
        )


def flash_firmware(
    board: Board, build_dir: Path, manifest: dict, *, tool: str = "auto", echo: Callable[[str], None] = print
) -> str:
    """Program the checked firmware.elf; returns the programmer used."""
    if tool not in TOOLS:
        raise DitmosError(f"unknown programmer '{tool}'; choose one of {', '.join(TOOLS)}")
    elf = check_image(build_dir, manifest)
    model = manifest.get("model_hash", "?")
    _check_probe()

    pio_offline = False
    if tool in ("auto", "platformio"):
        pio = find_pio()
        if pio is None and tool == "platformio":
            raise DitmosError(f"PlatformIO (`pio`) is not installed; {INSTALL_HINT}")
        if pio is not None:
            if _pio_openocd(pio, echo):
                echo(f"flashing {elf} (model {model}) with PlatformIO's OpenOCD")
                _run(
                    [
                        pio,
                        "pkg",
                        "exec",
                        "-p",
                        PIO_OPENOCD,
                        "--",
                        "sh",
                        "-c",
                        PIO_OPENOCD_SHELL,
                        "openocd",
                        *openocd_args(board, elf),
                    ],
                    "OpenOCD (PlatformIO)",
                )
                return "platformio"
            if tool == "platformio":
                raise DitmosError(
                    f"PlatformIO could not install {PIO_OPENOCD_SPEC} (no "
                    "network?); try `--tool openocd` or `--tool st-flash`"
                )
            echo(f"hint: PlatformIO could not install {PIO_OPENOCD_SPEC}; trying the system's openocd / st-flash")
            pio_offline = True

    if tool in ("auto", "openocd"):
        if shutil.which("openocd"):
            echo(f"flashing {elf} (model {model}) with openocd")
            _run(["openocd", *openocd_args(board, elf)], "openocd")
            return "openocd"
        if tool == "openocd":
            raise DitmosError("openocd is not installed (`apt-get install openocd`)")

    if shutil.which("st-flash"):
        binary = check_image(build_dir, manifest, binary=True)
        origin = f"0x{board.flash.origin:08x}"
        echo(f"flashing {binary} (model {model}) with st-flash")
        _run(["st-flash", "--reset", "write", str(binary.resolve()), origin], "st-flash")
        return "st-flash"
    if tool == "st-flash":
        raise DitmosError("st-flash is not installed (`apt-get install stlink-tools`)")
    if pio_offline:
        raise DitmosError(
            f"no programmer found for {board.name}: PlatformIO could not download "
            "OpenOCD (no network?) and neither openocd nor st-flash is installed; "
            "`apt-get install openocd` (or stlink-tools), or connect to the network"
        )
    raise DitmosError(f"no programmer found for {board.name}; {INSTALL_HINT}")


def load_manifest(build_dir: Path) -> dict:
    path = build_dir / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DitmosError(f"cannot read {path}: {err}") from None
