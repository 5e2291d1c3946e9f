"""The compared single and early-exit CNNs through the same deployment path as
DiTMoS: `ditmos quantize --method`, the code generator (one network, exit
tests in the int8 confidence domain), compiled for the host and checked bit
for bit against the host TFLM reference, on every path through the exits."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from ditmos.codegen import generate
from ditmos.codegen.host import load
from ditmos.errors import DitmosError
from ditmos.methods import method_run_dir
from ditmos.quantize.reference import NetworkReference, exit_taken, exit_threshold_q, reference_for
from ditmos.training.rundir import load_run_data


def test_methods_resolve_to_their_run_directories(tiny_compare_networks):
    run = tiny_compare_networks
    assert method_run_dir(run) == run
    ee = method_run_dir(run, "early_exit")
    assert ee == run / "compare" / "width_1" / "early_exit_s0"
    info = json.loads((ee / "export" / "export.json").read_text())
    assert info["kind"] == "network" and info["outputs"][-1] == f"exit_{len(info['outputs'])}"
    single = json.loads((method_run_dir(run, "weak_equal_macs") / "export" / "export.json").read_text())
    assert single["outputs"] == ["logits"] and single["exit_threshold"] is None
    with pytest.raises(DitmosError, match="not in .*deployable methods there: ditmos, early_exit, weak_equal_macs"):
        method_run_dir(run, "equal_params")
    with pytest.raises(DitmosError, match="soft_moe' cannot be deployed"):
        method_run_dir(run, "soft_moe")
    with pytest.raises(DitmosError, match="no comparison"):
        method_run_dir(ee, "early_exit")


def test_threshold_in_the_int8_softmax_domain():
    assert exit_threshold_q(None) == 128 and exit_threshold_q(float("inf")) == 128
    assert exit_threshold_q(0.0) == -128 and exit_threshold_q(-3.0) == -128
    assert exit_threshold_q(0.5) == 0 and exit_threshold_q(0.9) == 103  # ceil(230.4) - 128
    assert exit_threshold_q(1.0) == 128  # q <= 127: never
    conf = [np.array([-128, 100], np.int8), np.array([0, 127], np.int8)]
    assert exit_taken(conf, [100, 0]) == 0
    assert exit_taken(conf, [101, 0]) == 1
    assert exit_taken(conf, [101, 128]) == 2


@pytest.mark.slow
def test_single_cnn_quantize_cli_and_generated_c_match_the_reference(tiny_compare_networks, tmp_path):
    from ditmos.quantize.cli import quantize

    r = CliRunner().invoke(
        quantize, [str(tiny_compare_networks), "--method", "weak_equal_macs", "--calibration-samples", "100", "--quiet"]
    )
    assert r.exit_code == 0, r.output
    int8 = method_run_dir(tiny_compare_networks, "weak_equal_macs") / "int8"
    assert r.output.strip() == str(int8)
    m = json.loads((int8 / "manifest.json").read_text())
    assert m["kind"] == "network" and m["K"] == 1 and m["exits"] == []
    metrics = json.loads((int8.parent / "metrics.json").read_text())
    assert metrics["test"]["int8"]["exits"] == [metrics["quantization"]["test"]["samples"]]
    cg = generate(int8, tmp_path / "gen")
    assert cg["kind"] == "network" and len(cg["exits"]) == 1
    assert cg["exits"][0]["macs"] == cg["macs"]["network"]
    assert "#define DITMOS_MODEL_KIND       1" in (tmp_path / "gen" / "model.h").read_text()
    model = load(tmp_path / "gen")
    ref = reference_for(int8)
    assert isinstance(ref, NetworkReference)
    x_q = ref.quantize_input(load_run_data(int8.parent).x_test[:60])
    pred, route, scores = ref.predict(x_q)
    assert set(route.tolist()) == {0}
    for i in range(len(x_q)):
        p, r, s = model.infer(x_q[i])
        assert (p, r) == (pred[i], 0) and np.array_equal(s, scores[i]), i


@pytest.mark.slow
def test_early_exit_generated_c_follows_the_reference_on_every_path(tiny_early_exit, tmp_path):
    int8 = tiny_early_exit / "int8"
    m = json.loads((int8 / "manifest.json").read_text())
    cg = generate(int8, tmp_path / "gen")
    exits = cg["exits"]
    assert len(exits) == m["K"] == len(m["exits"]) + 1 >= 2
    assert [e["threshold_q"] for e in exits[:-1]] == [e["threshold_q"] for e in m["exits"]]
    assert all(a["macs"] < b["macs"] and a["layers"] < b["layers"] for a, b in zip(exits, exits[1:]))
    # one arena for every path: the plan of the longest path, checked for overlaps
    assert cg["arena_bytes"] == cg["memory"]["peak_bytes"]["slicing"]
    model = load(tmp_path / "gen")
    ref = NetworkReference(int8)
    x_q = ref.quantize_input(load_run_data(tiny_early_exit).x_test)
    pred, route, scores = ref.predict(x_q)
    assert set(route.tolist()) >= {0, len(exits) - 1}, "the fixture must take both paths"
    outs = ref.run_all(x_q[:20])
    names = [e["logits"] for e in m["exits"]] + [m["final"]]
    for i in range(len(x_q)):
        p, r, s = model.infer(x_q[i])
        assert (p, r) == (pred[i], route[i]), i
        assert np.array_equal(s, scores[i]), i
    for i in range(20):
        for e, name in enumerate(names):  # every exit's logits, taken or not
            assert np.array_equal(model.run_exit(e, x_q[i]), outs[name][i]), (i, e)


def test_a_network_int8_dir_without_its_model_is_a_clear_error(tiny_early_exit, tmp_path):
    bad = tmp_path / "int8"
    shutil.copytree(tiny_early_exit / "int8", bad)
    (bad / "network.tflite").unlink()
    with pytest.raises(DitmosError, match="network.tflite"):
        generate(bad, tmp_path / "gen")
