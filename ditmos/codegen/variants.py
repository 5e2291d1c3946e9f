"""Per-layer kernel variants: which kernel each layer calls, and the offline
weight layouts the faster variants read.

For the Cortex-M7 set (``kernels="cm7"``), conv1d and fully-connected layers
that qualify are switched to ``dtm_conv1d_packed_s8`` (register-blocked, see
``firmware/include/ditmos_kernels.h``): their weights become SMLAD-ready
int16 pairs in the order the inner loop consumes them, input offsets move
into the bias, and each channel's requantisation (TFLM's two roundings plus
the output offset) becomes per-channel constants; requantize layers become a
256-byte lookup table (``dtm_requantize_lut_s8``).  Everything else keeps the
kernel lowering chose.  :func:`apply` is the one entry point (called by
:func:`ditmos.codegen.generate`); it returns one decision row per layer,
with the reason, for the codegen manifest and ``ditmos build --show-plan``.

Exactness of the packed requantisation (m = multiplier, e = -shift, z =
output offset): TFLM computes h = SaturatingRoundingDoublingHighMul(acc, m) =
floor((acc m + 2^30) / 2^31) (m >= 0), then RoundingDivideByPOT(h, e) + z =
floor((h + 2^(e-1) - [h < 0]) / 2^e) + z = (h + hb - [h < 0]) >> e with
hb = 2^(e-1) + z 2^e.  The kernel accumulates 2 acc (weights and bias are
doubled; |acc| < 2^30 is checked here from the weights and the bias), so
SMMLAR(2 acc, m, hb) = floor((2 acc m + 2^31) / 2^32) + hb = h + hb; for
m > 2^30, h < 0 exactly when acc < 0 (the kernel's sign fix), and e <= 22
keeps h + hb inside int32.
"""

from __future__ import annotations

import numpy as np

from ditmos.codegen.lowering import CONV_MAX_PARTS, Call, ConstArray, kernels_header_define

PACKED = "dtm_conv1d_packed_s8"
PACKED_TYPE = "dtm_conv1d_packed_s8_params_t"
GROUP = kernels_header_define("DITMOS_PACKED_GROUP")  # output channels per register tile
EDGE_BYTES = kernels_header_define("DITMOS_PACKED_EDGE_BYTES")  # padded windows are copied here
MAX_PARTS = CONV_MAX_PARTS


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


def group_widths(out_channels: int) -> list[int]:
    """Output channels per group, in stream order: groups of 4, and when 1 or
    2 channels are left over, one group of 2 (3 left over pad a group of 4)."""
    O = int(out_channels)
    if O % GROUP in (1, 2):
        return [GROUP] * (O // GROUP) + [2]
    return [GROUP] * -(-O // GROUP)


def pack_words(w_parts: list[np.ndarray], scale: int = 2) -> list[np.ndarray]:
    """Weights [O][D_p] (int8) of each part -> per group of w channels, the
    [words][2][w] int32 block of SMLAD-ready (scale * w) pairs (see
    ditmos_kernels.h)."""
    O = w_parts[0].shape[0]
    widths = group_widths(O)
    starts_g = np.cumsum([0] + widths)
    blocks = []
    for w in w_parts:
        D = w.shape[1]
        n, head = window_words(D)
        starts = np.array([0] + [head + 4 * i for i in range(n - 1)], dtype=np.int64)
        vals = scale * np.asarray(w, dtype=np.int64)[:, starts[:, None] + np.arange(4)]
        vals[:, 0, head:] = 0  # the head word's overlap with the next word counts once
        lo, hi = _pairs(vals[..., 0], vals[..., 2]), _pairs(vals[..., 1], vals[..., 3])
        both = np.stack([lo, hi], axis=-1)  # [O][n][2]
        padded = np.zeros((int(starts_g[-1]), n, 2), dtype=np.int64)
        padded[:O] = both
        blocks.append([padded[a:b].transpose(1, 2, 0) for a, b in zip(starts_g[:-1], starts_g[1:])])
    return [np.concatenate([b[g] for b in blocks], axis=0) for g in range(len(widths))]


def requant_rows(multiplier, shift, output_offset: int, out_channels: int) -> np.ndarray:
    """[padded channels][3] = {hb, multiplier, e} (padded channels inert)."""
    tab = np.zeros((sum(group_widths(out_channels)), 3), dtype=np.int64)
    tab[:, 1] = (1 << 30) + 1
    tab[:, 2] = 1
    m = np.broadcast_to(np.asarray(multiplier, dtype=np.int64).reshape(-1), (out_channels,))
    s = np.broadcast_to(np.asarray(shift, dtype=np.int64).reshape(-1), (out_channels,))
    for o in range(out_channels):
        e = int(-s[o])
        tab[o] = [(1 << (e - 1)) + int(output_offset) * (1 << e), int(m[o]), e]
    return tab


def pack_stream(w_parts, bias, multiplier, shift, output_offset: int) -> np.ndarray:
    """The whole constant stream: per group of w channels {2 bias[w], words,
    requant[w][3]}."""
    O = w_parts[0].shape[0]
    widths = group_widths(O)
    b = np.zeros(sum(widths), dtype=np.int64)
    b[:O] = 2 * np.asarray(bias, dtype=np.int64)
    rq = requant_rows(multiplier, shift, output_offset, O)
    words = pack_words(w_parts)
    out, lo = [], 0
    for g, w in enumerate(widths):
        out += [b[lo : lo + w], words[g].reshape(-1), rq[lo : lo + w].reshape(-1)]
        lo += w
    return _wrap32(np.concatenate(out))


def _folded_bias(call: Call, g: dict, w_parts) -> np.ndarray:
    """bias + sum_p input_offset_p * sum(w of part p), exact (Python ints)."""
    bias = np.zeros(g["O"], dtype=np.int64)
    if "bias" in call.arrays:
        bias += np.asarray(call.arrays["bias"].values, dtype=np.int64).reshape(-1)
    for (_, off), wp in zip(g["parts"], w_parts):
        bias += int(off) * wp.sum(axis=1)
    return bias


def _weight_parts(call: Call, g: dict) -> list[np.ndarray]:
    w = np.asarray(call.arrays["weights"].values, dtype=np.int64).reshape(g["O"], -1)
    parts, lo = [], 0
    for c, _ in g["parts"]:
        parts.append(w[:, lo : lo + g["K"] * c])
        lo += g["K"] * c
    return parts


def _geometry(call: Call) -> dict | None:
    """The conv view of a dtm_conv1d_s8 / dtm_fully_connected_s8 call, or None."""
    f = call.fields
    if call.kernel == "dtm_conv1d_s8":
        return dict(
            parts=[(p["channels"], p["input_offset"]) for p in f["parts"]],
            in_len=f["in_len"],
            out_len=f["out_len"],
            O=f["out_channels"],
            K=f["kernel_size"],
            stride=f["stride"],
            pad=f["pad"],
            output_offset=f["output_offset"],
            act_min=f["act_min"],
            act_max=f["act_max"],
        )
    if call.kernel == "dtm_fully_connected_s8":
        b = int(f.get("batches", 1))
        return dict(
            parts=[(f["in_features"], f["input_offset"])],
            in_len=b,
            out_len=b,
            O=f["out_features"],
            K=1,
            stride=1,
            pad=0,
            output_offset=f["output_offset"],
            act_min=f["act_min"],
            act_max=f["act_max"],
        )
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
    if np.any(s < -22):
        return "a requantisation shift below -22"
    w_parts = _weight_parts(call, g)
    bound = np.abs(_folded_bias(call, g, w_parts)) + 128 * sum(np.abs(wp).sum(axis=1) for wp in w_parts)
    if np.any(bound >= (1 << 30)):
        return "accumulators that may reach 2^30"
    last = (g["out_len"] - 1) * g["stride"] - g["pad"]
    edges = g["pad"] > 0 or last + K > g["in_len"]
    if edges and sum(depths) > EDGE_BYTES:
        return f"padded windows of {sum(depths)} bytes (> {EDGE_BYTES})"
    return None


def pack_call(call: Call) -> Call:
    """The dtm_conv1d_packed_s8 twin of a qualifying dtm_conv1d_s8 / dtm_fully_connected_s8 call."""
    g = _geometry(call)
    K, O = g["K"], g["O"]
    w_parts = _weight_parts(call, g)
    stream = pack_stream(
        w_parts,
        _folded_bias(call, g, w_parts),
        call.arrays["multiplier"].values,
        call.arrays["shift"].values,
        g["output_offset"],
    )
    n_parts = len(g["parts"])

    def per_part(values):
        return list(values) + [0] * (MAX_PARTS - n_parts)

    fields = dict(
        num_parts=n_parts,
        channels=per_part(c for c, _ in g["parts"]),
        head=per_part(window_words(K * c)[1] for c, _ in g["parts"]),
        zero_point=per_part(-int(off) for _, off in g["parts"]),
        in_len=g["in_len"],
        out_len=g["out_len"],
        out_channels=O,
        kernel_size=K,
        stride=g["stride"],
        pad=g["pad"],
        act_min=g["act_min"],
        act_max=g["act_max"],
    )
    arrays = {"stream": ConstArray("int32_t", stream, "weights")}
    return Call(
        PACKED,
        PACKED_TYPE,
        fields,
        arrays,
        list(call.inputs),
        call.output,
        layer=call.layer,
        kind=call.kind,
        macs=call.macs,
    )


LUT = "dtm_requantize_lut_s8"


def requantize_table(input_zero_point: int, output_zero_point: int, multiplier: int, shift: int) -> np.ndarray:
    """dtm_requantize_s8 for every input byte (index = the byte as unsigned), with
    TFLM's arithmetic as the C kernel evaluates it (x << left wraps in int32)."""
    from ditmos.quantize import qmath

    x = np.arange(256, dtype=np.int64)
    x = np.where(x >= 128, x - 256, x) - int(input_zero_point)
    left, right = max(int(shift), 0), max(-int(shift), 0)
    a = _wrap32(x << left)
    y = qmath.rounding_divide_by_pot(qmath.saturating_rounding_doubling_high_mul(a, int(multiplier)), right)
    return np.clip(y + int(output_zero_point), -128, 127).astype(np.int64)


def lut_call(call: Call) -> Call:
    f = call.fields
    table = requantize_table(f["input_zero_point"], f["output_zero_point"], f["multiplier"], f["shift"])
    return Call(
        LUT,
        "dtm_requantize_lut_s8_params_t",
        {"size": f["size"]},
        {"table": ConstArray("int8_t", table, "table")},
        list(call.inputs),
        call.output,
        layer=call.layer,
        kind=call.kind,
        macs=call.macs,
    )


def choose(call: Call, kernels: str) -> tuple[Call, str]:
    """(the call to emit, why) for one lowered call."""
    if call.kernel == "dtm_requantize_s8":
        if kernels != "cm7":
            return call, f"{kernels} kernel set"
        return lut_call(call), "256-byte table computed offline"
    g = _geometry(call)
    if g is None:
        return call, "no variants for this op"
    if kernels != "cm7":
        return call, f"{kernels} kernel set"
    if call.kernel == "dtm_fully_connected_s8" and call.fields.get("per_channel") not in (0, 1):
        return call, "unexpected per_channel field"
    reason = _why_not(call, g)
    if reason is not None:
        return call, f"generic: {reason}"
    widths = group_widths(g["O"])
    tiles = f"{widths.count(GROUP)} group(s) of 4" + (" + 1 of 2" if 2 in widths else "")
    return pack_call(call), (
        f"register tiles of 4 (or 2) channels x 1 step: {tiles} x "
        f"{g['out_len']} step(s), windows " + "+".join(str(g["K"] * c) for c, _ in g["parts"]) + " B"
    )


def apply(sched, kernels: str) -> list[dict]:
    """Replace the conv / fully-connected / requantize calls of ``sched`` by their
    variant for ``kernels``; return one row per such call (program, layer index,
    kernel, reason)."""
    rows = []
    for pname, prog in sched.programs.items():
        for st in prog.steps:
            if st.kind != "call" or (_geometry(st.call) is None and st.call.kernel != "dtm_requantize_s8"):
                continue
            new, why = choose(st.call, kernels)
            st.call = new
            rows.append({"program": pname, "layer_index": st.layer_index, "kernel": new.kernel, "reason": why})
    return rows


def format_variants(rows: list[dict]) -> str:
    lines = ["kernel variants:"]
    for r in rows:
        lines.append(f"  {r['program']:<14}{r['layer_index']:>3}  {r['kernel']:<22}{r['reason']}")
    return "\n".join(lines)
