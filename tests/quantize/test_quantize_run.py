"""quantize_run on the real tiny training run (session fixtures tiny_run / tiny_int8)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ditmos.quantize.reference import ComposedReference


@pytest.fixture(scope="module")
def run_data(tiny_run):
    from ditmos.training.rundir import load_run_data

    return load_run_data(tiny_run)


def test_metrics_record_tflm_accuracy_and_keep_training_keys(tiny_run, tiny_int8, run_data):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert "float" in metrics["test"] and "ditmos" in metrics["test"]["float"]  # training's keys kept
    acc = metrics["test"]["int8"]["ditmos"]
    ref = ComposedReference(tiny_int8)
    pred, route, _ = ref.predict(ref.quantize_input(run_data.x_test))
    assert acc == pytest.approx(float(np.mean(pred == run_data.y_test)))
    q = metrics["quantization"]
    assert q["test"]["int8"]["routing"] == np.bincount(route, minlength=ref.K).tolist()
    assert q["test"]["float"]["ditmos"] == pytest.approx(metrics["test"]["float"]["ditmos"], abs=1e-9)
    assert 0.0 <= q["test"]["route_agreement"] <= 1.0
    assert len(q["test"]["float"]["classifiers"]) == len(q["test"]["int8"]["classifiers"]) == ref.K


def test_manifest_matches_the_run(tiny_run, tiny_int8, run_data):
    m = json.loads((tiny_int8 / "manifest.json").read_text())
    export = json.loads((tiny_run / "export" / "export.json").read_text())
    norm = json.loads((tiny_run / "normalization.json").read_text())
    assert m["K"] == export["K"] and m["class_names"] == run_data.class_names
    assert m["input_shape"] == list(run_data.x_test.shape[1:])
    assert np.allclose(m["normalization"]["mean"], norm["mean"])
    assert m["calibration"]["samples"] == 200
    for b in export["shared_blocks"]:
        feat = next(t for t in m["submodels"]["selector"]["outputs"] if t["name"] == f"feat_{b}")
        assert feat["shape"][1:] == export["feature_shapes"][f"feat_{b}"]
    assert all(m["macs"][name] > 0 for name in m["submodels"])


def test_tflm_and_litert_ref_agree_on_the_trained_models(tiny_int8, run_data):
    tflm = ComposedReference(tiny_int8)
    lite = ComposedReference(tiny_int8, backend="litert-ref")
    x_q = tflm.quantize_input(run_data.x_test[:60])
    a, b = tflm.run_all(x_q), lite.run_all(x_q)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
