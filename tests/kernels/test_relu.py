"""The standalone RELU / RELU6 op, added through the op registry alone: the
TFLite model is read by the IR reader, lowered by the registry's entry into a
``dtm_relu_s8`` call, and that call's parameters run on both kernel sets, compared
with the TFLM interpreter byte for byte."""

from __future__ import annotations

import ctypes as C

import numpy as np
import pytest

from kernel_lib import KERNEL_SETS, build_shared
from kernel_models import convert, run_tflm


class ReluParams(C.Structure):
    _fields_ = [
        (n, C.c_int32)
        for n in ("size", "input_zero_point", "output_zero_point", "multiplier", "shift", "act_min", "act_max")
    ]


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    out = tmp_path_factory.mktemp("relu")
    return {s: C.CDLL(str(build_shared(s, out))) for s in KERNEL_SETS}


def _model(layer: str, T: int, C_: int, seed: int):
    import keras

    rng = np.random.default_rng(seed)
    x = keras.Input((T, C_), batch_size=1)
    y = keras.layers.ReLU(max_value=6.0 if layer == "relu6" else None)(x)
    ranges = [(float(rng.uniform(0.5, 9.0)), float(rng.uniform(-3.0, 3.0)))]
    return convert(keras.Model(x, y), [(T, C_)], rng, ranges)


@pytest.mark.parametrize(
    "layer,T,C_,seed",
    [("relu", 16, 3, 1), ("relu", 37, 8, 2), ("relu6", 16, 3, 3), ("relu6", 50, 5, 4), ("relu6", 9, 7, 5)],
)
def test_relu_through_the_registry_matches_tflm(libs, tmp_path, layer, T, C_, seed):
    from ditmos.codegen import ops
    from ditmos.codegen.ir import read_tflite

    model = _model(layer, T, C_, seed)
    path = tmp_path / "relu.tflite"
    path.write_bytes(model.data)
    graph = read_tflite(path)
    (op,) = [o for o in graph.ops if o.kind != "reshape"]
    assert op.kind == "relu" and op.tflite_op == layer.upper()
    call = ops.lower(graph, op, ["x"])
    assert call.kernel == "dtm_relu_s8" and call.params_type == "dtm_relu_s8_params_t"
    params = ReluParams(**call.fields)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        x = rng.integers(-128, 128, size=(1, T, C_)).astype(np.int8)
        want = run_tflm(model, [x])[0].reshape(-1)
        for s in KERNEL_SETS:
            out = np.zeros(T * C_, dtype=np.int8)
            libs[s].dtm_relu_s8(
                C.byref(params), x.ctypes.data_as(C.POINTER(C.c_int8)), out.ctypes.data_as(C.POINTER(C.c_int8))
            )
            np.testing.assert_array_equal(out, want, err_msg=f"{layer} kernel set {s}")


def test_the_quantiser_allows_what_the_registry_lists():
    from ditmos.codegen import ops
    from ditmos.quantize.tflite_model import ALLOWED_OPS

    assert {"RELU", "RELU6"} <= ALLOWED_OPS == ops.allowed_tflite_ops()
