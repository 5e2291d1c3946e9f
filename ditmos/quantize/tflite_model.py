"""Read what the quantiser needs from a .tflite flatbuffer.

Signatures (to map Keras names to the subgraph's input/output positions), the
operators (to check the firmware can run them), the quantisation parameters of
the model's inputs/outputs, and the multiply-accumulate count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ditmos.codegen.ops import allowed_tflite_ops
from ditmos.errors import DitmosError
from ditmos.macs import conv_macs, dense_macs, depthwise_macs

# Operators the generated firmware implements: the code generator's op
# registry.  DEQUANTIZE is never among them: the models are int8 end to end.
ALLOWED_OPS = allowed_tflite_ops()
ALLOWED_FUSED_ACTIVATIONS = frozenset({"NONE", "RELU", "RELU6"})

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_ACT_NAMES = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclass
class TensorInfo:
    """One subgraph input or output."""

    name: str  # signature name (the Keras name)
    index: int  # position in the subgraph's inputs/outputs list
    tensor: int  # tensor index in the subgraph
    shape: list[int]
    dtype: str  # schema type name, e.g. "INT8"
    scale: float  # float32 value, as stored
    zero_point: int

    def to_manifest(self) -> dict:
        return {
            "name": self.name,
            "index": self.index,
            "shape": self.shape,
            "dtype": self.dtype.lower(),
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


@dataclass
class OpInfo:
    name: str
    fused_activation: str | None
    inputs: list[int]
    outputs: list[int]


@dataclass
class TFLiteModel:
    """The parts of a single-subgraph .tflite that the quantiser uses."""

    inputs: list[TensorInfo]  # in subgraph (flatbuffer) order
    outputs: list[TensorInfo]
    ops: list[OpInfo]
    macs: int
    tensor_shapes: dict[int, list[int]] = field(repr=False)

    def input(self, name: str) -> TensorInfo:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> TensorInfo:
        return _by_name(self.outputs, name, "output")


def _by_name(items: list[TensorInfo], name: str, kind: str) -> TensorInfo:
    for it in items:
        if it.name == name:
            return it
    raise KeyError(f"no {kind} named {name!r} (have {[i.name for i in items]})")


def _fused_activation(op) -> str | None:
    opts = op.builtinOptions
    if opts is None or not hasattr(opts, "fusedActivationFunction"):
        return None
    return _ACT_NAMES.get(opts.fusedActivationFunction, str(opts.fusedActivationFunction))


def _quant(tensor) -> tuple[float, int]:
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return 0.0, 0
    return float(np.float32(q.scale[0])), int(q.zeroPoint[0])


def _shape(tensor) -> list[int]:
    return [int(d) for d in (tensor.shape if tensor.shape is not None else [])]


def _macs(op: OpInfo, shapes: dict[int, list[int]]) -> int:
    """Multiply-accumulates of one operator (convolutions and dense layers),
    counted by :mod:`ditmos.macs` as every other stage does."""
    if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return 0
    out = shapes[op.outputs[0]]
    filt = shapes[op.inputs[1]]
    positions = int(np.prod(out[:-1]))
    if op.name == "CONV_2D":  # [out_c, kh, kw, in_c / groups]
        return conv_macs(positions, filt[1] * filt[2], filt[3], out[-1])
    if op.name == "DEPTHWISE_CONV_2D":  # [1, kh, kw, out_c]
        return depthwise_macs(positions, filt[1] * filt[2], out[-1])
    return dense_macs(filt[1], filt[0], rows=positions)  # [units, depth]


def read_tflite(data: bytes, *, what: str = "model") -> TFLiteModel:
    """Parse ``data``; ``what`` names the model in error messages."""
    try:
        if not schema.Model.ModelBufferHasIdentifier(data, 0):
            raise ValueError("missing the TFL3 identifier")
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    except Exception as err:  # noqa: BLE001 - flatbuffers raises anything
        raise DitmosError(f"{what} is not a valid .tflite flatbuffer ({err})") from err
    if len(model.subgraphs) != 1:
        raise DitmosError(f"{what} has {len(model.subgraphs)} subgraphs; the firmware runs single-subgraph models only")
    sg = model.subgraphs[0]
    tensors = sg.tensors
    shapes = {i: _shape(t) for i, t in enumerate(tensors)}

    sig_in: dict[int, str] = {}
    sig_out: dict[int, str] = {}
    for sig in model.signatureDefs or []:
        for tm in sig.inputs or []:
            sig_in[tm.tensorIndex] = tm.name.decode() if isinstance(tm.name, bytes) else tm.name
        for tm in sig.outputs or []:
            sig_out[tm.tensorIndex] = tm.name.decode() if isinstance(tm.name, bytes) else tm.name

    def infos(indices, names) -> list[TensorInfo]:
        result = []
        for pos, t_idx in enumerate(indices):
            t = tensors[t_idx]
            raw = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
            scale, zp = _quant(t)
            result.append(
                TensorInfo(
                    name=names.get(int(t_idx), raw),
                    index=pos,
                    tensor=int(t_idx),
                    shape=_shape(t),
                    dtype=_TYPE_NAMES.get(t.type, str(t.type)),
                    scale=scale,
                    zero_point=zp,
                )
            )
        return result

    ops = []
    for op in sg.operators or []:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            name = f"CUSTOM({custom})"
        ops.append(
            OpInfo(
                name=name,
                fused_activation=_fused_activation(op),
                inputs=[int(i) for i in op.inputs],
                outputs=[int(i) for i in op.outputs],
            )
        )
    macs = sum(_macs(op, shapes) for op in ops)
    return TFLiteModel(
        inputs=infos(sg.inputs, sig_in), outputs=infos(sg.outputs, sig_out), ops=ops, macs=macs, tensor_shapes=shapes
    )


def check_firmware_ops(model: TFLiteModel, *, what: str) -> None:
    """Raise :class:`DitmosError` naming the first operator the firmware lacks."""
    for i, op in enumerate(model.ops):
        if op.name not in ALLOWED_OPS:
            raise DitmosError(
                f"{what}: operator #{i} {op.name} is not supported by the firmware "
                f"(supported: {', '.join(sorted(ALLOWED_OPS))}); change the architecture "
                "so that it converts to these operators"
            )
        if op.fused_activation is not None and op.fused_activation not in ALLOWED_FUSED_ACTIVATIONS:
            raise DitmosError(
                f"{what}: operator #{i} {op.name} has fused activation "
                f"{op.fused_activation}; the firmware supports only RELU and RELU6"
            )
    for t in model.inputs + model.outputs:
        if t.dtype != "INT8":
            raise DitmosError(
                f"{what}: tensor {t.name!r} is {t.dtype}, expected INT8 (the firmware runs full-int8 models only)"
            )
