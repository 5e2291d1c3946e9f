"""The op registry: everything ditmos knows about one int8 op, in one entry.

An entry names the TFLite builtin operators it covers, how :mod:`.ir` parses
one into a 1-D op (``parse``), how the schedule treats it (``schedule``), how
:mod:`.lowering` turns it into a kernel call (``lower``, which names the C
kernel and its parameter struct from :data:`.lowering.KERNELS`) and how many
multiply-accumulates it costs (``macs``, counted by :mod:`ditmos.macs`).

Derived from the registry: the quantiser's allow-list
(:func:`allowed_tflite_ops`, used by ``ditmos.quantize.tflite_model``), the
"unsupported op" error of the IR reader (:func:`supported_words`), the
schedule's dispatch (:func:`lower`) and the renderer's per-kernel cases (the
:class:`~.lowering.Kernel` record).

Adding an op is one entry here, one kernel pair (``firmware/kernels/ref`` and,
optionally, ``cm7``) declared in ``ditmos_kernels.h`` and listed in
``lowering.KERNELS``, and its bit-exactness test against TFLM.

Schedule categories:

- ``alias``: moves no data (reshape); its output is its input.
- ``concat``: a channel concatenation, never built under network slicing.
- ``parts``: a kernel reading a list of channel parts (the multi-part conv).
- ``call``: a kernel reading whole buffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ditmos import macs as M
from ditmos.codegen import ir
from ditmos.codegen import lowering as L
from ditmos.codegen.ir import Graph, Op

SCHEDULE_CATEGORIES = ("alias", "concat", "parts", "call")


@dataclass(frozen=True)
class OpSpec:
    kind: str  # Op.kind in the IR
    tflite: tuple[str, ...]  # TFLite builtin operators
    words: str  # how error messages name it
    parse: Callable[..., Op]  # ir: TFLite operator -> 1-D op
    schedule: str  # one of SCHEDULE_CATEGORIES
    lower: Callable[..., L.Call] | None = None  # (graph, op, sources) -> kernel call
    macs: Callable[[dict], int] | None = None  # op attrs -> multiply-accumulates


REGISTRY: tuple[OpSpec, ...] = (
    OpSpec(
        "conv1d",
        ("CONV_2D",),
        "conv 1-D",
        ir.parse_conv,
        "parts",
        L.lower_conv,
        lambda a: M.conv_macs(a["out_len"], a["kernel"], a["in_ch"], a["out_ch"]),
    ),
    OpSpec(
        "dwconv1d",
        ("DEPTHWISE_CONV_2D",),
        "depthwise 1-D",
        ir.parse_conv,
        "call",
        L.lower_dwconv,
        lambda a: M.depthwise_macs(a["out_len"], a["kernel"], a["out_ch"]),
    ),
    OpSpec(
        "fc",
        ("FULLY_CONNECTED",),
        "fully connected",
        ir.parse_fc,
        "call",
        L.lower_fc,
        lambda a: M.dense_macs(a["in_features"], a["out_features"]),
    ),
    OpSpec("maxpool", ("MAX_POOL_2D",), "max pool", ir.parse_pool, "call", L.lower_pool),
    OpSpec("avgpool", ("AVERAGE_POOL_2D",), "average pool", ir.parse_pool, "call", L.lower_pool),
    OpSpec("mean", ("MEAN",), "mean", ir.parse_mean, "call", L.lower_mean),
    OpSpec("add", ("ADD",), "add", ir.parse_add, "call", L.lower_add),
    OpSpec("relu", ("RELU", "RELU6"), "ReLU/ReLU6", ir.parse_relu, "call", L.lower_relu),
    OpSpec("concat", ("CONCATENATION",), "concatenation", ir.parse_concat, "concat"),
    OpSpec("reshape", ("RESHAPE", "EXPAND_DIMS", "SQUEEZE"), "reshape", ir.parse_alias, "alias"),
    OpSpec("quantize", ("QUANTIZE",), "quantize", ir.parse_quantize, "call", L.lower_quantize),
    OpSpec("softmax", ("SOFTMAX",), "softmax", ir.parse_softmax, "call", L.lower_softmax),
    OpSpec("argmax", ("ARG_MAX",), "argmax", ir.parse_argmax, "call", L.lower_argmax),
)

_BY_KIND = {s.kind: s for s in REGISTRY}
_BY_TFLITE = {name: s for s in REGISTRY for name in s.tflite}


def by_tflite(opname: str) -> OpSpec | None:
    """The entry covering TFLite operator ``opname``, or None."""
    return _BY_TFLITE.get(opname)


def by_kind(kind: str) -> OpSpec:
    return _BY_KIND[kind]


def allowed_tflite_ops() -> frozenset[str]:
    """Every TFLite operator the generated firmware implements."""
    return frozenset(_BY_TFLITE)


def supported_words() -> str:
    """The supported ops in words, for error messages."""
    words = [s.words for s in REGISTRY]
    return ", ".join(words[:-1]) + " and " + words[-1]


def lower(graph: Graph, op: Op, sources: list) -> L.Call:
    """The kernel call of ``op`` reading ``sources`` (value names; for a
    ``parts`` op, (value, channels, zero point) per part)."""
    spec = by_kind(op.kind)
    if spec.lower is None:
        raise AssertionError(f"op kind {op.kind} ({spec.schedule}) is not a kernel call")
    call = spec.lower(graph, op, sources)
    call.macs = int(spec.macs(op.attrs)) if spec.macs else 0
    return call


def op_macs(op: Op) -> int:
    """Multiply-accumulates of one IR op (0 for ops that are not charged)."""
    spec = by_kind(op.kind)
    return int(spec.macs(op.attrs)) if spec.macs else 0
