"""Build tiny .tflite flatbuffers by hand (test helper).

Used to get TFLM itself to run one int8 -> int8 QUANTIZE operator, and to
make models with operators the firmware does not support.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema


def _tensor(name, shape, scale, zero_point, buffer=0, ttype=schema.TensorType.INT8):
    t = schema.TensorT()
    t.name = name
    t.shape = list(shape)
    t.type = ttype
    t.buffer = buffer
    q = schema.QuantizationParametersT()
    q.scale = [float(scale)]
    q.zeroPoint = [int(zero_point)]
    t.quantization = q
    return t


def unary_int8_model(op: int, n: int, in_q: tuple[float, int], out_q: tuple[float, int]) -> bytes:
    """One subgraph: int8 input [1, n] -> ``op`` -> int8 output [1, n]."""
    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = op
    code.deprecatedBuiltinCode = min(op, 127)
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors = [_tensor("x", [1, n], *in_q), _tensor("y", [1, n], *out_q)]
    sg.inputs = [0]
    sg.outputs = [1]
    o = schema.OperatorT()
    o.opcodeIndex = 0
    o.inputs = [0]
    o.outputs = [1]
    sg.operators = [o]
    model.subgraphs = [sg]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantize_model(n: int, in_q, out_q) -> bytes:
    return unary_int8_model(schema.BuiltinOperator.QUANTIZE, n, in_q, out_q)


def all_int8() -> np.ndarray:
    return np.arange(-128, 128, dtype=np.int8)
