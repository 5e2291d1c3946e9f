"""Front end: .tflite -> 1-D IR, and clear errors for what it cannot handle."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.codegen.ir import read_tflite
from ditmos.errors import DitmosError


def test_conv1d_models_collapse_to_1d_ops(cg_int8):
    sel = read_tflite(cg_int8 / "selector.tflite", "selector")
    kinds = [op.kind for op in sel.ops if op.kind != "reshape"]
    assert kinds == ["conv1d", "maxpool", "conv1d", "maxpool", "fc", "fc"]
    conv = next(op for op in sel.ops if op.kind == "conv1d")
    assert conv.attrs["weights"].shape == (8, 5, 3)  # [O][K][I]
    assert (conv.attrs["in_len"], conv.attrs["out_len"], conv.attrs["pad"]) == (32, 32, 2)
    for op in sel.ops:  # every activation is 1-D: (T, C) or (N,)
        for i in op.inputs + op.outputs:
            assert len(sel.tensor(i).shape) in (1, 2)
    clf = read_tflite(cg_int8 / "classifier_1.tflite", "classifier_1")
    kinds = {op.kind for op in clf.ops}
    assert {"concat", "conv1d", "dwconv1d", "add", "mean", "fc", "softmax"} <= kinds


def _convert(model, x):
    from ditmos.quantize.convert import convert_int8

    return convert_int8(model, {"window": x}, what="test model")


def test_unsupported_op_names_op_and_layer(tmp_path):
    import keras

    win = keras.Input((16, 2), batch_size=1, name="window")
    h = keras.layers.Conv1D(4, 3, padding="same", name="conv")(win)
    h = keras.layers.Activation("tanh", name="squash")(h)
    out = keras.layers.Dense(3, name="route")(keras.layers.Flatten()(h))
    model = keras.Model(win, out)
    x = np.random.default_rng(0).normal(size=(8, 16, 2)).astype("float32")
    path = tmp_path / "m.tflite"
    path.write_bytes(_convert(model, x))
    with pytest.raises(DitmosError, match=r"unsupported TFLite op TANH in layer '[^']*squash"):
        read_tflite(path)


def test_not_a_flatbuffer(tmp_path):
    p = tmp_path / "bad.tflite"
    p.write_bytes(b"definitely not a model")
    with pytest.raises(DitmosError, match="bad.tflite"):
        read_tflite(p)


def test_missing_file(tmp_path):
    with pytest.raises(DitmosError, match="cannot read TFLite model"):
        read_tflite(tmp_path / "nope.tflite")


def test_expand_dims_and_flatten_shape_ops_are_collapsed(tmp_path):
    """A plain SavedModel conversion (open batch dimension) emits EXPAND_DIMS
    around the 2-D ops and SHAPE/STRIDED_SLICE/PACK for Flatten: the IR keeps
    only true 1-D ops and aliases."""
    import keras
    import tensorflow as tf

    win = keras.Input((20, 3), name="window")
    h = keras.layers.Conv1D(4, 5, strides=2, padding="same", activation="relu")(win)
    h = keras.layers.MaxPool1D(2)(h)
    out = keras.layers.Dense(3, name="route")(keras.layers.Flatten()(h))
    model = keras.Model(win, out)
    model.export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    conv = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    xs = np.random.default_rng(0).normal(size=(8, 1, 20, 3)).astype("float32")
    conv.representative_dataset = lambda: ([x] for x in xs)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    path = tmp_path / "m.tflite"
    path.write_bytes(conv.convert())
    g = read_tflite(path)
    tflite_ops = {op.tflite_op for op in g.ops}
    assert "EXPAND_DIMS" in tflite_ops  # the 2-D wrapping really is there
    assert "SHAPE" not in tflite_ops and "PACK" not in tflite_ops
    assert [op.kind for op in g.ops if op.kind != "reshape"] == ["conv1d", "maxpool", "fc"]
    conv1d = next(op for op in g.ops if op.kind == "conv1d")
    assert (conv1d.attrs["stride"], conv1d.attrs["out_len"], conv1d.attrs["pad"]) == (2, 10, 1)
