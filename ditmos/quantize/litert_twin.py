"""A LiteRT-REF-checkable twin of an int8 model: FULLY_CONNECTED as CONV_2D.

LiteRT's reference (BUILTIN_REF) int8 FULLY_CONNECTED kernel does not use
TFLite's fixed-point requantisation: it computes
``round((double)acc * input_scale * filter_scale / output_scale)`` in double
precision (``reference_integer_ops::FullyConnected`` overload with float
scales).  TFLM, CMSIS-NN and our firmware use the integer
``MultiplyByQuantizedMultiplier``, so the two disagree by one LSB whenever the
product lands near a rounding boundary (measured: a few logits in a hundred
windows).  LiteRT's reference CONV_2D does use the integer arithmetic.

Under the int8 quantisation spec a FULLY_CONNECTED over ``[B, in]`` equals a
1x1 CONV_2D over ``[B, 1, 1, in]`` with filter ``[out, 1, 1, in]`` (same int8
weights, scales, int32 bias, fused activation): TFLM computes identical bytes
for both (tested).  ``conv_twin`` performs that rewrite so LiteRT-REF can be
an independent, bit-exact second check of the TFLM reference.  The twin is a
checking device only; the deployed models keep their FULLY_CONNECTED ops.
"""

from __future__ import annotations

import copy

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

_OP = schema.BuiltinOperator


def _opcode_index(model, builtin: int, version: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _const_int32(model, sg, name: str, values) -> int:
    buf = schema.BufferT()
    buf.data = list(np.asarray(values, dtype="<i4").tobytes())
    model.buffers.append(buf)
    t = schema.TensorT()
    t.name = name
    t.shape = [len(values)]
    t.type = schema.TensorType.INT32
    t.buffer = len(model.buffers) - 1
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _like(sg, src: int, name: str, shape) -> int:
    t = copy.deepcopy(sg.tensors[src])
    t.name = name
    t.shape = list(shape)
    t.shapeSignature = None
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _zero_bias(model, sg, x: int, w: int) -> int:
    units = int(sg.tensors[w].shape[0])
    t = _const_int32(model, sg, f"{sg.tensors[w].name}_zero_bias", [0] * units)
    in_scale = float(sg.tensors[x].quantization.scale[0])
    w_scales = list(sg.tensors[w].quantization.scale)
    if len(w_scales) == 1:
        w_scales = w_scales * units
    q = schema.QuantizationParametersT()
    q.scale = [in_scale * float(s) for s in w_scales]
    q.zeroPoint = [0] * units
    q.quantizedDimension = 0
    sg.tensors[t].quantization = q
    return t


def _reshape(model, sg, x: int, y: int, shape) -> schema.OperatorT:
    op = schema.OperatorT()
    op.opcodeIndex = _opcode_index(model, _OP.RESHAPE, 1)
    shape_t = _const_int32(model, sg, f"{sg.tensors[y].name}_shape", shape)
    op.inputs = [x, shape_t]
    op.outputs = [y]
    op.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
    op.builtinOptions = schema.ReshapeOptionsT()
    op.builtinOptions.newShape = list(shape)
    return op


def conv_twin(data: bytes) -> bytes:
    """``data`` with every FULLY_CONNECTED replaced by RESHAPE, 1x1 CONV_2D, RESHAPE."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    changed = False
    for sg in model.subgraphs:
        new_ops = []
        for op in sg.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != _OP.FULLY_CONNECTED:
                new_ops.append(op)
                continue
            changed = True
            x, w = op.inputs[0], op.inputs[1]
            bias = op.inputs[2] if len(op.inputs) > 2 else -1
            if bias < 0:  # LiteRT's CONV_2D wants a bias: zeros change nothing
                bias = _zero_bias(model, sg, x, w)
            y = op.outputs[0]
            depth = int(sg.tensors[w].shape[1])
            units = int(sg.tensors[w].shape[0])
            batch = int(np.prod(sg.tensors[x].shape)) // depth
            x4 = _like(sg, x, f"{sg.tensors[x].name}_nhwc", [batch, 1, 1, depth])
            w4 = _like(sg, w, f"{sg.tensors[w].name}_ohwi", [units, 1, 1, depth])
            y4 = _like(sg, y, f"{sg.tensors[y].name}_nhwc", [batch, 1, 1, units])
            conv = schema.OperatorT()
            conv.opcodeIndex = _opcode_index(model, _OP.CONV_2D, 3)
            conv.inputs = [x4, w4, bias]
            conv.outputs = [y4]
            conv.builtinOptionsType = schema.BuiltinOptions.Conv2DOptions
            opts = schema.Conv2DOptionsT()
            opts.padding = schema.Padding.VALID
            opts.strideW = opts.strideH = 1
            opts.dilationWFactor = opts.dilationHFactor = 1
            opts.fusedActivationFunction = op.builtinOptions.fusedActivationFunction
            conv.builtinOptions = opts
            new_ops += [
                _reshape(model, sg, x, x4, [batch, 1, 1, depth]),
                conv,
                _reshape(model, sg, y4, y, list(sg.tensors[y].shape)),
            ]
        sg.operators = new_ops
    if not changed:
        return data
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
