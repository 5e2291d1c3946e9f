"""The early-exit CNN in QEMU (mps2_an500): the device takes the exit the host
reference takes on every window, says which in INFER_OK, and an inference
that leaves early costs fewer instructions, as its exit's cost predicts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ditmos.harness.evaluate import evaluate
from ditmos.harness.records import read_samples

N = 60


@pytest.mark.slow
def test_early_exit_on_qemu_takes_the_reference_exits(tiny_early_exit, tmp_path):
    from ditmos.boards.build import build_firmware

    build = build_firmware("mps2_an500", tiny_early_exit / "int8", tmp_path / "build")
    out = tmp_path / "eval"
    rep = evaluate(tiny_early_exit, build, out, emulate=True, jobs=1, limit=N,
                   method="early_exit")
    assert rep["complete"] and rep["samples"] == N
    assert rep["mismatches"] == 0 and rep["route_mismatches"] == 0
    assert rep["score_mismatches"] == 0
    assert rep["meta"]["model_kind"] == "network" and rep["meta"]["method"] == "early_exit"
    recs = list(read_samples(out / "samples.jsonl").values())
    exits = np.array([r["route"] for r in recs])
    cost = np.array([r["cost"] for r in recs], dtype=np.float64)
    last = int(json.loads((tiny_early_exit / "int8" / "manifest.json").read_text())["K"]) - 1
    assert {0, last} <= set(exits.tolist()), "the fixture takes both paths"
    assert rep["routing"]["device"] == rep["routing"]["reference"]
    # per exit, the cost of one window leaving there predicts the others
    per_exit = {e: cost[exits == e][0] for e in set(exits.tolist())}
    predicted = np.mean([per_exit[e] for e in exits])
    assert abs(cost.mean() - predicted) <= 0.05 * predicted
    assert per_exit[0] < 0.9 * per_exit[last]
