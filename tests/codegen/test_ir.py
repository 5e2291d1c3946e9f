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
