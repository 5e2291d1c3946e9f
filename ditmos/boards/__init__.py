"""ditmos.boards: board facts, firmware builds, QEMU and host-process devices.

- ``build_firmware(board, int8_dir, out_dir, kernels=..., profile=...)``:
  generate C (ditmos.codegen) and compile it into BUILD_DIR.
- ``build_project(board, model_dir, out_dir, ...)``: the same from a model
  directory that already holds model.h/model.c/weights.c.
- ``QemuTarget`` (``ditmos.boards.qemu``) and ``HostDevice``
  (``ditmos.boards.host``): run a build and expose its serial link.
- ``ditmos.boards.flash``: program a build's sha256-checked firmware.elf
  (``ditmos flash``); ``ditmos.boards.selftest``: check an attached board
  (``ditmos selftest``).
"""

from __future__ import annotations

from ditmos.boards.build import build_firmware, build_project, format_memory_table
from ditmos.boards.registry import Board, board_names, get_board

__all__ = [
    "Board",
    "board_names",
    "build_firmware",
    "build_project",
    "format_memory_table",
    "get_board",
    "QemuTarget",
    "HostDevice",
]


def __getattr__(name):
    if name == "QemuTarget":
        from ditmos.boards.qemu import QemuTarget

        return QemuTarget
    if name == "HostDevice":
        from ditmos.boards.host import HostDevice

        return HostDevice
    raise AttributeError(f"module 'ditmos.boards' has no attribute {name!r}")
