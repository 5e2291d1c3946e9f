"""The proof: generated C compiled with gcc -std=c99 -Wall -Wextra -Werror
gives exactly the TFLM interpreter's int8 outputs (zero tolerance) for the
selector, every classifier and the composed prediction, with both kernel
sets and every memory strategy."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.codegen import generate, host
from ditmos.quantize.reference import ComposedReference


def _reference_outputs(int8_dir, x_float):
    ref = ComposedReference(int8_dir)
    xq = ref.quantize_input(x_float)
    rows = []
    for x in xq:
        route, feats = ref.run_selector(x)
        logits = [ref.run_classifier(k, x, feats) for k in range(ref.K)]
        rows.append((route, logits, ref.predict_one(x)))
    return ref, xq, rows


def _assert_exact(hm, xq, rows, what):
    for i, (x, (route, logits, (pred, rt, scores))) in enumerate(zip(xq, rows)):
        np.testing.assert_array_equal(hm.run_selector(x), route, err_msg=f"{what}: route logits, sample {i}")
        for k, lg in enumerate(logits):
            np.testing.assert_array_equal(hm.run_classifier(k, x), lg, err_msg=f"{what}: classifier {k}, sample {i}")
        p2, r2, s2 = hm.infer(x)
        assert (p2, r2) == (pred, rt), f"{what}: composed prediction, sample {i}"
        np.testing.assert_array_equal(s2, scores, err_msg=f"{what}: scores, sample {i}")


@pytest.fixture(scope="module")
def reference(cg_int8, cg_test_x):
    return _reference_outputs(cg_int8, cg_test_x)


@pytest.mark.parametrize("strategy", ["slicing", "greedy", "none"])
@pytest.mark.parametrize("kernels", ["ref", "cm7"])
def test_generated_model_is_bit_exact(cg_int8, reference, tmp_path, strategy, kernels):
    ref, xq, rows = reference
    man = generate(cg_int8, tmp_path, kernels=kernels, strategy=strategy)
    assert man["arena_bytes"] == man["memory"]["peak_bytes"][strategy]
    hm = host.load(tmp_path, kernels)
    _assert_exact(hm, xq, rows, f"{strategy}/{kernels}")


def test_ram_budget_recomputes_and_stays_exact(cg_int8, reference, tmp_path):
    ref, xq, rows = reference
    full = generate(cg_int8, tmp_path / "full", strategy="slicing")
    man = generate(cg_int8, tmp_path / "budget", strategy="slicing", ram_budget=full["arena_bytes"] - 1)
    assert man["recompute"] == ["feat_1"]
    assert man["arena_bytes"] < full["arena_bytes"]
    assert any(layer.get("recomputed") for layer in man["layers"])
    hm = host.load(tmp_path / "budget", "ref")
    _assert_exact(hm, xq, rows, "slicing+recompute")


def test_impossible_ram_budget_is_a_clear_error(cg_int8, tmp_path):
    from ditmos.errors import DitmosError

    with pytest.raises(DitmosError, match="more than the RAM budget of 64 bytes"):
        generate(cg_int8, tmp_path, ram_budget=64)


def test_profile_hook_called_once_per_layer(cg_int8, cg_test_x, tmp_path):
    """With -DDITMOS_PROFILE the code reports every layer index in order."""
    import ctypes

    man = generate(cg_int8, tmp_path, profile=True)
    assert "#define DITMOS_PROFILE 1" in (tmp_path / "model.h").read_text()
    hook = tmp_path / "hook.c"
    hook.write_text(
        "#include <stdint.h>\n"
        "uint16_t seen[256]; int n_seen = 0;\n"
        "void ditmos_profile_layer(uint16_t i);\n"
        "void ditmos_profile_layer(uint16_t i) { if (n_seen < 256) seen[n_seen++] = i; }\n"
    )
    lib = host.compile_model(tmp_path, "ref", extra_flags=[str(hook)])
    hm = host.HostModel(lib, input_size=cg_test_x[0].size, num_classes=man["num_classes"], K=man["K"])
    ref = ComposedReference(cg_int8)
    pred, route, _ = hm.infer(ref.quantize_input(cg_test_x[0]))
    c = ctypes.CDLL(str(lib))
    n = ctypes.c_int.in_dll(c, "n_seen").value
    seen = list((ctypes.c_uint16 * 256).in_dll(c, "seen"))[:n]
    want = sorted(
        layer["layer_index"] for layer in man["layers"] if layer["program"] in ("selector", f"classifier_{route}")
    )
    assert seen == want
    assert max(seen) < man["num_layers"]


def _assert_run_exact(int8_dir, run_dir, tmp_path, what):
    """Every test-split sample of a trained run, with both kernel sets."""
    from ditmos.training.rundir import load_run_data

    data = load_run_data(run_dir)
    assert len(data.x_test) > 0, f"{what}: empty test split"
    ref, xq, rows = _reference_outputs(int8_dir, data.x_test)
    for kernels in ("ref", "cm7"):
        generate(int8_dir, tmp_path / kernels, kernels=kernels)
        _assert_exact(host.load(tmp_path / kernels, kernels), xq, rows, f"{what}/{kernels}")
    return len(xq)


@pytest.mark.slow
def test_trained_tiny_run_is_bit_exact_on_the_test_split(tiny_int8, tiny_run, tmp_path):
    """A real trained DiTMoS run (hapt): every sample of its test split."""
    _assert_run_exact(tiny_int8, tiny_run, tmp_path, "tiny run")


def test_trained_tiny_fsdd_run_is_bit_exact_on_the_test_split(tiny_int8_fsdd, tiny_run_fsdd, tmp_path):
    """A real trained DiTMoS run on fsdd MFCC frames (32x13, 10 classes, the
    ``mfcc`` architecture family): every sample of its test split."""
    import json

    man = json.loads((tiny_int8_fsdd / "manifest.json").read_text())
    assert man["num_classes"] == 10 and man["K"] == 3 and man["input_shape"] == [32, 13]
    _assert_run_exact(tiny_int8_fsdd, tiny_run_fsdd, tmp_path, "tiny fsdd run")


def test_requantised_links_match_the_reference(cg_int8, cg_test_x, tmp_path):
    """Links that say ``requantize`` (window and selector feature) are
    requantised with TFLM's arithmetic exactly as the host reference does."""
    import json
    import shutil

    int8 = tmp_path / "int8"
    shutil.copytree(cg_int8, int8)
    man = json.loads((int8 / "manifest.json").read_text())
    for link in man["links"]:
        if link["to"] in ("classifier_0:window", "classifier_1:sel_feat_1"):
            fq = link["from_quant"]
            link["requantize"] = True
            link["to_quant"] = {"scale": fq["scale"] * 1.37, "zero_point": fq["zero_point"] + 3}
    (int8 / "manifest.json").write_text(json.dumps(man))
    ref, xq, rows = _reference_outputs(int8, cg_test_x)
    gen = generate(int8, tmp_path / "gen", kernels="cm7")
    kinds = [(row["program"], row["kind"]) for row in gen["layers"]]
    assert ("classifier_0", "requantize") in kinds and ("classifier_1", "requantize") in kinds
    _assert_exact(host.load(tmp_path / "gen", "cm7"), xq, rows, "requantised links")


def test_four_byte_alignment_is_exact_and_no_larger(cg_int8, reference, tmp_path):
    ref, xq, rows = reference
    a8 = generate(cg_int8, tmp_path / "a8")
    a4 = generate(cg_int8, tmp_path / "a4", alignment=4)
    assert a4["arena_bytes"] <= a8["arena_bytes"]
    assert all(b["offset"] % 4 == 0 for b in a4["memory"]["plan"]["buffers"])
    _assert_exact(host.load(tmp_path / "a4", "ref"), xq, rows, "alignment 4")
