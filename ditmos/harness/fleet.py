"""Devices the evaluation starts itself (``ditmos evaluate --emulate --jobs N``), and
the instruction-count logs of emulators started by someone else.

* an ``mps2_an500`` build runs in N QEMU instances (UART on a loopback socket,
  instruction counts from the plugin log in ``EVAL_DIR/qemu<j>/``);
* a ``host`` build runs as N firmware processes, each on its own
  pseudo-terminal (latency: host wall-clock time measured by the firmware).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ditmos.errors import DitmosError
from ditmos.harness.worker import DeviceSpec

EMULATED_BOARDS = ("mps2_an500", "host")


def build_board(build_dir: Path) -> str:
    path = Path(build_dir) / "manifest.json"
    if not path.is_file():
        raise DitmosError(
            f"{build_dir} is not a firmware build directory (no manifest.json); "
            f"run `ditmos build --board mps2_an500` (or --board host) first"
        )
    return str(json.loads(path.read_text()).get("board"))


@contextlib.contextmanager
def qemu_devices(build_dir: Path, jobs: int, workdir: Path):
    """``jobs`` QEMU instances of an mps2_an500 build as devices."""
    from ditmos.boards.qemu import QemuTarget

    targets = []
    try:
        for j in range(jobs):
            tgt = QemuTarget(build_dir, workdir=Path(workdir) / f"qemu{j}")
            targets.append(tgt)
            tgt.start()
        yield [DeviceSpec(url=t.url, marks=t.plugin_log, name=f"qemu{j}") for j, t in enumerate(targets)]
    finally:
        for tgt in targets:
            tgt.stop()


@contextlib.contextmanager
def host_devices(build_dir: Path, jobs: int, workdir: Path):
    """``jobs`` processes of a host-board build, each on a pseudo-terminal."""
    from ditmos.boards.host import HostDevice

    devices = []
    try:
        for j in range(jobs):
            dev = HostDevice(build_dir, workdir=Path(workdir) / f"host{j}")
            devices.append(dev)
            dev.start()
        yield [DeviceSpec(url=d.url, name=f"host{j}") for j, d in enumerate(devices)]
    finally:
        for dev in devices:
            dev.stop()


def emulated_devices(build_dir: Path, jobs: int, workdir: Path):
    """The devices ``--emulate`` starts for this build's board."""
    board = build_board(build_dir)
    if board == "mps2_an500":
        return qemu_devices(build_dir, jobs, workdir)
    if board == "host":
        return host_devices(build_dir, jobs, workdir)
    raise DitmosError(
        f"{build_dir} holds a firmware for {board}, which --emulate cannot run "
        f"(it runs {' and '.join(EMULATED_BOARDS)} builds); flash it and pass "
        f"--port, or build with --board mps2_an500"
    )


def marks_for_port(build_dir: Path | None, url: str) -> Path | None:
    """The marks log of a QEMU that ``ditmos emulate`` runs for ``build_dir`` on
    ``url`` (None when no such emulator announced itself)."""
    if build_dir is None:
        return None
    from ditmos.boards.qemu import find_emulator

    found = find_emulator(Path(build_dir), url)
    return found.marks if found is not None else None
