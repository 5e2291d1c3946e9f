"""Conversion, manifest, output mapping and the composed reference on a small
export directory that follows the stage contract (quantize_toy_export)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ditmos.quantize import qmath
from ditmos.quantize.reference import ComposedReference
from quantize_toy_export import make_data, write_export

T, C, K, NUM_CLASSES, SHARED = 32, 3, 3, 4, (1, 2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from ditmos.quantize.run import load_export, quantize_models

    root = tmp_path_factory.mktemp("toy_run")
    export = write_export(root / "export", T=T, C=C, K=K, num_classes=NUM_CLASSES, shared=SHARED)
    models = load_export(export)
    x, y = make_data(160, T, C, NUM_CLASSES, seed=1)
    norm = {"mean": [0.5, -0.25, 0.0], "std": [1.0, 2.0, 0.5]}
    (root / "int8").mkdir()
    (root / "int8" / "stale.tflite").write_bytes(b"old")  # replaced as a whole
    int8 = quantize_models(models, root / "int8", x[:100], norm)
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []
    return {
        "root": root,
        "models": models,
        "int8": int8,
        "x_test": x[100:],
        "y_test": y[100:],
        "x_calib": x[:100],
        "norm": norm,
    }


@pytest.fixture(scope="module")
def manifest(toy):
    return json.loads((toy["int8"] / "manifest.json").read_text())


def test_manifest_content(toy, manifest):
    d = toy["int8"]
    assert manifest["format"] == "ditmos-int8/1"
    assert manifest["K"] == K and manifest["num_classes"] == NUM_CLASSES
    assert manifest["class_names"] == [f"c{i}" for i in range(NUM_CLASSES)]
    assert manifest["input_shape"] == [T, C]
    assert manifest["normalization"] == toy["norm"]
    assert manifest["calibration"] == {"split": "train", "samples": 100, "seed": 0}
    order = ["selector"] + [f"classifier_{k}" for k in range(K)]
    assert list(manifest["submodels"]) == order
    total = hashlib.sha256()
    for name in order:
        sub = manifest["submodels"][name]
        data = (d / sub["file"]).read_bytes()
        assert sub["sha256"] == hashlib.sha256(data).hexdigest()
        total.update(data)
        for t in sub["inputs"] + sub["outputs"]:
            assert t["dtype"] == "int8" and -128 <= t["zero_point"] <= 127 and t["scale"] > 0
        assert set(sub["ops"]) <= {
            "RESHAPE",
            "EXPAND_DIMS",
            "CONV_2D",
            "MAX_POOL_2D",
            "CONCATENATION",
            "FULLY_CONNECTED",
        }
    assert manifest["model_hash"] == total.hexdigest()
    assert sorted(p.name for p in d.iterdir()) == sorted([f"{n}.tflite" for n in order] + ["manifest.json"])
    # Keras order and shapes
    sel = manifest["submodels"]["selector"]
    assert [t["name"] for t in sel["inputs"]] == ["window"]
    assert [t["name"] for t in sel["outputs"]] == ["route", "feat_1", "feat_2"]
    assert [t["shape"] for t in sel["outputs"]] == [[1, K], [1, T // 2, 8], [1, T // 4, 8]]
    clf = manifest["submodels"]["classifier_0"]
    assert [t["name"] for t in clf["inputs"]] == ["window", "sel_feat_1", "sel_feat_2"]
    assert [t["name"] for t in clf["outputs"]] == ["logits"]
    assert manifest["input_quant"] == {k: sel["inputs"][0][k] for k in ("scale", "zero_point")}


def test_macs_hand_computed(manifest):
    # selector: conv 32*8*5*3 + conv 16*8*3*8 + conv 8*4*3*8 + fc 16*16 + fc 16*3
    assert manifest["macs"]["selector"] == 3840 + 3072 + 768 + 256 + 48
    # classifier: conv 32*8*5*3 + conv 16*8*3*16 + conv 8*4*3*16 + fc 16*16 + fc 16*4
    for k in range(K):
        assert manifest["macs"][f"classifier_{k}"] == 3840 + 6144 + 1536 + 256 + 64


def test_batchnorm_folded_and_weights_per_channel(toy):
    from ai_edge_litert import schema_py_generated as schema

    data = (toy["int8"] / "selector.tflite").read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    sg = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    convs = [op for op in sg.operators if codes[op.opcodeIndex] == schema.BuiltinOperator.CONV_2D]
    assert len(convs) == 3 and len(sg.operators) == 12  # no MUL/ADD left from BatchNorm
    for op in convs:
        w = sg.tensors[op.inputs[1]]
        assert w.type == schema.TensorType.INT8
        assert len(w.quantization.scale) == w.shape[0] > 1  # one scale per output channel
    fcs = [op for op in sg.operators if codes[op.opcodeIndex] == schema.BuiltinOperator.FULLY_CONNECTED]
    assert len(fcs) == 2
    for op in fcs:
        w = sg.tensors[op.inputs[1]]
        assert len(w.quantization.scale) == w.shape[0] > 1


def test_outputs_are_mapped_by_name_not_position(toy, manifest):
    """The flatbuffer orders outputs differently from Keras; every named output
    must be the tensor LiteRT's signature runner returns under that name."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    positions = {}
    for name, sub in manifest["submodels"].items():
        positions[name] = ([t["index"] for t in sub["inputs"]], [t["index"] for t in sub["outputs"]])
    sel_out = positions["selector"][1]
    assert sel_out != sorted(sel_out), "toy selector no longer reorders outputs; test lost its teeth"
    assert positions["classifier_0"][0] != sorted(positions["classifier_0"][0])

    ref = ComposedReference(toy["int8"])
    x_q = ref.quantize_input(toy["x_test"][:5])
    for name in ("selector", "classifier_1"):
        it = Interpreter(
            model_content=(toy["int8"] / f"{name}.tflite").read_bytes(),
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        )
        runner = it.get_signature_runner("serve")
        for i in range(len(x_q)):
            route, feats = ref.run_selector(x_q[i])
            if name == "selector":
                inputs = {"window": x_q[i][None]}
                ours = {"route": route, **feats}
            else:
                inputs = {n: v[None] for n, v in ref.classifier_inputs(1, x_q[i], feats).items()}
                ours = {"logits": ref.run_classifier(1, x_q[i], feats)}
            theirs = runner(**inputs)
            assert set(theirs) == set(ours)
            for key in ours:
                assert np.array_equal(theirs[key][0], ours[key]), (name, key)


def test_tflm_and_litert_ref_agree_bit_for_bit(toy):
    tflm = ComposedReference(toy["int8"])
    lite = ComposedReference(toy["int8"], backend="litert-ref")
    x_q = tflm.quantize_input(toy["x_test"])
    a, b = tflm.run_all(x_q), lite.run_all(x_q)
    assert set(a) == set(b) == {"route", "feat_1", "feat_2"} | {f"logits_{k}" for k in range(K)}
    for key in a:
        assert a[key].dtype == np.int8 and np.array_equal(a[key], b[key]), key
    for got, want in zip(tflm.predict(x_q), lite.predict(x_q)):
        assert np.array_equal(got, want)


def test_composed_prediction_is_selector_argmax_then_that_classifier(toy):
    ref = ComposedReference(toy["int8"])
    x_q = ref.quantize_input(toy["x_test"])
    pred, route, logits = ref.predict(x_q)
    assert pred.shape == route.shape == (len(x_q),) and logits.shape == (len(x_q), NUM_CLASSES)
    every = ref.run_all(x_q)
    assert np.array_equal(route, np.argmax(every["route"], axis=1))
    for i in range(len(x_q)):
        assert np.array_equal(logits[i], every[f"logits_{route[i]}"][i])
        assert pred[i] == int(np.argmax(logits[i]))
    # one window at a time gives the same answer (inputs are re-set before every invoke)
    p1, r1, l1 = ref.predict(x_q[3])
    assert (p1[0], r1[0]) == (pred[3], route[3]) and np.array_equal(l1[0], logits[3])


def test_int8_tracks_the_float_models(toy, manifest):
    """Dequantised int8 outputs stay close to the float Keras outputs."""
    from ditmos.quantize.run import selector_features

    ref = ComposedReference(toy["int8"])
    x = toy["x_test"]
    x_q = ref.quantize_input(x)
    every = ref.run_all(x_q)
    feats = selector_features(toy["models"], x)
    # the int8 route is relu(logits - route_floor), see floored_output
    feats["route"] = np.maximum(feats["route"] - manifest["route_floor"], 0)
    for t in manifest["submodels"]["selector"]["outputs"]:
        deq = qmath.dequantize(every[t["name"]], t["scale"], t["zero_point"])
        lo, hi = t["scale"] * (-128 - t["zero_point"]), t["scale"] * (127 - t["zero_point"])
        # outside the calibrated range int8 saturates; inside, a few steps of error
        want = np.clip(feats[t["name"]].reshape(deq.shape), lo, hi)
        err = np.abs(deq - want)
        assert err.mean() < 2 * t["scale"] and err.max() < 20 * t["scale"], t["name"]


def test_requantised_links_mean_the_same_real_values(toy, manifest):
    """Where a classifier's sel_feat input has other (scale, zero point) than the
    selector output feeding it, the reference requantises with TFLM arithmetic,
    and the result represents the same real values (within one step)."""
    links = [l for l in manifest["links"] if l["from"].startswith("selector:")]
    assert len(links) == K * len(SHARED)
    assert any(l["requantize"] for l in links), "toy lost its requantised link"
    ref = ComposedReference(toy["int8"])
    x_q = ref.quantize_input(toy["x_test"][:20])
    for link in links:
        frm, to = link["from_quant"], link["to_quant"]
        sub, inp = link["to"].split(":")
        k = int(sub.split("_")[1])
        spec = next(t for t in manifest["submodels"][sub]["inputs"] if t["name"] == inp)
        assert (spec["scale"], spec["zero_point"]) == (to["scale"], to["zero_point"])
        for i in range(len(x_q)):
            _, feats = ref.run_selector(x_q[i])
            given = ref.classifier_inputs(k, x_q[i], feats)[inp]
            src = feats[link["from"].split(":")[1]]
            if not link["requantize"]:
                assert np.array_equal(given, src)
                continue
            assert np.array_equal(
                given, qmath.requantize(src, frm["scale"], frm["zero_point"], to["scale"], to["zero_point"])
            )
            real = qmath.dequantize(src, frm["scale"], frm["zero_point"])
            direct = np.clip(np.round(real / to["scale"]) + to["zero_point"], -128, 127)
            assert np.abs(given.astype(int) - direct).max() <= 1
        if link["requantize"]:
            m, s = qmath.quantize_multiplier(qmath.effective_scale(frm["scale"], to["scale"]))
            assert (link["multiplier"], link["shift"]) == (m, s)


def test_reference_rejects_tampered_model(toy, tmp_path):
    import shutil

    from ditmos.errors import DitmosError

    copy = tmp_path / "int8"
    shutil.copytree(toy["int8"], copy)
    data = bytearray((copy / "classifier_2.tflite").read_bytes())
    data[-1] ^= 1
    (copy / "classifier_2.tflite").write_bytes(bytes(data))
    with pytest.raises(DitmosError, match=r"classifier_2\.tflite: sha256"):
        ComposedReference(copy)


def test_evaluate_reports_float_and_int8(toy):
    from ditmos.quantize.run import evaluate

    r = evaluate(toy["models"], toy["int8"], toy["x_test"], toy["y_test"])
    ref = ComposedReference(toy["int8"])
    pred, route, _ = ref.predict(ref.quantize_input(toy["x_test"]))
    assert r["int8"]["ditmos"] == pytest.approx(np.mean(pred == toy["y_test"]))
    assert r["int8"]["routing"] == np.bincount(route, minlength=K).tolist()
    assert len(r["float"]["classifiers"]) == len(r["int8"]["classifiers"]) == K
    assert 0.0 <= r["route_agreement"] <= 1.0 and r["samples"] == len(toy["y_test"])


def test_conv_twin_is_the_same_integer_computation_in_tflm(toy, manifest):
    """LiteRT-REF checks the FC->1x1-conv twin; in TFLM the twin must give the
    very same bytes as the deployed model, on every output."""
    from ditmos.quantize.litert_twin import conv_twin
    from ditmos.quantize.reference import _TFLMRunner
    from ditmos.quantize.tflite_model import read_tflite

    ref = ComposedReference(toy["int8"])
    x_q = ref.quantize_input(toy["x_test"][:25])
    for name in ("selector", "classifier_0"):
        data = (toy["int8"] / f"{name}.tflite").read_bytes()
        twin = conv_twin(data)
        ops = [op.name for op in read_tflite(twin).ops]
        assert "FULLY_CONNECTED" not in ops and ops.count("CONV_2D") == 3 + 2
        a, b = _TFLMRunner(data, name), _TFLMRunner(twin, name)
        sub = manifest["submodels"][name]
        a.set_output_count(len(sub["outputs"]))
        b.set_output_count(len(sub["outputs"]))
        for i in range(len(x_q)):
            _, feats = ref.run_selector(x_q[i])
            named = {"window": x_q[i]} if name == "selector" else ref.classifier_inputs(0, x_q[i], feats)
            inputs = [
                np.ascontiguousarray(named[t["name"]].reshape(t["shape"]))
                for t in sorted(sub["inputs"], key=lambda t: t["index"])
            ]
            for u, v in zip(a.run(inputs), b.run(inputs)):
                assert np.array_equal(u, v)


def test_every_firmware_op_agrees_between_tflm_and_litert_ref():
    """Ops the toy does not use (depthwise conv, ADD, average pool, MEAN,
    bias-less dense, SOFTMAX) in one model: TFLM and LiteRT-REF agree bit for bit."""
    import keras

    from ditmos.quantize.convert import convert_int8
    from ditmos.quantize.reference import _LiteRTRefRunner, _TFLMRunner
    from ditmos.quantize.tflite_model import check_firmware_ops, read_tflite

    L = keras.layers
    keras.utils.set_random_seed(3)
    inp = keras.Input((T, C), batch_size=1, name="window")
    x = L.Conv1D(8, 3, padding="same", activation="relu")(inp)
    y = L.DepthwiseConv1D(3, padding="same", activation="relu6")(x)
    z = L.AveragePooling1D(2)(L.Add()([x, y]))
    h = L.Dense(NUM_CLASSES, use_bias=False)(L.GlobalAveragePooling1D()(z))
    model = keras.Model(inp, L.Softmax(name="logits")(h))
    xs, _ = make_data(120, T, C, NUM_CLASSES, seed=5)
    data = convert_int8(model, {"window": xs[:60]}, what="ops")
    info = read_tflite(data)
    check_firmware_ops(info, what="ops")
    assert {"DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= {
        op.name for op in info.ops
    }
    a, b = _TFLMRunner(data, "ops"), _LiteRTRefRunner(data, "ops")
    a.set_output_count(1)
    b.set_output_count(1)
    q = qmath.quantize(xs[60:], info.inputs[0].scale, info.inputs[0].zero_point)
    outs = [(a.run([q[i : i + 1]])[0], b.run([q[i : i + 1]])[0]) for i in range(len(q))]
    assert all(np.array_equal(u, v) for u, v in outs)
    assert len({u.tobytes() for u, _ in outs}) > 10  # not a constant output


def test_floored_route_keeps_the_float_argmax(toy, manifest):
    """The route output is floored (finer int8 step); the float argmax is
    unchanged on every calibration window, the features are untouched."""
    from ditmos.quantize.convert import float_outputs, output_names
    from ditmos.quantize.run import floored_output, selector_features

    x = toy["x_calib"]
    plain = selector_features(toy["models"], x)
    floored, floor = floored_output(toy["models"].selector, "route", plain["route"])
    assert floor == manifest["route_floor"] and floor < plain["route"].max(axis=1).min()
    out = dict(zip(output_names(floored), float_outputs(floored, {"window": x})))
    assert np.array_equal(np.argmax(out["route"], axis=1), np.argmax(plain["route"], axis=1))
    assert np.allclose(out["route"], np.maximum(plain["route"] - floor, 0), atol=1e-5)
    for name in ("feat_1", "feat_2"):
        assert np.array_equal(out[name], plain[name])
    route = manifest["submodels"]["selector"]["outputs"][0]
    span = route["scale"] * 255
    assert span < 1.5 * (plain["route"].max() - floor) + 1e-6  # range starts at the floor
