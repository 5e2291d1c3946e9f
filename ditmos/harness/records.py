"""What one evaluation writes, and how it is written so nothing is lost.

``samples.jsonl`` gets one :class:`SampleRecord` per line as soon as a
sample is measured (flushed), so an interrupted run leaves a valid partial
result; :func:`read_samples` cuts off a torn last line.  JSON files that
must never be half-written go through :func:`write_json_atomic`.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

SAMPLES_FILE = "samples.jsonl"
REPORT_FILE = "report.json"
SESSION_FILE = "session.json"
STATS_FILE = "stats.jsonl"  # one line per device and session: STATS at its end


@dataclass(frozen=True)
class SampleRecord:
    """One measured sample: a line of ``samples.jsonl`` (docs/artefacts.md)."""

    index: int
    label: int
    predicted: int
    route: int
    scores: list[int]
    reference: int
    reference_route: int
    match: bool
    scores_match: bool
    cost: int | float | None  # in the unit of cost_kind, None when not measured
    cost_kind: str  # cycles / instructions / nanoseconds / none
    clock_hz: int
    layer_cost: list[int | float]  # by layer index, 0 for a layer that did not run
    device: str
    boot: int
    prepare_cost: int | float | None = None  # RAW: the device's input pipeline, cost's unit

    def to_json(self) -> dict:
        d = asdict(self)
        if d["prepare_cost"] is None:  # not a RAW evaluation
            del d["prepare_cost"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "SampleRecord":
        return cls(
            index=int(d["index"]),
            label=int(d["label"]),
            predicted=int(d["predicted"]),
            route=int(d["route"]),
            scores=list(d.get("scores") or []),
            reference=int(d["reference"]),
            reference_route=int(d["reference_route"]),
            match=bool(d["match"]),
            scores_match=bool(d.get("scores_match", True)),
            cost=d.get("cost"),
            cost_kind=str(d.get("cost_kind") or "none"),
            clock_hz=int(d.get("clock_hz") or 0),
            layer_cost=list(d.get("layer_cost") or []),
            device=str(d.get("device", "")),
            boot=int(d.get("boot") or 0),
            prepare_cost=d.get("prepare_cost"),
        )


class SampleLog:
    """Thread-safe appender of ``samples.jsonl`` plus the records measured so far."""

    def __init__(self, path: Path, records: dict[int, SampleRecord]) -> None:
        self.path = path
        self.records = records
        self._lock = threading.Lock()
        self._f = open(path, "a", encoding="utf-8")

    def add(self, rec: SampleRecord) -> None:
        line = json.dumps(rec.to_json(), separators=(",", ":")) + "\n"
        with self._lock:
            if rec.index in self.records:  # never twice, whatever happened on the link
                return
            self._f.write(line)
            self._f.flush()
            self.records[rec.index] = rec

    def close(self) -> None:
        self._f.close()


def read_samples(path: Path) -> dict[int, dict]:
    """Records already measured (as JSON objects); a torn last line (killed
    mid-write) is cut off the file."""
    records: dict[int, dict] = {}
    if not path.exists():
        return records
    with open(path, "rb") as f:
        data = f.read()
    good_end = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            records.setdefault(int(rec["index"]), rec)
        good_end += len(line)
    if good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


def read_jsonl(path: Path) -> list[dict]:
    """Every parseable line of a JSON-lines file (none when it does not exist)."""
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
