"""Build tiny .tflite flatbuffers by hand (test helper).

Used to get TFLM itself to run one operator (int8 -> int8 QUANTIZE, float ->
int8 QUANTIZE, ARG_MAX) and to make models with operators the firmware does
not support.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

T = schema.TensorType


def _tensor(name, shape, ttype, quant=None, buffer=0):
    t = schema.TensorT()
    t.name = name
    t.shape = list(shape)
    t.type = ttype
    t.buffer = buffer
    if quant is not None:
        q = schema.QuantizationParametersT()
        q.scale = [float(quant[0])]
        q.zeroPoint = [int(quant[1])]
        t.quantization = q
    return t


def single_op_model(
    op: int, tensors, inputs, outputs, op_inputs=None, *, buffers=(), options_type=0, options=None
) -> bytes:
    """One subgraph with one operator ``op`` reading ``op_inputs`` (default: the
    graph inputs) and writing the graph outputs.  ``buffers`` are the bytes of
    constant tensors, referenced as buffer 1, 2, ..."""
    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = op
    code.deprecatedBuiltinCode = min(op, 127)
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT()]
    for data in buffers:
        b = schema.BufferT()
        b.data = list(data)
        model.buffers.append(b)
    sg = schema.SubGraphT()
    sg.tensors = list(tensors)
    sg.inputs = list(inputs)
    sg.outputs = list(outputs)
    o = schema.OperatorT()
    o.opcodeIndex = 0
    o.inputs = list(op_inputs if op_inputs is not None else inputs)
    o.outputs = list(outputs)
    o.builtinOptionsType = options_type
    o.builtinOptions = options
    sg.operators = [o]
    model.subgraphs = [sg]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantize_model(n: int, in_q, out_q) -> bytes:
    """int8 [1, n] (in_q) -> QUANTIZE -> int8 [1, n] (out_q)."""
    return single_op_model(
        schema.BuiltinOperator.QUANTIZE,
        [_tensor("x", [1, n], T.INT8, in_q), _tensor("y", [1, n], T.INT8, out_q)],
        [0],
        [1],
    )


def float_to_int8_model(n: int, out_q) -> bytes:
    """float32 [1, n] -> QUANTIZE -> int8 [1, n] (out_q)."""
    return single_op_model(
        schema.BuiltinOperator.QUANTIZE,
        [_tensor("x", [1, n], T.FLOAT32), _tensor("y", [1, n], T.INT8, out_q)],
        [0],
        [1],
    )


def unary_int8_model(op: int, n: int, in_q=(0.05, 0), out_q=(1 / 128, 0)) -> bytes:
    """int8 [1, n] -> ``op`` -> int8 [1, n] (e.g. TANH, which the firmware lacks)."""
    return single_op_model(op, [_tensor("x", [1, n], T.INT8, in_q), _tensor("y", [1, n], T.INT8, out_q)], [0], [1])


def argmax_model(n: int) -> bytes:
    """int8 [1, n] -> ARG_MAX over axis 1 -> int32 [1]."""
    opts = schema.ArgMaxOptionsT()
    opts.outputType = T.INT32
    axis = np.array([1], dtype=np.int32).tobytes()
    return single_op_model(
        schema.BuiltinOperator.ARG_MAX,
        [_tensor("x", [1, n], T.INT8, (1.0, 0)), _tensor("axis", [1], T.INT32, buffer=1), _tensor("y", [1], T.INT32)],
        [0],
        [2],
        op_inputs=[0, 1],
        buffers=[axis],
        options_type=schema.BuiltinOptions.ArgMaxOptions,
        options=opts,
    )


def all_int8() -> np.ndarray:
    return np.arange(-128, 128, dtype=np.int8)
