"""``report.json`` of an evaluation (``format: ditmos-eval/1``, keys in docs/artefacts.md),
built from the measured samples and what each device reported.

Latency has exactly one unit per report: milliseconds at the board clock
(cycles beside them) on hardware, retired instructions in emulation, or
microseconds of host wall-clock time on the host board; never mixed.  When
no cost was measured the latency is marked unavailable with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ditmos.errors import DitmosError
from ditmos.harness.protocol import CostKind
from ditmos.harness.records import SampleRecord
from ditmos.harness.worker import DeviceOutcome
from ditmos.harness.workload import Workload

FORMAT = "ditmos-eval/1"

_NO_COST_NOTE = {
    CostKind.INSTRUCTIONS: (
        "not measured: the emulator writes instruction counts to the QEMU plugin's marks log, "
        "which this evaluation could not find (start QEMU with `ditmos emulate --build "
        "BUILD_DIR`, or pass --marks WORKDIR/marks.log)"
    ),
    CostKind.NONE: "the firmware measures no cost on this target",
}


def _dist(values: Sequence[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
        "mean": float(a.mean()),
        "min": float(a.min()),
    }


def _one(values: set, what: str):
    if len(values) > 1:
        raise DitmosError(what)
    return next(iter(values)) if values else None


def cost_kind_of(recs: list[SampleRecord], devices: list[DeviceOutcome]) -> CostKind:
    kinds = {d.hello.cost_kind for d in devices if d.hello} | {
        CostKind[r.cost_kind.upper()] for r in recs if r.cost_kind
    }
    kind = _one(
        kinds,
        "the devices report different cost kinds (e.g. cycles and "
        "instructions): evaluate hardware, emulator and host into separate --out "
        "directories, latencies are never mixed",
    )
    return CostKind.NONE if kind is None else CostKind(kind)


class _Scale:
    """Device cost units -> the report's unit."""

    def __init__(self, kind: CostKind, recs: list[SampleRecord], devices: list[DeviceOutcome], meta: dict) -> None:
        self.kind, self.unit, self.factor, self.clock_hz = kind, None, 1.0, None
        if not any(r.cost is not None for r in recs):
            return  # nothing to scale: the latency is unavailable
        if kind == CostKind.CYCLES:
            clocks = {d.hello.core_clock_hz for d in devices if d.hello} | {r.clock_hz for r in recs if r.clock_hz}
            clock = _one(
                clocks, f"devices run at different clocks {sorted(clocks)}: evaluate them separately"
            ) or meta.get("core_clock_hz")
            if not clock:
                raise DitmosError("the device reports cycle counts but a core clock of 0 Hz")
            self.unit, self.factor, self.clock_hz = "ms", 1000.0 / clock, clock
        elif kind == CostKind.INSTRUCTIONS:
            self.unit = "instructions"
        elif kind == CostKind.NANOSECONDS:
            self.unit, self.factor = "us", 1e-3


def latency_part(recs: list[SampleRecord], scale: _Scale) -> dict:
    costs = [r.cost for r in recs if r.cost is not None]
    lat: dict = {"kind": scale.kind.name.lower()}
    if not costs or scale.unit is None:
        lat.update(
            {"unit": None, "available": False, "note": _NO_COST_NOTE.get(scale.kind, _NO_COST_NOTE[CostKind.NONE])}
        )
        return lat
    lat.update({"unit": scale.unit, "available": True})
    if scale.kind == CostKind.CYCLES:
        lat["clock_hz"] = scale.clock_hz
    elif scale.kind == CostKind.NANOSECONDS:
        lat["clock"] = "host wall clock"
        lat["note"] = (
            "wall-clock time of the inference in the host process (CLOCK_MONOTONIC); "
            "not comparable with cycles or instructions on a target"
        )
    lat.update(_dist([c * scale.factor for c in costs]))
    if scale.kind == CostKind.CYCLES:
        lat["cycles"] = _dist(costs)
    return lat


def input_pipeline_part(recs: list[SampleRecord], w: Workload, scale: _Scale) -> dict | None:
    """RAW evaluations: the device's own input pipeline (front end, normalisation,
    quantisation) per sample, in the latency's unit, and its share of pipeline +
    inference."""
    if w.raw_kind is None:
        return None
    part: dict = {"raw": w.raw_kind, "unit": scale.unit}
    pairs = [(r.prepare_cost, r.cost) for r in recs if r.prepare_cost is not None and r.cost is not None]
    if not pairs or scale.unit is None:
        part["available"] = False
        return part
    prep = [p * scale.factor for p, _ in pairs]
    part.update(
        {
            "available": True,
            **_dist(prep),
            "share_median": float(np.median([p / (p + c) for p, c in pairs if p + c > 0])),
        }
    )
    return part


def per_layer_part(recs: list[SampleRecord], w: Workload, scale: _Scale) -> dict | None:
    """By (program, layer index); a classifier layer is attributed to the
    classifier the sample was routed to."""
    lmap = w.facts.layer_map
    per_key: dict[tuple, list[float]] = {}
    for r in recs:
        if r.cost is None:
            continue
        for j, v in enumerate(r.layer_cost):
            if v <= 0:  # this layer index did not run for this sample
                continue
            progs = lmap.get(j, {})
            routed = f"classifier_{r.route}"
            prog = routed if routed in progs else (next(iter(progs)) if len(progs) == 1 else None)
            per_key.setdefault((prog, j), []).append(v * scale.factor)
    if not per_key:
        return None

    def order(key):
        prog, j = key
        return (0 if prog == "selector" else 1, prog or "", j)

    return {
        "unit": scale.unit,
        "layers": [
            {
                "program": prog,
                "layer": j,
                "name": f"{prog}/{lmap[j][prog]}" if prog in lmap.get(j, {}) else f"layer {j}",
                "count": len(vals),
                **_dist(vals),
            }
            for (prog, j), vals in sorted(per_key.items(), key=lambda kv: order(kv[0]))
        ],
    }


def memory_part(w: Workload, devices: list[DeviceOutcome], session_stats: list[dict]) -> dict:
    mem: dict = {}
    hellos = [d.hello for d in devices if d.hello is not None]
    if hellos:
        h = hellos[0]
        mem.update({"flash": h.flash_used, "ram": h.ram_used, "arena": h.arena_size})
    # stack high-water over every device and session (a resumed run may talk to a
    # freshly booted device whose painting saw only part of the samples)
    stats = [vars(d.stats) for d in devices if d.stats is not None] + list(session_stats)
    if stats:
        mem["stack_size"] = max(s["stack_size"] for s in stats)
        mem["stack_high_water"] = max(s["stack_high_water"] for s in stats)
    if w.facts.build_memory is not None:
        mem["build"] = w.facts.build_memory
    return mem


def accuracy_part(recs: list[SampleRecord], w: Workload, n_total: int) -> dict:
    n = len(recs)
    labels = np.array([r.label for r in recs], dtype=np.int64)
    pred = np.array([r.predicted for r in recs], dtype=np.int64)
    ref = np.array([r.reference for r in recs], dtype=np.int64)
    mism = [
        {
            "index": r.index,
            "label": r.label,
            "device": r.predicted,
            "reference": r.reference,
            "device_route": r.route,
            "reference_route": r.reference_route,
        }
        for r in recs
        if not r.match
    ]
    return {
        "format": FORMAT,
        "complete": n == n_total,
        "samples": n,
        "samples_planned": n_total,
        "model_hash": w.model_hash,
        "accuracy": float((pred == labels).mean()) if n else None,
        "accuracy_int8_reference": float((ref == labels).mean()) if n else None,
        "accuracy_float": w.facts.accuracy_float,
        "accuracy_int8_reference_full_split": w.facts.accuracy_int8,
        "mismatches": len(mism),
        "mismatch_list": mism,
        "route_mismatches": sum(1 for r in recs if r.route != r.reference_route),
        "score_mismatches": sum(1 for r in recs if not r.scores_match),
        "class_names": list(w.class_names),
    }


def routing_part(recs: list[SampleRecord], w: Workload) -> dict:
    k = w.num_classifiers
    return {
        "device": np.bincount([r.route for r in recs], minlength=k).tolist() if recs else [0] * k,
        "reference": np.bincount([r.reference_route for r in recs], minlength=k).tolist() if recs else [0] * k,
    }


def confusion_part(recs: list[SampleRecord], w: Workload) -> list[list[int]]:
    c = w.num_classes
    conf = np.zeros((c, c), dtype=np.int64)
    for r in recs:
        if 0 <= r.predicted < c:
            conf[r.label, r.predicted] += 1
    return conf.tolist()


def build_report(
    w: Workload,
    records: dict[int, SampleRecord],
    devices: list[DeviceOutcome],
    n_total: int,
    meta: dict,
    session_stats: Sequence[dict] = (),
) -> dict:
    recs = [records[i] for i in sorted(records)]
    scale = _Scale(cost_kind_of(recs, devices), recs, devices, meta)
    report = accuracy_part(recs, w, n_total)
    report["latency"] = latency_part(recs, scale)
    report["per_layer_latency"] = per_layer_part(recs, w, scale)
    report["input_pipeline"] = input_pipeline_part(recs, w, scale)
    report["memory"] = memory_part(w, devices, list(session_stats))
    report["routing"] = routing_part(recs, w)
    report["confusion"] = confusion_part(recs, w)
    report["devices"] = [d.as_json() for d in devices]
    report["meta"] = meta
    report["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return report
