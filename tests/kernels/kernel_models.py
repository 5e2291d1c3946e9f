"""Single-op int8 TFLite models for the kernel tests, and TFLM's quantisation
arithmetic in Python (to fill the kernel parameter structs as the generator does).

Models come from tiny Keras models through ``tf.lite.TFLiteConverter`` (full
int8, int8 in/out); the reference output comes from the TFLM interpreter
(``tflite_micro.runtime``).  Operator parameters are read from the flatbuffer
with the schema module that ships in the tflite-micro package.
"""

from __future__ import annotations

import math
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ---------------------------------------------------------------- TFLM math


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier (double precision, round half away from zero)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = math.floor(abs(q) * (1 << 31) + 0.5) * (1 if q >= 0 else -1)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized for int8 (0 none, 1 RELU, 3 RELU6)."""

    def q(v):
        return zero_point + int(round(v / scale))  # TfLiteRound on float; ties are unlikely

    lo, hi = -128, 127
    if act == 1:
        lo = max(lo, q(0.0))
    elif act == 3:
        lo, hi = max(lo, q(0.0)), min(hi, q(6.0))
    elif act == 2:  # RELU_N1_TO_1
        lo, hi = max(lo, q(-1.0)), min(hi, q(1.0))
    elif act != 0:
        raise ValueError(f"activation {act} not supported")
    return lo, hi


def same_padding(in_len: int, k: int, stride: int) -> tuple[int, int]:
    out = (in_len + stride - 1) // stride
    pad = max((out - 1) * stride + k - in_len, 0) // 2
    return out, pad


def window_geometry(in_len: int, k: int, stride: int, padding: int) -> tuple[int, int]:
    """(out_len, pad) for schema Padding 0 = SAME, 1 = VALID."""
    if padding == 0:
        return same_padding(in_len, k, stride)
    return (in_len - k) // stride + 1, 0


# ---------------------------------------------------------------- flatbuffers


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    return s


class TfliteModel:
    """The parts of a converted model the kernel tests need."""

    def __init__(self, data: bytes):
        s = _schema()
        self.data = bytes(data)
        self.m = s.ModelT.InitFromPackedBuf(bytearray(self.data), 0)
        self.sg = self.m.subgraphs[0]
        names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
        self.ops = []
        for op in self.sg.operators:
            oc = self.m.operatorCodes[op.opcodeIndex]
            code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
            self.ops.append((names[code], op))

    def op_names(self) -> list[str]:
        return [n for n, _ in self.ops]

    def find(self, name: str):
        hits = [op for n, op in self.ops if n == name]
        if len(hits) != 1:
            raise AssertionError(f"expected one {name} in {self.op_names()}")
        return hits[0]

    def tensor(self, i: int):
        return self.sg.tensors[i]

    def quant(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.tensor(i).quantization
        return np.asarray(q.scale, dtype=np.float32), np.asarray(q.zeroPoint, dtype=np.int64)

    def scale_zp(self, i: int) -> tuple[float, int]:
        s, z = self.quant(i)
        return float(s[0]), int(z[0])

    def buffer(self, i: int, dtype) -> np.ndarray:
        t = self.tensor(i)
        raw = self.m.buffers[t.buffer].data
        return np.frombuffer(bytes(bytearray(raw)), dtype=dtype).reshape(t.shape)

    def producer(self, tensor_index: int):
        for n, op in self.ops:
            if tensor_index in list(op.outputs):
                return n, op
        return None, None


def run_tflm(model: TfliteModel, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(model.data, arena_size=256 * 1024)
    for i, x in enumerate(inputs):
        it.set_input(np.asarray(x).reshape(it.get_input_details(i)["shape"]), i)
    it.invoke()
    return [np.array(it.get_output(i)) for i in range(len(model.sg.outputs))]


# ---------------------------------------------------------------- conversion


def convert(keras_model, input_shapes, rng: np.random.Generator, ranges=None, converter=None) -> TfliteModel:
    """Full-int8 conversion with a random representative dataset.

    ``ranges[i] = (scale, offset)`` shapes input i's calibration data so that
    zero points differ between inputs and cases."""
    import tensorflow as tf

    ranges = ranges or [(1.0, 0.0)] * len(input_shapes)
    names = [t.name.split(":")[0] for t in keras_model.inputs]

    def rep():
        for _ in range(24):
            xs = [
                (rng.standard_normal((1, *shape)) * sc + off).astype(np.float32)
                for shape, (sc, off) in zip(input_shapes, ranges)
            ]
            yield dict(zip(names, xs)) if len(xs) > 1 else xs

    conv = converter or tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return TfliteModel(conv.convert())


def randomise_weights(keras_model, rng: np.random.Generator) -> None:
    """Replace the initial weights (biases are zero) by random ones with varied scales."""
    for layer in keras_model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for w in ws:
            per_out = rng.uniform(0.2, 2.0, size=w.shape[-1]).astype(np.float32)
            new.append((rng.standard_normal(w.shape) * 0.3 * per_out).astype(np.float32))
        layer.set_weights(new)


def repack(model: TfliteModel) -> TfliteModel:
    """Serialise an edited ``TfliteModel.m`` (object API) into a new model."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.m.Pack(builder), file_identifier=b"TFL3")
    return TfliteModel(bytes(builder.Output()))


def set_quant(model: TfliteModel, tensor_index: int, scale: float, zero_point: int) -> None:
    q = model.tensor(tensor_index).quantization
    q.scale = [float(np.float32(scale))]
    q.zeroPoint = [int(zero_point)]


def reshape_to_quantize(model: TfliteModel, out_scale: float, out_zero_point: int) -> TfliteModel:
    """Turn a single-RESHAPE model into a single int8->int8 QUANTIZE model."""
    s = _schema()
    op = model.find("RESHAPE")
    oc = model.m.operatorCodes[op.opcodeIndex]
    oc.builtinCode = s.BuiltinOperator.QUANTIZE
    oc.deprecatedBuiltinCode = s.BuiltinOperator.QUANTIZE
    op.inputs = [op.inputs[0]]
    op.builtinOptionsType = 0
    op.builtinOptions = None
    set_quant(model, op.outputs[0], out_scale, out_zero_point)
    return repack(model)
