"""The harness against the host-compiled firmware on a pseudo-terminal (the fake device):
clean evaluation, and fault injection (dropped bytes, flipped bits, stalls, reboots)
ending in exactly the same samples and report."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.harness.evaluate import DeviceSpec, Workload, read_samples, run_evaluation
from ditmos.harness.faults import FaultPlan, FaultProxy

FIXTURE = Path(__file__).resolve().parents[1] / "firmware" / "fixtures" / "tiny_model"
N = 150


def _fixture_model():
    spec = importlib.util.spec_from_file_location("fixture_model", FIXTURE / "fixture_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def host_build(tmp_path_factory):
    from ditmos.boards.build import build_project

    return build_project("host", FIXTURE, tmp_path_factory.mktemp("harness_host"))


@pytest.fixture(scope="module")
def workload():
    fm = _fixture_model()
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(N, fm.T, fm.C), dtype=np.int8)
    ref = [fm.predict(x[i]) for i in range(N)]
    pred = np.array([r[0] for r in ref])
    labels = np.where(rng.random(N) < 0.8, pred, rng.integers(0, fm.NUM_CLASSES, N))
    return Workload(
        inputs=x,
        labels=labels,
        ref_pred=pred,
        ref_route=np.array([r[1] for r in ref]),
        ref_scores=np.stack([r[2] for r in ref]).astype(np.int8),
        model_hash=fm.MODEL_HASH + "0" * 48,
        num_classes=fm.NUM_CLASSES,
        num_classifiers=fm.K,
        class_names=["a", "b", "c", "d"],
    )


# what differs between two runs of the same samples: who measured, when, and the
# host board's wall-clock latency
_RUN_SPECIFIC = ("devices", "written", "meta", "latency", "per_layer_latency")


def _comparable(report):
    return {k: v for k, v in report.items() if k not in _RUN_SPECIFIC}


def _samples(path):
    recs = read_samples(path / "samples.jsonl")
    return {
        i: {k: v for k, v in r.items() if k not in ("device", "boot", "cost", "layer_cost")} for i, r in recs.items()
    }


@pytest.fixture(scope="module")
def clean(host_build, workload, tmp_path_factory):
    from ditmos.boards.host import HostDevice

    out = tmp_path_factory.mktemp("clean_eval")
    with HostDevice(host_build) as dev:
        rep = run_evaluation(workload, [DeviceSpec(dev.url)], out, timeout=1.0)
    return out, rep


def test_clean_run_on_the_fake_device_matches_the_reference(clean, workload):
    out, rep = clean
    assert rep["complete"] and rep["samples"] == N
    assert rep["mismatches"] == 0 and rep["score_mismatches"] == 0 and rep["route_mismatches"] == 0
    assert rep["accuracy"] == pytest.approx(float(np.mean(workload.ref_pred == workload.labels)))
    lat = rep["latency"]  # host wall-clock time, labelled as such, never cycles
    assert lat["kind"] == "nanoseconds" and lat["unit"] == "us" and lat["available"]
    assert lat["clock"] == "host wall clock" and "clock_hz" not in lat and "cycles" not in lat
    recs = read_samples(out / "samples.jsonl")
    assert all(r["cost_kind"] == "nanoseconds" and r["cost"] > 0 for r in recs.values())
    assert lat["median"] == pytest.approx(np.median([r["cost"] for r in recs.values()]) / 1000)
    assert rep["devices"][0]["board"] == "host"
    assert rep["devices"][0]["stats"]["inferences"] == N
    assert sorted(_samples(out)) == list(range(N))


def test_faults_lose_and_duplicate_nothing_and_give_the_same_report(host_build, workload, clean, tmp_path):
    from ditmos.boards.host import HostDevice

    clean_out, clean_rep = clean
    plan = FaultPlan(
        seed=11, drop_rate=0.0015, flip_rate=0.0015, stall_rate=0.02, stall_seconds=0.5, reboot_at=(40, 100)
    )
    with HostDevice(host_build) as dev, FaultProxy(dev.url, plan) as proxy:
        rep = run_evaluation(workload, [DeviceSpec(proxy.url)], tmp_path, timeout=0.3, retries=20)
        boots = dev.boots
    inj = proxy.injected
    assert inj["dropped"] > 0 and inj["flipped"] > 0 and inj["stalls"] > 0, inj
    assert inj["reboots"] == 2 and boots == 3
    link = rep["devices"][0]["link"]
    assert link["retransmissions"] > 0
    assert len(rep["devices"][0]["reboots"]) == 2  # both reboots detected by the boot counter
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == N  # nothing duplicated ...
    assert _samples(tmp_path) == _samples(clean_out)  # ... nothing lost, identical answers
    assert _comparable(rep) == _comparable(clean_rep)


def test_a_device_with_another_model_is_refused(host_build, workload, tmp_path):
    from ditmos.boards.host import HostDevice

    other = Workload(**{**workload.__dict__, "model_hash": "ab" * 32})
    with HostDevice(host_build) as dev:
        with pytest.raises(DitmosError, match=r"runs model 5eed0000f17e5eed but .* abababab"):
            run_evaluation(other, [DeviceSpec(dev.url)], tmp_path, timeout=1.0)
    assert json.loads((tmp_path / "report.json").read_text())["samples"] == 0
