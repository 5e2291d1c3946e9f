"""The harness against QEMU (mps2_an500, profiling build): instruction counts from the
plugin log paired with INFER answers, two emulators in parallel."""

import importlib.util
from pathlib import Path

import numpy as np

from ditmos.harness.evaluate import Workload, qemu_devices, read_samples, run_evaluation

FIXTURE = Path(__file__).resolve().parents[1] / "firmware" / "fixtures" / "tiny_model"
N = 40


def _fixture_model():
    spec = importlib.util.spec_from_file_location("fixture_model", FIXTURE / "fixture_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_qemu_instances_with_instruction_counts(tmp_path_factory):
    from ditmos.boards.build import build_project

    build = build_project("mps2_an500", FIXTURE, tmp_path_factory.mktemp("harness_mps2"), profile=True)
    fm = _fixture_model()
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(N, fm.T, fm.C), dtype=np.int8)
    x[N // 2 :] = x[: N // 2]  # every input twice: counts must repeat exactly
    ref = [fm.predict(x[i]) for i in range(N)]
    w = Workload(
        inputs=x,
        labels=np.array([r[0] for r in ref]),
        ref_pred=np.array([r[0] for r in ref]),
        ref_route=np.array([r[1] for r in ref]),
        ref_scores=np.stack([r[2] for r in ref]).astype(np.int8),
        model_hash=fm.MODEL_HASH + "0" * 48,
        num_classes=fm.NUM_CLASSES,
        num_classifiers=fm.K,
    )
    out = tmp_path_factory.mktemp("emu_eval")
    with qemu_devices(build, 2, out) as devices:
        rep = run_evaluation(w, devices, out, timeout=10.0)
    assert rep["complete"] and rep["mismatches"] == 0 and rep["score_mismatches"] == 0
    assert all(d["measured"] > 0 for d in rep["devices"])
    lat = rep["latency"]
    assert lat["unit"] == "instructions" and "clock_hz" not in lat
    recs = read_samples(out / "samples.jsonl")
    costs = [r["cost"] for r in recs.values()]
    assert min(costs) > 100  # real counts, not zeros
    # exact and repeatable: the same input costs the same, whichever emulator ran it
    for i in range(N // 2):
        assert recs[i]["cost"] == recs[i + N // 2]["cost"]
        assert recs[i]["layer_cost"] == recs[i + N // 2]["layer_cost"]
    assert {recs[i]["device"] for i in range(N)} == {"qemu0", "qemu1"}
    layers = rep["per_layer_latency"]["layers"]
    assert [lay["layer"] for lay in layers] == [0, 1]
    for r in recs.values():
        assert sum(r["layer_cost"]) <= r["cost"] and all(c > 0 for c in r["layer_cost"])
