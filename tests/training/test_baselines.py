"""Baselines: cost model, budget matching, int8 conversion, early-exit
threshold chosen on validation, and a short real training run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.models.arch import architecture_from_dict, costs, default_architecture_dict
from ditmos.models.baselines import (
    ConvNetSpec,
    build_convnet,
    build_early_exit,
    build_moe,
    count_cost,
    early_exit_costs,
    layer_costs,
    search_budget_spec,
    spec_cost,
    with_batch_size,
)
from ditmos.training.baselines import (
    apply_threshold,
    baseline_config,
    budget_from_architecture,
    choose_threshold,
    early_exit_spec,
    evaluate_early_exit,
    train_baselines,
)

SHAPES = {"har": ((128, 6), 6), "mfcc": ((32, 13), 10)}


def _budget(family: str, width: float, K: int | None = None):
    shape, nc = SHAPES[family]
    d = default_architecture_dict(family)
    if K is not None:
        d["K"] = K
    arch = architecture_from_dict(d, width=width)
    return arch, budget_from_architecture(arch, shape, nc)


@pytest.mark.parametrize(
    "spec",
    [
        ConvNetSpec((8, 8, 4), (15, 9, 5), (2, 2, 2), fc=64, padding="valid"),
        ConvNetSpec((5, 7), (3, 5), (1, 2), fc=0, padding="same"),
        ConvNetSpec((6, 3, 9), (7, 3, 3), (2, 1, 2), fc=16, padding="valid", head="gap"),
    ],
)
def test_analytical_cost_equals_count_on_built_model(spec):
    model = build_convnet(spec, (64, 3), 5)
    assert spec_cost(spec, (64, 3), 5) == count_cost(model)
    # Hand count of the first conv: out_len * k * in * out.
    first = layer_costs(model)["b1_conv"]
    out_len = 64 if spec.padding == "same" else 64 - spec.kernels[0] + 1
    assert first.macs == out_len * spec.kernels[0] * 3 * spec.channels[0]


@pytest.mark.parametrize("family", sorted(SHAPES))
@pytest.mark.parametrize("width", [0.25, 0.5, 1.0])
def test_ditmos_budget_agrees_with_training_cost_model(family, width):
    arch, budget = _budget(family, width)
    shape, nc = SHAPES[family]
    ref = costs(arch, shape, nc)
    assert budget.inference_macs == ref["ditmos"]["macs"]
    assert budget.selector_cost.macs == ref["selector"]["macs"]
    assert budget.total.params == ref["ditmos"]["params"]
    assert budget.total.flash_bytes == ref["ditmos"]["flash_bytes"]


@pytest.mark.parametrize("family", sorted(SHAPES))
@pytest.mark.parametrize("width", [0.25, 0.5, 1.0])
def test_budget_matched_networks_within_ten_percent(family, width):
    _, budget = _budget(family, width)
    for metric, target in (("macs", budget.inference_macs), ("params", budget.total.params)):
        matches = search_budget_spec(
            budget.selector, budget.input_shape, budget.num_classes, target=target, metric=metric, depths=(2, 3, 4)
        )
        assert matches
        for m in matches:
            built = count_cost(build_convnet(m.spec, budget.input_shape, budget.num_classes))
            value = built.macs if metric == "macs" else built.params
            assert abs(value / target - 1) <= 0.10, (metric, m.spec, value, target)


def test_budget_search_rejects_impossible_target():
    spec = ConvNetSpec((8,), (5,), (2,), fc=8)
    with pytest.raises(DitmosError, match="within 10%"):
        search_budget_spec(spec, (32, 3), 4, target=10, metric="macs", depths=(1,))
    with pytest.raises(DitmosError, match="'macs' or 'params'"):
        search_budget_spec(spec, (32, 3), 4, target=1000, metric="flash")


def test_moe_and_early_exit_costs():
    _, budget = _budget("har", 0.5)
    moe = build_moe(budget.selector, budget.classifier, budget.K, budget.input_shape, 6)
    expert = spec_cost(budget.classifier, budget.input_shape, 6)
    gate = spec_cost(budget.selector, budget.input_shape, budget.K)
    assert count_cost(moe).macs == gate.macs + budget.K * expert.macs
    spec, ratio = early_exit_spec(budget, baseline_config("quick"))
    exits = early_exit_costs(spec, budget.input_shape, 6)
    assert count_cost(build_early_exit(spec, budget.input_shape, 6)) == exits[-1]
    assert [c.macs for c in exits] == sorted(c.macs for c in exits)
    assert exits[0].macs < budget.inference_macs < exits[-1].macs


def _convert_int8(model, input_shape):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rng = np.random.default_rng(0)

    def rep():
        for _ in range(8):
            yield [rng.standard_normal((1, *input_shape)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    # Reference kernels, no XNNPACK delegate: the delegate refuses to prepare
    # once another test has switched on TensorFlow op determinism.
    interp = Interpreter(model_content=conv.convert(), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    ops = {d["op_name"] for d in interp._get_ops_details()}
    outs = [d for d in interp.get_output_details()]
    return interp, ops, outs


@pytest.mark.slow
def test_each_trained_baseline_converts_to_full_int8():
    _, budget = _budget("har", 0.25)
    shape, nc = budget.input_shape, budget.num_classes
    weak = search_budget_spec(budget.selector, shape, nc, target=budget.inference_macs)[0].spec
    ee_spec, _ = early_exit_spec(budget, baseline_config("quick"))
    cases = [
        (build_convnet, (weak, shape, nc), 1),
        (build_moe, (budget.selector, budget.classifier, budget.K, shape, nc), 1),
        (build_early_exit, (ee_spec, shape, nc), ee_spec.depth),
    ]
    allowed = {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "MAX_POOL_2D",
        "RESHAPE",
        "EXPAND_DIMS",
        "CONCATENATION",
        "MUL",
        "MEAN",
        "SOFTMAX",
        "ADD",
        "QUANTIZE",
        "DEQUANTIZE",
        "DELEGATE",
    }
    for builder, args, n_out in cases:
        model = builder(*args)
        fixed = with_batch_size(model, builder, *args, batch_size=1)
        interp, ops, outs = _convert_int8(fixed, shape)
        assert ops <= allowed, ops - allowed
        assert len(outs) == n_out
        for o in outs:
            assert o["dtype"] == np.int8 and list(o["shape"]) == [1, nc]
        # BN is folded: no stand-alone batch-norm arithmetic survives.
        assert "BATCH_NORM" not in " ".join(ops)


def test_threshold_hand_computed_case():
    # Two exits, 4 validation samples; exit 1 costs 10 MACs, exit 2 costs 30.
    def logit(p):  # logits whose softmax max prob is p for class 0 of 2
        return [np.log(p), np.log(1 - p)]

    e1 = np.array([logit(0.95), logit(0.6), logit(0.92), logit(0.55)])  # predicts 0 for all
    e2 = np.array([[0, 1], [1, 0], [1, 0], [0, 1]], dtype=float) * 5  # predicts 1,0,0,1
    y = np.array([0, 0, 0, 1])
    pred, chosen = apply_threshold([e1, e2], 0.9, [10, 30])
    assert chosen.tolist() == [0, 1, 0, 1] and pred.tolist() == [0, 0, 0, 1]
    # Budget 20 MACs: sending only the 0.55 sample on (0.55 < t <= 0.6) is
    # already 100% at 15 MACs on average; the 0.9 threshold (20 MACs) is no better.
    c = choose_threshold([e1, e2], y, [10, 30], mac_budget=20)
    assert c["val_accuracy"] == 1.0 and c["val_avg_macs"] == 15 and c["within_budget"]
    assert 0.55 < c["threshold"] <= 0.6
    # Budget 12 MACs: everything must leave at exit 1 (75%).
    c = choose_threshold([e1, e2], y, [10, 30], mac_budget=12)
    assert c["val_avg_macs"] == 10 and c["val_accuracy"] == 0.75
    # No threshold within 5 MACs: the cheapest one, flagged.
    assert not choose_threshold([e1, e2], y, [10, 30], mac_budget=5)["within_budget"]


@pytest.fixture(scope="module")
def small_har():
    """A small real subject-disjoint slice of hapt, normalised on train."""
    from ditmos.data import Normalizer, load_dataset, make_splits

    ds = load_dataset("hapt")
    sp = make_splits(ds, 0)
    rng = np.random.default_rng(0)
    pick = {
        k: np.sort(rng.choice(getattr(sp, k), n, replace=False))
        for k, n in (("train", 600), ("val", 300), ("test", 300))
    }
    norm = Normalizer.fit(ds.X[pick["train"]])
    return SimpleNamespace(
        **{f"x_{k}": norm.apply(ds.X[v]) for k, v in pick.items()},
        **{f"y_{k}": ds.y[v] for k, v in pick.items()},
        class_names=ds.class_names,
    )


def test_early_exit_threshold_ignores_the_test_split(small_har):
    import keras

    _, budget = _budget("har", 0.25)
    cfg = baseline_config("quick", {"epochs": 2})
    spec, _ = early_exit_spec(budget, cfg)
    keras.utils.set_random_seed(0)
    model = build_early_exit(spec, budget.input_shape, budget.num_classes)
    model.compile(optimizer="adam", loss=[keras.losses.SparseCategoricalCrossentropy(from_logits=True)] * spec.depth)
    model.fit(small_har.x_train, [small_har.y_train] * spec.depth, epochs=2, verbose=0)
    a = evaluate_early_exit(model, spec, small_har, budget)
    # Same model, a completely different "test" split: the threshold and every
    # validation figure stay, only test figures move.
    other = SimpleNamespace(**vars(small_har))
    other.x_test = small_har.x_train[:300][::-1].copy()
    other.y_test = (small_har.y_train[:300][::-1] + 1) % 6
    b = evaluate_early_exit(model, spec, other, budget)
    for key in ("threshold", "val_accuracy", "val_avg_macs", "threshold_within_budget"):
        assert a[key] == b[key]
    assert a["test_accuracy"] != b["test_accuracy"]
    assert a["val_avg_macs"] <= budget.inference_macs or not a["threshold_within_budget"]


def test_train_baselines_on_real_subset(small_har):
    _, budget = _budget("har", 0.25, K=3)
    res = train_baselines(
        small_har,
        budget=budget,
        seed=0,
        quiet=True,
        config={"epochs": 2, "depths": [2], "only": ["weak_equal_macs", "equal_params", "soft_moe", "early_exit"]},
    )
    assert list(res) == ["weak_equal_macs", "equal_params", "soft_moe", "early_exit"]
    for name, r in res.items():
        assert 0 <= r["val_accuracy"] <= 1 and 0 <= r["test_accuracy"] <= 1, name
        assert r["params"] > 0 and r["macs"] > 0 and r["flash_bytes"] > r["params"], name
        assert 1 <= r["best_epoch"] <= r["epochs"] == 2
    assert abs(res["weak_equal_macs"]["macs"] / budget.inference_macs - 1) <= 0.10
    assert abs(res["equal_params"]["params"] / budget.total.params - 1) <= 0.10
    assert res["soft_moe"]["macs"] > budget.inference_macs  # every expert runs
    # better than chance after two epochs on real data
    assert res["equal_params"]["test_accuracy"] > 1 / 6 + 0.1


def test_bad_baseline_config_is_rejected():
    with pytest.raises(DitmosError, match="unknown baseline config key 'epoch'"):
        baseline_config("quick", {"epoch": 3})
    with pytest.raises(DitmosError, match="unknown baseline"):
        baseline_config("quick", {"only": ["resnet"]})
    with pytest.raises(DitmosError, match="'epochs' must be an integer"):
        baseline_config("quick", {"epochs": 0})
