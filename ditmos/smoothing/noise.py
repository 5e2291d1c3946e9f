"""Integer-only Gaussian noise for smoothing int8 networks.

Everything the device computes is defined here in numpy, bit for bit; the C
code ``firmware/runtime/ditmos_smooth.c`` must reproduce it exactly.

Uniform bits: a counter-based generator with 32-bit operations only.  Draw
number ``c`` (a 32-bit counter) under key ``seed`` is::

    k1 = mix32(seed);  k2 = mix32(seed ^ 0x9E3779B9)
    u  = mix32(mix32(c ^ k1) + k2) >> 1          # 31 uniform bits

``mix32`` is an invertible xor-shift-multiply mixer, so for a fixed seed the
map ``c -> mix32(mix32(c ^ k1) + k2)`` is a permutation of the 2**32
counters.  Counter-based means draw ``c`` needs no state: the host draws a
whole ``[n, d]`` block at once, the device one value at a time, and both get
the same numbers.  Inference ``j`` (0-based, counted from ``first``) of a
window of ``d`` int8 values uses counters ``(first + j) * d + e`` for element
``e`` (mod 2**32).

Noise values: the *rounded Gaussian* in input quantisation steps, ``r =
round(e / s)`` with ``e ~ N(0, sigma**2)`` in normalised input units and
``s`` the int8 input scale; so ``P(r = k) = Phi((k + 1/2) / sq) - Phi((k - 1/2) / sq)``
with ``sq = sigma / s``.  It is sampled by inverse CDF on the 31-bit ``u``
against a table ``T`` of ``M`` (a power of two) non-decreasing thresholds::

    r = #{j : T[j] <= u} - K          # K = the table's offset

``T[j] = round(2**31 * P(r <= j - K))`` for ``j < 2K``; the remaining
entries are ``2**31`` (never reached), so ``r`` lies in ``[-K, K]`` and the
tails beyond are folded into ``+-K``.  The table's distance to the exact
rounded Gaussian (resolution ``2**-31`` and the folded tails) is computed by
:func:`table_tv` and charged to the certificate.

The noisy int8 input is ``clamp(q + r, -128, 127)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ditmos.errors import DitmosError

M32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9
ONE31 = 1 << 31
MAX_TABLE = 1024
TAIL_SIGMAS = 8.0


def mix32(x):
    """The 32-bit mixer (numpy uint32 arrays or Python ints)."""
    if isinstance(x, (int, np.integer)):
        x = int(x) & M32
        x ^= x >> 16
        x = (x * 0x7FEB352D) & M32
        x ^= x >> 15
        x = (x * 0x846CA68B) & M32
        x ^= x >> 16
        return x
    x = np.asarray(x, dtype=np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        x = x ^ (x >> np.uint32(16))
    return x


def uniform31(seed: int, counters) -> np.ndarray:
    """31 uniform bits for each counter (uint32 array) under ``seed``."""
    k1 = np.uint32(mix32(seed))
    k2 = np.uint32(mix32((int(seed) & M32) ^ GOLDEN))
    c = np.asarray(counters, dtype=np.uint32)
    with np.errstate(over="ignore"):
        return mix32(mix32(c ^ k1) + k2) >> np.uint32(1)


@dataclass(frozen=True)
class NoiseTable:
    """An inverse-CDF table for the rounded Gaussian of std ``sigma_q`` steps."""

    sigma_q: float
    offset: int  # K: values lie in [-K, K]
    thresholds: np.ndarray  # uint32 [M], M a power of two

    @property
    def size(self) -> int:
        return int(len(self.thresholds))


def _phi(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)


def rounded_gaussian_pmf(sigma_q: float, ks: np.ndarray) -> np.ndarray:
    """Exact ``P(round(N(0, sigma_q**2)) = k)`` (double precision), tails by symmetry."""
    ks = np.asarray(ks, dtype=np.float64)
    a = np.abs(ks)
    # P(a - 1/2 < |e| < a + 1/2) / 2 for a >= 1 computed on the upper tail
    # for accuracy: Phi(-(a-1/2)/sq) - Phi(-(a+1/2)/sq).
    hi = _phi(-(a - 0.5) / sigma_q) - _phi(-(a + 0.5) / sigma_q)
    zero = 1.0 - 2.0 * _phi(-0.5 / sigma_q)
    return np.where(a == 0, zero, hi)


def make_table(sigma_q: float) -> NoiseTable:
    """The table for noise of std ``sigma_q`` input steps (``sigma / scale``)."""
    if not (isinstance(sigma_q, (int, float)) and math.isfinite(sigma_q) and sigma_q > 0):
        raise DitmosError(f"noise std must be a positive number of input steps, got {sigma_q!r}")
    K = max(1, int(math.ceil(TAIL_SIGMAS * sigma_q)))
    M = 1 << int(math.ceil(math.log2(2 * K + 1)))
    if M > MAX_TABLE:
        raise DitmosError(
            f"sigma is {sigma_q:.1f} input steps; the integer noise table "
            f"supports at most {(MAX_TABLE // 2 - 1) / TAIL_SIGMAS:.0f} steps "
            f"(use a smaller sigma)"
        )
    ks = np.arange(-K, K)  # thresholds for P(r <= k), k = -K..K-1
    lower_tail = _phi(-(K - 0.5) / sigma_q)  # P(r <= -K)
    cdf = lower_tail + np.concatenate([[0.0], np.cumsum(rounded_gaussian_pmf(sigma_q, ks[1:]))])
    t = np.full(M, ONE31, dtype=np.uint64)
    t[: 2 * K] = np.clip(np.floor(cdf * ONE31 + 0.5), 0, ONE31).astype(np.uint64)
    t = np.maximum.accumulate(t)
    return NoiseTable(float(sigma_q), K, t.astype(np.uint32))


def table_pmf(table: NoiseTable) -> tuple[np.ndarray, np.ndarray]:
    """(values ``-K..K``, their exact probabilities under the table sampler)."""
    K = table.offset
    t = table.thresholds.astype(np.float64)
    edges = np.concatenate([[0.0], t[: 2 * K], [float(ONE31)]])
    return np.arange(-K, K + 1), np.diff(edges) / ONE31


def table_tv(table: NoiseTable) -> float:
    """Total-variation distance between the table sampler (given ideal uniform
    bits) and the exact rounded Gaussian, per coordinate, rounded up."""
    ks, p_hat = table_pmf(table)
    p = rounded_gaussian_pmf(table.sigma_q, ks)
    outside = 2.0 * _phi(-(table.offset + 0.5) / table.sigma_q)  # mass beyond +-K
    tv = 0.5 * (float(np.abs(p_hat - p).sum()) + outside)
    return tv * (1 + 1e-6) + 1e-15  # margin for double-precision evaluation


def sample(table: NoiseTable, seed: int, first: int, n: int, d: int) -> np.ndarray:
    """Noise ``[n, d]`` int32 for inferences ``first .. first + n - 1``."""
    counters = (
        np.arange(first, first + n, dtype=np.uint64)[:, None] * np.uint64(d) + np.arange(d, dtype=np.uint64)[None, :]
    ) & np.uint64(M32)
    u = uniform31(seed, counters.astype(np.uint32))
    return np.searchsorted(table.thresholds, u, side="right").astype(np.int32) - table.offset


def add_noise(x_q: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``clamp(x_q + noise, -128, 127)`` as int8 (noise ``[n, d]``, x_q ``[d]`` or shaped)."""
    x = np.asarray(x_q, dtype=np.int32).reshape(-1)
    return np.clip(x[None, :] + noise, -128, 127).astype(np.int8)
