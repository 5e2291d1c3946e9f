"""Static memory planning: buffers with a size and a live range in, offsets out.

A :class:`Buffer` is live from step ``first`` to step ``last`` (inclusive).
Two buffers *conflict* when their live ranges overlap, unless they belong to
different mutually exclusive groups (``group``): the K classifiers of a
DiTMoS model occupy the same steps but only one of them ever runs, so their
buffers may share memory.  Buffers with ``group=None`` conflict with every
group.

Placement strategies (``place``):

- ``none``: no reuse.  Every buffer has its own region; only mutually
  exclusive groups share a base offset.  The reference point.
- ``greedy``: TFLM's greedy-by-size idea.  Buffers in decreasing size order;
  each goes to the lowest aligned offset where it overlaps no already placed,
  conflicting buffer.

The DiTMoS ``slicing`` strategy is a different *buffer set* (see
``ditmos.codegen.schedule``: no concatenation buffers, selector features as
the only extra live buffers, optional recomputation) placed greedily.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Buffer:
    name: str
    size: int
    first: int
    last: int
    group: str | None = None

    def __post_init__(self):
        if self.size < 0 or self.last < self.first:
            raise ValueError(f"bad buffer {self}")

    def conflicts(self, other: "Buffer") -> bool:
        if self.group is not None and other.group is not None and self.group != other.group:
            return False
        return self.first <= other.last and other.first <= self.last


@dataclass
class Plan:
    strategy: str
    alignment: int
    buffers: list[Buffer]
    offsets: dict[str, int] = field(default_factory=dict)

    @property
    def arena_size(self) -> int:
        end = max((self.offsets[b.name] + b.size for b in self.buffers), default=0)
        return _align(end, self.alignment)

    def live_peak(self) -> int:
        """Lower bound for any placement: the most (aligned) bytes live at one
        step of one group's run."""
        groups = {b.group for b in self.buffers if b.group is not None} or {None}
        steps = {b.first for b in self.buffers}  # the sum only grows at a first use
        best = 0
        for g in groups:
            for s in steps:
                best = max(
                    best,
                    sum(
                        _align(b.size, self.alignment)
                        for b in self.buffers
                        if b.first <= s <= b.last and (b.group is None or b.group == g)
                    ),
                )
        return best

    def peak_at(self, step: int, group: str | None = None) -> int:
        """Highest byte in use at ``step`` (for one group's run)."""
        ends = [
            self.offsets[b.name] + b.size
            for b in self.buffers
            if b.first <= step <= b.last and (b.group is None or group is None or b.group == group)
        ]
        return max(ends, default=0)

    def check(self) -> None:
        """Raise AssertionError if two conflicting buffers overlap in memory."""
        bs = self.buffers
        for i, a in enumerate(bs):
            oa = self.offsets[a.name]
            if oa % self.alignment:
                raise AssertionError(f"{a.name} at {oa} is not {self.alignment}-aligned")
            for b in bs[i + 1 :]:
                ob = self.offsets[b.name]
                if a.size and b.size and a.conflicts(b) and oa < ob + b.size and ob < oa + a.size:
                    raise AssertionError(
                        f"{a.name} [{oa},{oa + a.size}) overlaps {b.name} [{ob},{ob + b.size}) while both are live"
                    )

    def table(self) -> str:
        rows = [("buffer", "group", "bytes", "offset", "end", "live")]
        for b in sorted(self.buffers, key=lambda b: (self.offsets[b.name], b.first)):
            o = self.offsets[b.name]
            rows.append((b.name, b.group or "-", str(b.size), str(o), str(o + b.size), f"{b.first}..{b.last}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            f"memory plan: strategy={self.strategy} alignment={self.alignment} "
            f"arena={self.arena_size} bytes (live lower bound {self.live_peak()})"
        ]
        for n, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "strategy": self.strategy,
            "alignment": self.alignment,
            "arena_bytes": self.arena_size,
            "buffers": [
                {
                    "name": b.name,
                    "group": b.group,
                    "bytes": b.size,
                    "offset": self.offsets[b.name],
                    "first": b.first,
                    "last": b.last,
                }
                for b in self.buffers
            ],
        }


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def place(buffers: list[Buffer], strategy: str = "greedy", alignment: int = 8) -> Plan:
    """Assign offsets to ``buffers`` with ``strategy`` ("none" or "greedy")."""
    if alignment not in (4, 8):
        raise ValueError(f"alignment must be 4 or 8, got {alignment}")
    names = [b.name for b in buffers]
    if len(set(names)) != len(names):
        raise ValueError("buffer names must be unique")
    plan = Plan(strategy, alignment, list(buffers))
    if strategy == "none":
        base = 0
        shared = [b for b in buffers if b.group is None]
        for b in shared:
            plan.offsets[b.name] = base
            base = _align(base + b.size, alignment)
        for g in sorted({b.group for b in buffers if b.group is not None}):
            off = base
            for b in (b for b in buffers if b.group == g):
                plan.offsets[b.name] = off
                off = _align(off + b.size, alignment)
    elif strategy == "greedy":
        order = sorted(buffers, key=lambda b: (-b.size, b.first, b.name))
        placed: list[Buffer] = []
        for b in order:
            taken = sorted(
                (plan.offsets[p.name], plan.offsets[p.name] + p.size) for p in placed if p.size and p.conflicts(b)
            )
            off = 0
            for lo, hi in taken:
                if off + b.size <= lo:
                    break
                off = max(off, _align(hi, alignment))
            plan.offsets[b.name] = off
            placed.append(b)
    else:
        raise ValueError(f"unknown placement strategy {strategy!r} (none, greedy)")
    return plan
