"""Per-layer kernel variants: which kernel each layer calls, and the offline
weight layouts the faster variants read.

For the Cortex-M7 set (``kernels="cm7"``), conv1d and fully-connected layers
that qualify are switched to ``conv1d_packed_s8`` (register-blocked, see
``firmware/include/ditmos_kernels.h``): their weights become SMLAD-ready
int16 pairs in the order the inner loop consumes them, input offsets move
into the bias, and each channel's requantisation (TFLM's two roundings plus
the output offset) becomes one 64-bit constant.  Everything else keeps the
kernel lowering chose.  :func:`apply` is the one entry point (called by
:func:`ditmos.codegen.generate`); it returns one decision row per layer,
with the reason, for the codegen manifest and ``ditmos build --show-plan``.

Exactness of the packed requantisation (m = multiplier, e = -shift):
TFLM computes h = SaturatingRoundingDoublingHighMul(acc, m) =
floor((acc m + 2^30) / 2^31) (m >= 0) and then RoundingDivideByPOT(h, e) =
floor((h + 2^(e-1) - [h < 0]) / 2^e); adding the output offset z gives
floor((acc m + 2^30 + 2^31 (2^(e-1) + z 2^e - [h < 0])) / 2^(31+e)) by the
nested-floor identity.  For m > 2^30, h < 0 exactly when acc < 0, so the
kernel evaluates it with one SMLAL from the constant pre = 2^30 +
2^31 (2^(e-1) + z 2^e), a sign correction and an arithmetic shift.
"""

from __future__ import annotations

import numpy as np

from ditmos.codegen.lowering import Call, ConstArray

PACKED = "conv1d_packed_s8"
PACKED_TYPE = "conv1d_packed_s8_params_t"
GROUP = 4            # output channels per register tile (DITMOS_PACKED_GROUP)
EDGE_BYTES = 256     # DITMOS_PACKED_EDGE_BYTES: padded windows are copied here
MAX_PARTS = 4


def _wrap32(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.int64)
    return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)


def _pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int16 lanes (a low, b high) as int32 words."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    return _wrap32((a & 0xFFFF) | ((b & 0xFFFF) << 16))


def window_words(depth: int) -> tuple[int, int]:
    """(words, head) for a window of ``depth`` >= 4 bytes: a head word at byte
    0, then words at bytes head + 4 i; head = depth - 4 (words - 1)."""
    n = -(-depth // 4)
    return n, depth - 4 * (n - 1)


def pack_weights(w_parts: list[np.ndarray]) -> np.ndarray:
    """Weights [O][D_p] (int8) of each part -> the packed int32 stream
    [group][part][word][2][4] (see ditmos_kernels.h)."""
    O = w_parts[0].shape[0]
    groups = -(-O // GROUP)
    streams = []
    for w in w_parts:
        D = w.shape[1]
        n, head = window_words(D)
        starts = np.array([0] + [head + 4 * i for i in range(n - 1)], dtype=np.int64)
        vals = np.asarray(w, dtype=np.int64)[:, starts[:, None] + np.arange(4)]  # [O][n][4]
        vals[:, 0, head:] = 0  # the head word's overlap with the next word counts once
        lo, hi = _pairs(vals[..., 0], vals[..., 2]), _pairs(vals[..., 1], vals[..., 3])
        both = np.stack([lo, hi], axis=-1)                                      # [O][n][2]
        padded = np.zeros((groups * GROUP, n, 2), dtype=np.int64)
        padded[:O] = both
        streams.append(padded.reshape(groups, GROUP, n, 2).transpose(0, 2, 3, 1))
    return np.concatenate(streams, axis=1).reshape(-1)


def requant_table(multiplier, shift, output_offset: int, out_channels: int) -> np.ndarray:
    """[groups * 4][4] = {pre_lo, pre_hi, multiplier, e - 1} (padded channels inert)."""
    groups = -(-out_channels // GROUP)
    tab = np.zeros((groups * GROUP, 4), dtype=np.int64)
    tab[:, 2] = (1 << 30) + 1
    m = np.broadcast_to(np.asarray(multiplier, dtype=np.int64), (out_channels,))
    s = np.broadcast_to(np.asarray(shift, dtype=np.int64), (out_channels,))
    for o in range(out_channels):
        e = int(-s[o])
        pre = (1 << 30) + (1 << 31) * ((1 << (e - 1)) + int(output_offset) * (1 << e))
        tab[o] = [_wrap32(pre & 0xFFFFFFFF), pre >> 32, int(m[o]), e - 1]
    return tab.reshape(-1)


def _geometry(call: Call) -> dict | None:
    """The conv view of a conv1d_s8 / fully_connected_s8 call, or None."""
    f = call.fields
    if call.kernel == "conv1d_s8":
        return dict(parts=[(p["channels"], p["input_offset"]) for p in f["parts"]],
                    in_len=f["in_len"], out_len=f["out_len"], O=f["out_channels"],
                    K=f["kernel_size"], stride=f["stride"], pad=f["pad"],
                    output_offset=f["output_offset"], act_min=f["act_min"],
                    act_max=f["act_max"])
    if call.kernel == "fully_connected_s8":
        b = int(f.get("batches", 1))
        return dict(parts=[(f["in_features"], f["input_offset"])], in_len=b, out_len=b,
                    O=f["out_features"], K=1, stride=1, pad=0,
                    output_offset=f["output_offset"], act_min=f["act_min"],
                    act_max=f["act_max"])
    return None


def _why_not(call: Call, g: dict) -> str | None:
    K = g["K"]
    depths = [K * c for c, _ in g["parts"]]
    if len(depths) > MAX_PARTS:
        return f"{len(depths)} parts"
    if min(depths) < 4:
        return f"a window of {min(depths)} bytes (< 4)"
    m = np.asarray(call.arrays["multiplier"].values, dtype=np.int64).reshape(-1)
    s = np.asarray(call.arrays["shift"].values, dtype=np.int64).reshape(-1)
    if np.any(s > -1) or np.any(s < -31):
        return "a requantisation shift outside [-31, -1]"
    if np.any(m <= (1 << 30)) or np.any(m >= (1 << 31)):
        return "a multiplier not in (2^30, 2^31)"
    pre = (1 << 31) * ((1 << (int(-s.min()) - 1)) + 128 * (1 << int(-s.min())))
    if pre >= (1 << 62):
        return "a requantisation constant beyond 2^62"
    last = (g["out_len"] - 1) * g["stride"] - g["pad"]
    edges = g["pad"] > 0 or last + K > g["in_len"]
    if edges and sum(depths) > EDGE_BYTES:
        return f"padded windows of {sum(depths)} bytes (> {EDGE_BYTES})"
    return None


def pack_call(call: Call) -> Call:
    """The conv1d_packed_s8 twin of a qualifying conv1d_s8 / fully_connected_s8 call."""
    g = _geometry(call)
    K, O = g["K"], g["O"]
    w = np.asarray(call.arrays["weights"].values, dtype=np.int64).reshape(O, -1)
    w_parts, lo = [], 0
    for c, _ in g["parts"]:
        w_parts.append(w[:, lo:lo + K * c])
        lo += K * c
    bias = np.zeros(O, dtype=np.int64)
    if "bias" in call.arrays:
        bias += np.asarray(call.arrays["bias"].values, dtype=np.int64).reshape(-1)
    for (_, off), wp in zip(g["parts"], w_parts):
        bias += int(off) * wp.sum(axis=1)
    groups = -(-O // GROUP)
    bias_pad = np.zeros(groups * GROUP, dtype=np.int64)
    bias_pad[:O] = _wrap32(bias)
    np_ = len(g["parts"])

    def per_part(values):
        return list(values) + [0] * (MAX_PARTS - np_)

    fields = dict(
        num_parts=np_,
        channels=per_part(c for c, _ in g["parts"]),
        head=per_part(window_words(K * c)[1] for c, _ in g["parts"]),
        zero_point=per_part(-int(off) for _, off in g["parts"]),
        in_len=g["in_len"], out_len=g["out_len"], out_channels=O, kernel_size=K,
        stride=g["stride"], pad=g["pad"], act_min=g["act_min"], act_max=g["act_max"])
    arrays = {
        "weights": ConstArray("int32_t", pack_weights(w_parts), "weights"),
        "bias": ConstArray("int32_t", bias_pad, "bias"),
        "requant": ConstArray("int32_t",
                              requant_table(call.arrays["multiplier"].values,
                                            call.arrays["shift"].values,
                                            g["output_offset"], O), "requant"),
    }
    return Call(PACKED, PACKED_TYPE, fields, arrays, list(call.inputs), call.output,
                layer=call.layer, kind=call.kind, macs=call.macs, multi_input=True)


def choose(call: Call, kernels: str) -> tuple[Call, str]:
    """(the call to emit, why) for one lowered call."""
    g = _geometry(call)
    if g is None:
        return call, "no variants for this op"
    if kernels != "cm7":
        return call, f"{kernels} kernel set"
    if call.kernel == "fully_connected_s8" and call.fields.get("per_channel") not in (0, 1):
        return call, "unexpected per_channel field"
    reason = _why_not(call, g)
    if reason is not None:
        return call, f"generic: {reason}"
    tiles = -(-g["O"] // GROUP)
    return pack_call(call), (f"4x1 register tiles: {tiles} channel group(s) x "
                             f"{g['out_len']} step(s), windows "
                             + "+".join(str(g["K"] * c) for c, _ in g["parts"]) + " B")


def apply(sched, kernels: str) -> list[dict]:
    """Replace the conv / fully-connected calls of ``sched`` by their variant for
    ``kernels``; return one row per such call (program, layer index, kernel, reason)."""
    rows = []
    for pname, prog in sched.programs.items():
        for st in prog.steps:
            if st.kind != "call" or _geometry(st.call) is None:
                continue
            new, why = choose(st.call, kernels)
            st.call = new
            rows.append({"program": pname, "layer_index": st.layer_index,
                         "kernel": new.kernel, "reason": why})
    return rows


def format_variants(rows: list[dict]) -> str:
    lines = ["kernel variants:"]
    for r in rows:
        lines.append(f"  {r['program']:<14}{r['layer_index']:>3}  {r['kernel']:<22}{r['reason']}")
    return "\n".join(lines)
