"""The evaluation engine on protocol peers: merging, resume, Ctrl-C, mismatch listing."""

import json

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.harness.evaluate import DeviceSpec, Workload, read_samples, run_evaluation

from tests.harness.pydevice import PyDevice, toy_model


def _workload(n=40, size=12, num_classes=4, hash_="0123456789abcdef" + "0" * 48):
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(n, size // 3, 3), dtype=np.int8)
    res = [toy_model(x[i].tobytes(), num_classes) for i in range(n)]
    return Workload(
        inputs=x,
        labels=rng.integers(0, num_classes, n),
        ref_pred=np.array([r.predicted for r in res]),
        ref_route=np.array([r.route for r in res]),
        ref_scores=np.array([r.scores for r in res], dtype=np.int8),
        model_hash=hash_,
        num_classes=num_classes,
        num_classifiers=3,
        class_names=list("abcd"),
    )


def test_two_devices_share_the_samples_and_match_the_reference(tmp_path):
    w = _workload()
    with PyDevice(delay=0.005) as d1, PyDevice(delay=0.005) as d2:
        rep = run_evaluation(w, [DeviceSpec(d1.path), DeviceSpec(d2.path)], tmp_path, timeout=0.5)
    assert rep["complete"] and rep["samples"] == 40 and rep["mismatches"] == 0
    assert rep["score_mismatches"] == 0 and rep["route_mismatches"] == 0
    recs = read_samples(tmp_path / "samples.jsonl")
    assert sorted(recs) == list(range(40))
    assert all(d["measured"] > 0 for d in rep["devices"])  # both did work
    assert sum(d["measured"] for d in rep["devices"]) == 40
    assert rep["accuracy"] == pytest.approx(np.mean(w.ref_pred == w.labels))
    assert rep["latency"]["unit"] == "ms" and rep["latency"]["clock_hz"] == 216_000_000
    cyc = [toy_model(w.inputs[i].tobytes()).cost for i in range(40)]
    assert rep["latency"]["cycles"]["median"] == pytest.approx(np.median(cyc))
    assert rep["latency"]["max"] == pytest.approx(max(cyc) * 1000 / 216e6)
    assert sum(rep["routing"]["device"]) == 40
    assert np.array(rep["confusion"]).sum() == 40
    assert json.loads((tmp_path / "report.json").read_text()) == rep


def test_every_mismatch_is_listed_with_its_index(tmp_path):
    w = _workload(n=20)
    w.ref_pred[[3, 11]] = (w.ref_pred[[3, 11]] + 1) % 4
    with PyDevice() as d:
        rep = run_evaluation(w, [DeviceSpec(d.path)], tmp_path, timeout=0.5)
    assert rep["mismatches"] == 2
    assert [m["index"] for m in rep["mismatch_list"]] == [3, 11]


def test_interrupt_leaves_a_partial_report_and_resume_completes_it(tmp_path):
    w = _workload(n=60)

    def stop_early(done, total):
        if done >= 10:
            raise KeyboardInterrupt

    with PyDevice(delay=0.01) as d:
        with pytest.raises(KeyboardInterrupt):
            run_evaluation(w, [DeviceSpec(d.path)], tmp_path, timeout=0.5, progress=stop_early)
        partial = json.loads((tmp_path / "report.json").read_text())
        assert not partial["complete"] and 10 <= partial["samples"] < 60
        done_before = set(read_samples(tmp_path / "samples.jsonl"))
        # a torn last line (as from a kill mid-write) is dropped on resume
        with open(tmp_path / "samples.jsonl", "a") as f:
            f.write('{"index": 59, "lab')
        with pytest.raises(DitmosError, match="--resume"):
            run_evaluation(w, [DeviceSpec(d.path)], tmp_path, timeout=0.5)
        before = d.inferences
        rep = run_evaluation(w, [DeviceSpec(d.path)], tmp_path, timeout=0.5, resume=True)
    assert rep["complete"] and rep["samples"] == 60 and rep["mismatches"] == 0
    assert d.inferences - before == 60 - len(done_before)  # only the missing ones were measured
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert sorted(json.loads(s)["index"] for s in lines) == list(range(60))


def test_wrong_model_is_refused_with_what_to_do(tmp_path):
    w = _workload(hash_="f" * 64)
    with PyDevice() as d:
        with pytest.raises(DitmosError, match="runs model 0123456789abcdef.*rebuild.*reflash"):
            run_evaluation(w, [DeviceSpec(d.path)], tmp_path, timeout=0.5)


def test_resume_refuses_another_model(tmp_path):
    w = _workload(n=5)
    with PyDevice() as d:
        run_evaluation(w, [DeviceSpec(d.path)], tmp_path, timeout=0.5)
    w2 = _workload(n=5, hash_="1" * 64)
    with pytest.raises(DitmosError, match="needs the same model"):
        run_evaluation(w2, [DeviceSpec("/nonexistent")], tmp_path, timeout=0.5, resume=True)
