"""Certificates of the int8 model that ships: interval arithmetic on its
integer computation (``ditmos robust verify --int8``).

The int8 network of a single-CNN run (``ditmos quantize RUN``) is read into
the code generator's 1-D graph (:mod:`ditmos.codegen.ir`), and each layer's
integer parameters (per-channel multipliers and shifts, zero points,
activation clamps) come from the same lowering that writes the firmware
(:mod:`ditmos.codegen.lowering`), so the bounded computation is the one the
device and the TFLM reference run (checked bit for bit: on a degenerate
interval the bounds reproduce the reference's int8 logits).

Per layer, for every value an integer interval ``[lo, hi]``:

* input quantisation ``q = clamp(round(x / s) + zp)`` is monotone in ``x``, so
  the box ``[x - eps, x + eps]`` (end points moved one float32 step outward)
  maps to ``[q(x - eps), q(x + eps)]`` exactly;
* convolution / dense accumulators are exact int32 sums: ``lo = sum(w+ (lo_in - zp))
  + sum(w- (hi_in - zp)) + b`` and the mirror for ``hi`` (computed exactly);
* requantisation (TFLM's double-rounding ``MultiplyByQuantizedMultiplier``),
  the output zero point and the activation clamp form a monotone
  non-decreasing function of the accumulator, so the interval maps to the
  function of its end points: rounding is modelled exactly, not bounded;
* max pooling and standalone ReLU are monotone and map end points too.

l_2 and l_1 balls: the box that encloses the ball gives each input byte a
small candidate set; at the first layer each accumulator is bounded by
Lagrangian duality over those bytes, charging each byte the distance the
float input must move to round to it (the int8 clamp included), under the
ball's budget (``sum c_i^2 <= eps^2`` or ``sum c_i <= eps``); the result is
intersected with the box bound.  Later layers carry boxes.

The decision: the int8 argmax takes the first maximum, so class y wins
against j < y when ``z_y > z_j`` and against j > y when ``z_y >= z_j``.  A pair is
certified from the output intervals, or (per-tensor output layer) from the
exact lower bound ``D`` of the accumulator difference ``acc_y - acc_j``: for
j > y, ``D >= 0`` suffices (monotone requantisation); for j < y, ``D * m > 2``
with ``m`` the layer's real multiplier (double rounding is off by less than 1
per value) and neither output at a clamp that could merge them.

Assumptions: the device runs the TFLM reference arithmetic (the product's
QEMU and board tests check this bit for bit), and the perturbed window is a
finite float32 input to the firmware's input quantisation.  The
certificate covers the int8 model only, not the float model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.quantize import qmath


@dataclass
class _Layer:
    kind: str  # conv, fc, maxpool, reshape, relu
    fields: dict
    weights: np.ndarray | None = None  # conv: [O, K, I]; fc: [O, I] (int64)
    bias: np.ndarray | None = None
    mult: np.ndarray | None = None
    shift: np.ndarray | None = None
    in_zp: int = 0


class Int8Network:
    """The integer layers of a single-CNN int8 directory."""

    def __init__(self, int8_dir):
        from ditmos.codegen import ir, lowering
        from ditmos.quantize.reference import load_manifest

        int8_dir = Path(int8_dir)
        m = load_manifest(int8_dir)
        if m.get("kind") != "network" or m.get("exits"):
            raise DitmosError(f"{int8_dir}: int8 certificates cover single-CNN network runs only")
        sub = m["submodels"]["network"]
        g = ir.read_tflite(int8_dir / sub["file"])
        self.input_shape = tuple(m["input_shape"])
        x = g.tensor(g.inputs[0])
        self.in_scale, self.in_zp = float(x.scale), int(x.zero_point)
        self.layers: list[_Layer] = []
        for op in g.ops:
            xin = g.tensor(op.inputs[0])
            zp = int(xin.zero_point) if xin.zero_point is not None else 0
            if op.kind == "conv1d":
                call = lowering.lower_conv(g, op, [("x", int(op.attrs["in_ch"]), zp)])
                f = call.fields
                w = np.asarray(op.attrs["weights"], np.int64)  # [O, K, I]
                self.layers.append(self._affine("conv", call, w, zp))
            elif op.kind == "fc":
                call = lowering.lower_fc(g, op, ["x"])
                w = np.asarray(op.attrs["weights"], np.int64)  # [O, I]
                self.layers.append(self._affine("fc", call, w, zp))
            elif op.kind == "maxpool":
                f = lowering.lower_pool(g, op, ["x"]).fields
                self.layers.append(_Layer("maxpool", f))
            elif op.kind == "reshape":
                self.layers.append(_Layer("reshape", {}))
            elif op.kind == "relu":
                f = lowering.lower_relu(g, op, ["x"]).fields
                self.layers.append(_Layer("relu", f, in_zp=zp))
            else:
                raise DitmosError(
                    f"{int8_dir}: layer '{op.layer}' ({op.kind}) is not supported by the int8 bounds "
                    "(conv1d, fc, max pooling, reshape and ReLU only)"
                )
        if not self.layers or self.layers[-1].kind != "fc":
            raise DitmosError(f"{int8_dir}: the int8 network must end in a fully connected layer")
        if g.ops[-1].outputs[0] != g.outputs[0]:
            raise DitmosError(f"{int8_dir}: the last layer is not the network's output")

    @staticmethod
    def _affine(kind, call, w, zp) -> _Layer:
        a = call.arrays
        bias = a["bias"].values.astype(np.int64) if "bias" in a else np.zeros(w.shape[0], np.int64)
        mult = np.asarray(a["multiplier"].values, np.int64).reshape(-1)
        shift = np.asarray(a["shift"].values, np.int64).reshape(-1)
        return _Layer(kind, call.fields, w, bias, mult, shift, in_zp=zp)

    # -- integer pieces ------------------------------------------------------
    @staticmethod
    def _patches(v, f):
        """``[B, L, I, ...]`` -> ``[B, out_len, K, I, ...]`` with zeros at padded taps."""
        length = v.shape[1]
        k, stride, pad, out_len = f["kernel_size"], f["stride"], f["pad"], f["out_len"]
        idx = np.arange(out_len)[:, None] * stride - pad + np.arange(k)[None, :]
        valid = (idx >= 0) & (idx < length)
        p = v[:, np.clip(idx, 0, length - 1)]
        return p * valid.reshape((1,) + valid.shape + (1,) * (v.ndim - 2))

    @staticmethod
    def _matmul(a, w):
        """Exact integer ``a @ w.T`` (float64 is exact: every partial sum < 2**53)."""
        return np.rint(a.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)

    def _acc(self, layer: _Layer, lo, hi):
        """Exact accumulator intervals of a conv / fc layer on input intervals."""
        zp = layer.in_zp
        lo, hi = lo - zp, hi - zp
        if layer.kind == "conv":
            f = layer.fields
            o = layer.weights.shape[0]
            w = layer.weights.reshape(o, -1)
            plo = self._patches(lo, f).reshape(lo.shape[0], f["out_len"], -1)
            phi = self._patches(hi, f).reshape(hi.shape[0], f["out_len"], -1)
        else:
            w = layer.weights
            plo, phi = lo.reshape(lo.shape[0], -1), hi.reshape(hi.shape[0], -1)
        wp, wn = np.maximum(w, 0), np.minimum(w, 0)
        a_lo = self._matmul(plo, wp) + self._matmul(phi, wn) + layer.bias
        a_hi = self._matmul(phi, wp) + self._matmul(plo, wn) + layer.bias
        return a_lo, a_hi

    @staticmethod
    def _requant(layer: _Layer, acc):
        """The layer's output bytes of accumulators ``acc`` (channels last)."""
        f = layer.fields
        out = np.empty_like(acc)
        n = acc.shape[-1]
        mult = np.broadcast_to(layer.mult, (n,))
        shift = np.broadcast_to(layer.shift, (n,))
        for c in range(n):
            out[..., c] = qmath.multiply_by_quantized_multiplier(acc[..., c], int(mult[c]), int(shift[c]))
        return np.clip(out + f["output_offset"], f["act_min"], f["act_max"])

    @staticmethod
    def _maxpool(v, f):
        b, length, ch = v.shape
        idx = np.arange(f["out_len"])[:, None] * f["stride"] - f["pad"] + np.arange(f["pool_size"])[None, :]
        valid = (idx >= 0) & (idx < length)
        p = np.where(valid[None, :, :, None], v[:, np.clip(idx, 0, length - 1), :], np.iinfo(np.int64).min)
        return np.clip(p.max(axis=2), f["act_min"], f["act_max"])

    @staticmethod
    def _relu(layer: _Layer, v):
        f = layer.fields
        out = qmath.multiply_by_quantized_multiplier(v - f["input_zero_point"], int(f["multiplier"]), int(f["shift"]))
        return np.clip(out + f["output_zero_point"], f["act_min"], f["act_max"])

    # -- propagation ---------------------------------------------------------
    def quantize(self, x):
        return qmath.quantize(x, self.in_scale, self.in_zp).astype(np.int64)

    def input_box(self, x, eps: float):
        """Integer input intervals of the float box ``[x - eps, x + eps]``."""
        x = np.asarray(x, np.float32)
        lo = np.nextafter(x - np.float32(eps), np.float32(-np.inf))
        hi = np.nextafter(x + np.float32(eps), np.float32(np.inf))
        return self.quantize(lo), self.quantize(hi)

    def _ball_first_layer(self, x, eps: float, norm: str, qlo, qhi):
        """Accumulator bounds of the first layer over the quantised images of
        the ball, by Lagrangian duality on the integer inputs.

        Input i can take the byte k of its box ``[qlo_i, qhi_i]`` only if the
        float input moves by at least ``c_i(k)`` (the distance from x_i to the
        float interval that rounds to k).  For a unit with weights w and any
        lambda >= 0, every reachable byte vector satisfies
        ``sum_i w_i (k_i - zp) <= lambda E + sum_i max_k (w_i (k - zp) - lambda c_i(k)^p)``
        with ``E = eps^2, p = 2`` (l_2) or ``E = eps, p = 1`` (l_1), because the
        ball requires ``sum_i c_i(k_i)^p <= E``; the best of a grid of lambdas is
        kept (each one is sound)."""
        layer = next(la for la in self.layers if la.kind != "reshape")
        s = float(np.float32(self.in_scale))
        zp = self.in_zp
        b = len(x)
        width = int((qhi - qlo).max()) + 1
        ks = qlo[..., None] + np.arange(width)  # [B, L, C, W] candidate bytes
        valid = ks <= qhi[..., None]
        ks = np.minimum(ks, qhi[..., None])
        v = np.asarray(x, np.float64)[..., None] / s + zp  # real position before rounding
        low = np.where(ks <= -128, -np.inf, ks - 0.5)
        high = np.where(ks >= 127, np.inf, ks + 0.5)
        dist = np.maximum(np.maximum(low - v, v - high), 0.0)
        dist = np.maximum(dist - 1e-5, 0.0) * s  # float units, rounded down (sound)
        cost = dist**2 if norm == "l2" else dist
        cost = np.where(valid, cost, np.inf)
        budget = eps**2 if norm == "l2" else eps
        vals = (ks - zp).astype(np.float64)
        if layer.kind == "conv":
            f = layer.fields
            o = layer.weights.shape[0]
            w = layer.weights.reshape(o, -1).astype(np.float64)
            # padded taps: the single byte zp at no cost
            pv = self._patches(vals, f).reshape(b, f["out_len"], -1, width)
            pad = self._patches(np.ones(vals.shape[:-1]), f).reshape(b, f["out_len"], -1) == 0
            pc = self._patches(np.where(np.isinf(cost), 1e30, cost), f).reshape(b, f["out_len"], -1, width)
            pc = np.where(pad[..., None], np.where(np.arange(width) == 0, 0.0, 1e30), pc)
        else:
            w = layer.weights.astype(np.float64)
            pv = vals.reshape(b, 1, -1, width)
            pc = np.where(np.isinf(cost), 1e30, cost).reshape(b, 1, -1, width)
        step = s**2 if norm == "l2" else s
        scale = np.median(np.abs(w[w != 0])) if np.any(w) else 1.0
        lams = (scale / step * 2.0 ** np.arange(-4, 5, 2.0))[:, None, None, None, None]
        pen = lams * pc[None]  # [L, B, T, F, W]
        up = np.empty(pv.shape[:2] + (w.shape[0],))
        dn = np.empty_like(up)
        for oi in range(w.shape[0]):
            wv = (w[oi][None, None, :, None] * pv)[None]
            up[..., oi] = (lams[:, 0, 0, 0, 0, None, None] * budget + (wv - pen).max(axis=-1).sum(axis=-1)).min(axis=0)
            dn[..., oi] = (-lams[:, 0, 0, 0, 0, None, None] * budget + (wv + pen).min(axis=-1).sum(axis=-1)).max(axis=0)
        up, dn = up + layer.bias, dn + layer.bias
        if layer.kind == "fc":
            up, dn = up[:, 0], dn[:, 0]
        slack = 1e-6 * (np.abs(up) + np.abs(dn)) + 1e-6
        return np.ceil(dn - slack).astype(np.int64), np.floor(up + slack).astype(np.int64)

    def bounds(self, x, eps: float, norm: str = "linf"):
        """Output intervals ``(lo, hi)`` of the int8 logits over the ball, and
        the exact lower bounds of the last layer's accumulator differences
        ``[B, K, K]`` (``D[b, y, j] <= acc_y - acc_j``)."""
        if norm not in ("linf", "l2", "l1"):
            raise DitmosError(f"unknown norm {norm!r}; expected linf, l2 or l1")
        x = np.asarray(x, np.float32)
        lo, hi = self.input_box(x, eps)
        diff = None
        first = next(i for i, la in enumerate(self.layers) if la.kind != "reshape")
        for i, layer in enumerate(self.layers):
            if layer.kind in ("conv", "fc"):
                last = i == len(self.layers) - 1
                if last:
                    diff = self._diff_lower(layer, lo, hi)
                a_lo, a_hi = self._acc(layer, lo, hi)
                if i == first and norm != "linf" and eps > 0:
                    b_lo, b_hi = self._ball_first_layer(x, eps, norm, lo, hi)
                    a_lo, a_hi = np.maximum(a_lo, b_lo), np.minimum(a_hi, b_hi)
                lo, hi = self._requant(layer, a_lo), self._requant(layer, a_hi)
            elif layer.kind == "maxpool":
                lo, hi = self._maxpool(lo, layer.fields), self._maxpool(hi, layer.fields)
            elif layer.kind == "relu":
                lo, hi = self._relu(layer, lo), self._relu(layer, hi)
            else:  # reshape: the byte order is unchanged
                pass
        return lo.reshape(len(x), -1), hi.reshape(len(x), -1), diff

    def _diff_lower(self, layer: _Layer, lo, hi):
        """``[B, K, K]`` exact lower bounds of ``acc_y - acc_j`` over the input intervals."""
        w = layer.weights  # [K, F]
        lo = lo.reshape(lo.shape[0], -1) - layer.in_zp
        hi = hi.reshape(hi.shape[0], -1) - layer.in_zp
        wd = w[:, None, :] - w[None, :, :]  # [K, K, F]
        kk = wd.reshape(-1, wd.shape[-1])
        d = self._matmul(lo, np.maximum(kk, 0)) + self._matmul(hi, np.minimum(kk, 0))
        k = w.shape[0]
        return d.reshape(len(lo), k, k) + (layer.bias[:, None] - layer.bias[None, :])[None]

    def certified(self, x, y, eps: float, norm: str, *, batch: int | None = None) -> np.ndarray:
        """Per window: True when every input of the ball makes the int8 model answer ``y``."""
        y = np.asarray(y, np.int64)
        out = []
        last = self.layers[-1]
        per_tensor = np.asarray(last.mult).size == 1
        m_real = float(last.mult[0]) * 2.0 ** (int(last.shift[0]) - 31) if per_tensor else 0.0
        batch = batch or (256 if norm == "linf" else 16)
        for i in range(0, len(x), batch):
            lo, hi, diff = self.bounds(x[i : i + batch], eps, norm)
            yb = y[i : i + batch]
            n, k = lo.shape
            rows = np.arange(n)
            ly = lo[rows, yb][:, None]
            j = np.arange(k)[None, :]
            before = j < yb[:, None]
            ok = np.where(before, ly > hi, ly >= hi)
            if per_tensor:
                d = diff[rows, yb, :]  # [n, K]
                ok_after = d >= 0
                ok_before = (d * m_real > 2.0001) & (hi <= 126) & (ly >= -127)
                ok |= np.where(before, ok_before, ok_after)
            ok[rows, yb] = True
            out.append(ok.all(axis=1))
        return np.concatenate(out) if out else np.zeros(0, bool)

    def logits(self, x_q) -> np.ndarray:
        """int8 logits of quantised windows (the bounds on a point)."""
        v = np.asarray(x_q, np.int64)
        lo = hi = v
        for layer in self.layers:
            if layer.kind in ("conv", "fc"):
                a_lo, _ = self._acc(layer, lo, hi)
                lo = hi = self._requant(layer, a_lo)
            elif layer.kind == "maxpool":
                lo = hi = self._maxpool(lo, layer.fields)
            elif layer.kind == "relu":
                lo = hi = self._relu(layer, lo)
        return lo.reshape(len(v), -1)


def certify_int8(int8_dir, x, y, radii: dict[str, float]) -> dict[str, np.ndarray]:
    """Per window and norm: certified for the int8 model; plus ``clean``
    (the int8 prediction of the unperturbed window is right) and ``union``."""
    net = Int8Network(int8_dir)
    x = np.asarray(x, np.float32)
    res = {n: net.certified(x, y, float(e), n) for n, e in radii.items()}
    res["clean"] = qmath.argmax_first(net.logits(net.quantize(x)), axis=1) == np.asarray(y)
    u = res["clean"].copy()
    for n in radii:
        u &= res[n]
    res["union"] = u
    return res
