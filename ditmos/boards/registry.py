"""Board facts, read from ``boards.json`` beside this module (package data,
located through :func:`ditmos.paths.boards_json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

from ditmos.errors import DitmosError
from ditmos.harness.protocol import CostKind
from ditmos.paths import boards_json

COST_KINDS = {k.name.lower(): int(k) for k in CostKind}  # HELLO_OK cost_kind values


@dataclass(frozen=True)
class Region:
    name: str
    origin: int
    length: int


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    kind: str  # "arm" (cross-compiled, linker script) or "host"
    core_clock_hz: int
    cost_kind: str  # key of COST_KINDS
    uart: dict
    cflags: tuple[str, ...]
    sources: tuple[str, ...]  # relative to firmware/
    include_dirs: tuple[str, ...]  # relative to firmware/
    default_kernels: str
    stack_size: int = 0
    flash: Region | None = None
    ram: tuple[Region, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def is_arm(self) -> bool:
        return self.kind == "arm"

    @property
    def ram_total(self) -> int:
        return sum(r.length for r in self.ram)


def _board(name: str, d: dict) -> Board:
    known = {
        "description",
        "kind",
        "core_clock_hz",
        "cost_kind",
        "uart",
        "cflags",
        "sources",
        "include_dirs",
        "default_kernels",
        "stack_size",
        "flash",
        "ram",
    }
    return Board(
        name=name,
        description=d["description"],
        kind=d["kind"],
        core_clock_hz=int(d["core_clock_hz"]),
        cost_kind=d["cost_kind"],
        uart=d["uart"],
        cflags=tuple(d["cflags"]),
        sources=tuple(d["sources"]),
        include_dirs=tuple(d["include_dirs"]),
        default_kernels=d["default_kernels"],
        stack_size=int(d.get("stack_size", 0)),
        flash=Region(**d["flash"]) if "flash" in d else None,
        ram=tuple(Region(**r) for r in d.get("ram", ())),
        extra={k: v for k, v in d.items() if k not in known},
    )


@lru_cache(maxsize=1)
def _all() -> dict[str, Board]:
    raw = json.loads(boards_json().read_text())
    return {name: _board(name, d) for name, d in raw.items() if not name.startswith("_")}


def board_names() -> list[str]:
    return list(_all())


def get_board(name: str) -> Board:
    try:
        return _all()[name]
    except KeyError:
        raise DitmosError(f"unknown board '{name}'; known boards: {', '.join(board_names())}") from None
