"""Instruction counts in emulation: pairing the TCG plugin's marks with INFER answers.

With ``cost_kind = 1`` the firmware calls ``ditmos_mark(id)`` before (id 0)
and after (id 1) each inference and after each profiled layer (id 2 + layer
index); QEMU's plugin appends ``mark <id> <instructions so far>`` to a log.
The guest sends its INFER_OK only after the closing mark, so when an answer
arrives its marks are already in the log: the last complete begin..end group
read so far belongs to it (a retransmitted INFER runs the same deterministic
code again, so an earlier group for the same sample has the same count).
A RAW request marks its input pipeline with ids 254 and 255 just before the
inference's group; ``take()`` leaves that count in ``last_prepare``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ditmos.errors import DitmosError

MARK_BEGIN = 0
MARK_END = 1
MARK_LAYER_BASE = 2
# around the input pipeline of a RAW request (before its inference's mark 0)
MARK_PREPARE_BEGIN = 254
MARK_PREPARE_END = 255


class MarkLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._tail = b""
        self._group: list[tuple[int, int]] | None = None
        self._complete: tuple[list[tuple[int, int]]] | None = None
        self._prepare_begin: int | None = None
        self._prepare: int | None = None  # the pipeline before the group being read
        self._complete_prepare: int | None = None
        self.last_prepare: int | None = None  # set by take(): None without a RAW pipeline

    def _read_new(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            parts = line.split()
            if len(parts) != 3 or parts[0] != b"mark":
                continue
            mid, count = int(parts[1]), int(parts[2])
            if mid == MARK_PREPARE_BEGIN:
                self._prepare_begin, self._prepare = count, None
            elif mid == MARK_PREPARE_END and self._prepare_begin is not None:
                self._prepare, self._prepare_begin = count - self._prepare_begin, None
            elif mid == MARK_BEGIN:
                self._group = [(mid, count)]
            elif self._group is not None:
                self._group.append((mid, count))
                if mid == MARK_END:
                    self._complete = (self._group,)
                    self._complete_prepare, self._prepare = self._prepare, None
                    self._group = None

    def take(self, num_layers: int = 0, timeout: float = 2.0) -> tuple[int, list[int]]:
        """(instructions for the whole inference, instructions per layer index) of the
        latest inference; ``num_layers`` entries (HELLO's profiling_layers), 0 for a
        layer that did not run, like the firmware's own per-layer array."""
        deadline = time.monotonic() + timeout
        while True:
            self._read_new()
            if self._complete is not None:
                group = self._complete[0]
                self._complete = None
                self.last_prepare = self._complete_prepare
                begin, end = group[0][1], group[-1][1]
                layers, prev = [0] * num_layers, begin
                for mid, count in group[1:-1]:
                    if mid >= MARK_LAYER_BASE:
                        j = mid - MARK_LAYER_BASE
                        if j < num_layers:
                            layers[j] = count - prev
                        prev = count
                return end - begin, layers
            if time.monotonic() > deadline:
                raise DitmosError(
                    f"no complete instruction-count marks for an inference in {self.path}: "
                    f"is QEMU running with the ditmos plugin and the firmware built for it?"
                )
            time.sleep(0.005)
