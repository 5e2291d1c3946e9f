"""A small typed IR of one int8 sub-model, read from a ``.tflite`` flatbuffer.

The converter turns every Keras 1-D layer into a 2-D TFLite op wrapped in
EXPAND_DIMS / RESHAPE; this module undoes that.  Activations become 1-D
feature maps ``(T, C)`` (time-major, channels last) or vectors ``(N,)``; ops
become true 1-D ops.  Ops that only move a shape around (RESHAPE,
EXPAND_DIMS, SQUEEZE) stay in the IR as ``reshape`` ops: row-major data does
not move, so the planner treats their output as an alias of their input.  Ops
that only compute a reshape's shape tensor (SHAPE, STRIDED_SLICE, PACK on
int32 constants, which Keras' Flatten emits) are dropped, because every
tensor's static shape is already known.

The ops it knows are the entries of :mod:`ditmos.codegen.ops` (``Op.kind``
is the entry's kind); anything else raises :class:`DitmosError` naming the
TFLite op and the layer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


_DTYPES = {9: "int8", 2: "int32", 0: "float32", 7: "int16", 4: "int64", 3: "uint8"}
_NP = {
    "int8": np.int8,
    "int32": np.int32,
    "float32": np.float32,
    "int16": np.int16,
    "int64": np.int64,
    "uint8": np.uint8,
}
_ACT = {0: "none", 1: "relu", 3: "relu6"}


@dataclass
class Tensor:
    """One tensor.  ``scale``/``zero_point`` are per-tensor floats/ints, or
    arrays for per-channel weights (``quant_axis`` then says which axis)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | np.ndarray | None = None
    zero_point: int | np.ndarray | None = None
    quant_axis: int = 0
    data: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(_NP[self.dtype]).itemsize

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def per_channel(self) -> bool:
        return isinstance(self.scale, np.ndarray) and self.scale.size > 1

    def to_json(self) -> dict:
        def conv(v):
            if isinstance(v, np.ndarray):
                return [float(x) for x in v] if v.dtype.kind == "f" else [int(x) for x in v]
            return v

        return {
            "index": self.index,
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "bytes": self.nbytes,
            "const": self.is_const,
            "scale": conv(self.scale),
            "zero_point": conv(self.zero_point),
        }


@dataclass
class Op:
    """One 1-D op.  ``layer`` is the name used in errors, plans and profiles
    (the TFLite name of its output tensor)."""

    kind: str
    inputs: list[int]
    outputs: list[int]
    attrs: dict = field(default_factory=dict)
    layer: str = ""
    tflite_op: str = ""


@dataclass
class Graph:
    name: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    sha256: str = ""
    path: str = ""

    def tensor(self, i: int) -> Tensor:
        return self.tensors[i]


# ----------------------------------------------------------------------------
# flatbuffer reading


def _opname(schema, code: int) -> str:
    for k, v in vars(schema.BuiltinOperator).items():
        if not k.startswith("_") and v == code:
            return k
    return f"BUILTIN_{code}"


def _read_tensor(i, t, buffers) -> Tensor:
    dtype = _DTYPES.get(t.type, f"type{t.type}")
    shape = tuple(int(s) for s in t.shape) if t.shape is not None else ()
    scale = zp = None
    axis = 0
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) > 0:
        sc = np.asarray(q.scale, dtype=np.float32)
        z = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(sc), dtype=np.int64)
        if len(sc) == 1:
            scale, zp = float(sc[0]), int(z[0])
        else:
            scale, zp = sc, z
        axis = int(q.quantizedDimension)
    data = None
    buf = buffers[t.buffer] if t.buffer < len(buffers) else None
    if buf is not None and buf.data is not None and len(buf.data) > 0 and dtype in _NP:
        data = np.frombuffer(bytes(np.asarray(buf.data, dtype=np.uint8)), dtype=_NP[dtype]).reshape(
            shape if shape else ()
        )
    return Tensor(i, t.name.decode() if isinstance(t.name, bytes) else str(t.name), shape, dtype, scale, zp, axis, data)


_SHAPE_ONLY = {"SHAPE", "STRIDED_SLICE", "PACK"}


def read_tflite(path: str | Path, name: str | None = None) -> Graph:
    """Read ``path`` into a 1-D :class:`Graph` (see the module docstring)."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise DitmosError(f"cannot read TFLite model {path}: {err.strerror}") from err
    s = _schema()
    try:
        model = s.ModelT.InitFromPackedBuf(blob, 0)
    except Exception as err:  # malformed flatbuffer: many exception types
        raise DitmosError(f"{path} is not a valid TFLite flatbuffer ({err})") from err
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise DitmosError(f"{path}: expected exactly one subgraph, found {len(model.subgraphs or [])}")
    g = model.subgraphs[0]
    tensors = [_read_tensor(i, t, model.buffers) for i, t in enumerate(g.tensors)]
    raw = []
    for op in g.operators:
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        raw.append((_opname(s, code), [int(i) for i in op.inputs], [int(o) for o in op.outputs], op.builtinOptions))
    graph = Graph(
        name or path.stem,
        tensors,
        [],
        [int(i) for i in g.inputs],
        [int(o) for o in g.outputs],
        hashlib.sha256(blob).hexdigest(),
        str(path),
    )
    graph.ops = _lower_ops(graph, raw, path)
    _check_io(graph, path)
    return graph


def _check_io(graph: Graph, path: Path) -> None:
    for i in graph.inputs + graph.outputs:
        t = graph.tensors[i]
        if t.dtype != "int8" or t.scale is None:
            raise DitmosError(
                f"{path}: model input/output '{t.name}' is {t.dtype}, expected "
                f"full-int8 quantised tensors (run `ditmos quantize`)"
            )


# ----------------------------------------------------------------------------
# 2-D -> 1-D


def _seq_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Drop the batch dimension and unit dims: [1,1,T,C] / [1,T,C] -> (T, C);
    [1,N] -> (N,)."""
    if not shape:
        return ()
    if shape[0] != 1:
        raise ValueError(f"batch dimension {shape[0]} != 1")
    rest = list(shape[1:])
    if len(rest) == 3:  # N,H,W,C with H==1 or W==1
        if rest[0] == 1:
            rest = rest[1:]
        elif rest[1] == 1:
            rest = [rest[0], rest[2]]
        else:
            raise ValueError(f"true 2-D feature map {shape}")
    return tuple(rest)


def _act(opts, opname: str, layer: str) -> str:
    code = int(getattr(opts, "fusedActivationFunction", 0) or 0)
    if code not in _ACT:
        raise DitmosError(
            f"unsupported fused activation {code} on {opname} (layer '{layer}'); supported: none, ReLU, ReLU6"
        )
    return _ACT[code]


def _padding_1d(mode: int, in_len: int, k: int, stride: int, dilation: int = 1):
    """TFLite's padding rule along one axis: (out_len, pad_before)."""
    eff = (k - 1) * dilation + 1
    if mode == 0:  # SAME
        out = (in_len + stride - 1) // stride
    else:
        out = (in_len - eff + stride) // stride
    total = max((out - 1) * stride + eff - in_len, 0)
    return out, total // 2


def _lower_ops(graph: Graph, raw, path: Path) -> list[Op]:
    T = graph.tensors
    # Dead shape computations: int32 tensors used only as RESHAPE shapes.
    shape_tensors = set()
    for opname, ins, outs, _ in raw:
        if opname == "RESHAPE" and len(ins) > 1 and ins[1] >= 0:
            shape_tensors.add(ins[1])
    changed = True
    dead = set()
    while changed:
        changed = False
        for n, (opname, ins, outs, _) in enumerate(raw):
            if n in dead or opname not in _SHAPE_ONLY:
                continue
            if all(o in shape_tensors for o in outs):
                dead.add(n)
                shape_tensors.update(i for i in ins if i >= 0)
                changed = True

    ops: list[Op] = []
    for n, (opname, ins, outs, opts) in enumerate(raw):
        if n in dead:
            continue
        layer = T[outs[0]].name if outs else f"op{n}"
        try:
            op = _lower_one(graph, opname, ins, outs, opts, layer)
        except ValueError as err:
            raise DitmosError(f"{path}: cannot lower {opname} (layer '{layer}') to a 1-D op: {err}") from err
        op.layer, op.tflite_op = layer, opname
        ops.append(op)
    # Dead ops (e.g. a Squeeze whose result nothing reads).
    while True:
        read = {i for op in ops for i in op.inputs} | set(graph.outputs)
        live = [op for op in ops if any(o in read for o in op.outputs)]
        if len(live) == len(ops):
            break
        ops = live
    used = {i for op in ops for i in op.inputs + op.outputs if i >= 0}
    for i in sorted(used | set(graph.inputs) | set(graph.outputs)):
        if not T[i].is_const:
            try:
                T[i].shape = _seq_shape(T[i].shape)
            except ValueError as err:
                raise DitmosError(f"{path}: tensor '{T[i].name}' has shape {T[i].shape}: {err}") from err
    return ops


def _unsupported(opname: str, layer: str):
    from ditmos.codegen.ops import supported_words

    return DitmosError(
        f"unsupported TFLite op {opname} in layer '{layer}'; the code generator supports {supported_words()}"
    )


def _lower_one(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    from ditmos.codegen.ops import by_tflite

    spec = by_tflite(opname)
    if spec is None or spec.schedule != "alias":
        T = graph.tensors
        for i in ins:
            if i >= 0 and T[i].dtype not in ("int8", "int32"):
                raise DitmosError(
                    f"layer '{layer}' ({opname}) has a {T[i].dtype} tensor "
                    f"'{T[i].name}'; only full-int8 models can be generated"
                )
    if spec is None:
        raise _unsupported(opname, layer)
    return spec.parse(graph, opname, ins, outs, opts, layer)


# ----------------------------------------------------------------------------
# One parser per op (the registry in ditmos.codegen.ops names them).  Each
# gets the TFLite operator and returns the 1-D op; ValueError means "this
# instance cannot be expressed in 1-D" and becomes a DitmosError naming the layer.


def parse_alias(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    return Op("reshape", [ins[0]], [outs[0]])


def _bias_of(T, ins):
    bias = T[ins[2]].data if len(ins) > 2 and ins[2] >= 0 else None
    return None if bias is None else bias.astype(np.int64).reshape(-1)


def parse_conv(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    T = graph.tensors
    x, w = T[ins[0]], T[ins[1]]
    xs = x.shape  # [1,H,W,C]
    if len(xs) != 4 or w.data is None:
        raise ValueError("expected a 4-D input and constant filter")
    # time axis: W when H == 1, else H when W == 1
    if xs[1] == 1 and w.shape[1] == 1:
        axis, stride, dil = 2, opts.strideW, opts.dilationWFactor
    elif xs[2] == 1 and w.shape[2] == 1:
        axis, stride, dil = 1, opts.strideH, opts.dilationHFactor
    else:
        raise ValueError(f"input {xs} / filter {w.shape} is a true 2-D convolution")
    if int(dil or 1) != 1:
        raise ValueError(f"dilation {dil} (only 1 is supported)")
    k = w.shape[axis]
    in_len, in_ch = xs[axis], xs[3]
    out_len, pad = _padding_1d(int(opts.padding), in_len, k, int(stride))
    if T[outs[0]].shape[axis] != out_len:
        raise ValueError("output length does not match TFLite's padding rule")
    attrs = dict(
        kernel=int(k),
        stride=int(stride),
        pad=int(pad),
        in_len=int(in_len),
        in_ch=int(in_ch),
        out_len=int(out_len),
        out_ch=int(T[outs[0]].shape[3]),
        act=_act(opts, opname, layer),
    )
    if opname == "CONV_2D":
        if w.shape[3] != in_ch:
            raise ValueError(f"grouped convolution (filter {w.shape}, input {xs})")
        attrs["weights"] = w.data.reshape(w.shape[0], k, in_ch)  # [O][K][I]
        kind = "conv1d"
    else:
        attrs["depth_multiplier"] = int(opts.depthMultiplier or 1)
        attrs["weights"] = w.data.reshape(k, w.shape[3])  # [K][C*M]
        kind = "dwconv1d"
    attrs["bias"] = _bias_of(T, ins)
    attrs["w_scale"] = np.atleast_1d(np.asarray(w.scale, dtype=np.float32))
    attrs["w_zero_point"] = w.zero_point
    return Op(kind, [ins[0]], [outs[0]], attrs)


def parse_fc(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    T = graph.tensors
    x, w = T[ins[0]], T[ins[1]]
    if w.data is None:
        raise ValueError("non-constant weights")
    if int(getattr(opts, "weightsFormat", 0) or 0) != 0:
        raise ValueError("shuffled weights format")
    n_in = int(w.shape[1])
    if x.size != n_in:
        raise ValueError(f"input has {x.size} elements, weights expect {n_in}")
    return Op(
        "fc",
        [ins[0]],
        [outs[0]],
        dict(
            weights=w.data,
            bias=_bias_of(T, ins),
            w_scale=np.atleast_1d(np.asarray(w.scale, dtype=np.float32)),
            w_zero_point=w.zero_point,
            in_features=n_in,
            out_features=int(w.shape[0]),
            act=_act(opts, opname, layer),
        ),
    )


def parse_pool(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    xs = graph.tensors[ins[0]].shape
    if xs[1] == 1 and opts.filterHeight == 1:
        k, stride, in_len = opts.filterWidth, opts.strideW, xs[2]
    elif xs[2] == 1 and opts.filterWidth == 1:
        k, stride, in_len = opts.filterHeight, opts.strideH, xs[1]
    else:
        raise ValueError(f"2-D pooling window on input {xs}")
    out_len, pad = _padding_1d(int(opts.padding), in_len, int(k), int(stride))
    return Op(
        "maxpool" if opname == "MAX_POOL_2D" else "avgpool",
        [ins[0]],
        [outs[0]],
        dict(
            kernel=int(k),
            stride=int(stride),
            pad=int(pad),
            in_len=int(in_len),
            channels=int(xs[3]),
            out_len=int(out_len),
            act=_act(opts, opname, layer),
        ),
    )


def parse_mean(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    T = graph.tensors
    xs = T[ins[0]].shape
    axes = T[ins[1]].data
    if axes is None:
        raise ValueError("non-constant axes")
    axes = sorted(int(a) % len(xs) for a in np.atleast_1d(axes))
    time_axes = [a for a in range(1, len(xs) - 1) if xs[a] != 1]
    if len(xs) < 3 or axes[-1] == len(xs) - 1 or not set(time_axes) <= set(axes):
        raise ValueError(f"mean over axes {axes} of {xs} (only over time is supported)")
    length = int(np.prod([xs[a] for a in range(1, len(xs) - 1)]))
    return Op("mean", [ins[0]], [outs[0]], dict(length=length, channels=int(xs[-1])))


def parse_add(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    T = graph.tensors
    if any(T[i].is_const for i in ins):
        raise ValueError("adding a constant tensor")
    if T[ins[0]].shape != T[ins[1]].shape:
        raise ValueError(f"broadcasting add {T[ins[0]].shape} + {T[ins[1]].shape}")
    return Op("add", list(ins), [outs[0]], dict(act=_act(opts, opname, layer)))


def parse_concat(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    T = graph.tensors
    rank = len(T[outs[0]].shape)
    axis = int(opts.axis) % rank
    if axis != rank - 1:
        raise ValueError(f"concatenation on axis {axis} (only channels are supported)")
    if _act(opts, opname, layer) != "none":
        raise ValueError("fused activation on a concatenation")
    out = T[outs[0]]
    for i in ins:  # TFLM's int8 CONCATENATION requires this too (it copies bytes)
        if (np.float32(T[i].scale), T[i].zero_point) != (np.float32(out.scale), out.zero_point):
            raise ValueError(
                f"input '{T[i].name}' is quantised ({T[i].scale}, "
                f"{T[i].zero_point}), the output ({out.scale}, "
                f"{out.zero_point}); int8 concatenation needs equal ones"
            )
    return Op("concat", list(ins), [outs[0]], {})


def parse_quantize(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    T = graph.tensors
    if T[ins[0]].dtype != "int8" or T[outs[0]].dtype != "int8":
        raise ValueError(f"{T[ins[0]].dtype} -> {T[outs[0]].dtype} (only int8 -> int8)")
    return Op("quantize", [ins[0]], [outs[0]], {})


def parse_softmax(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    return Op("softmax", [ins[0]], [outs[0]], dict(beta=float(opts.beta)))


def parse_argmax(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    return Op("argmax", [ins[0]], [outs[0]], {})


def parse_relu(graph: Graph, opname, ins, outs, opts, layer) -> Op:
    return Op("relu", [ins[0]], [outs[0]], dict(act="relu6" if opname == "RELU6" else "relu"))
