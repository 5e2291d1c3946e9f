"""TFLite Micro's integer arithmetic for int8 quantisation, in numpy.

This module is the specification that the generated C code mirrors.  Every
function reproduces TFLM's reference kernels bit for bit (checked against the
TFLM interpreter itself in ``tests/quantize/test_qmath.py``).  All arithmetic
below is exact integer arithmetic done in int64 numpy arrays; values that C
keeps in ``int32_t`` never leave the int32 range for the inputs these
functions accept.

Input quantisation (float, already normalised -> int8), as TFLite's
``AffineQuantize`` does it, entirely in IEEE float32::

    q = clamp(roundf(x / scale) + zero_point, -128, 127)

``x`` and ``scale`` are float32, ``x / scale`` is one float32 division,
``roundf`` rounds half away from zero, the addition is in int32.

int8 -> int8 requantisation (TFLM ``QUANTIZE`` with int8 input and output,
``reference_ops::Requantize``)::

    real            = (double)in_scale / (double)out_scale   # scales are float32
    (M, shift)      = quantize_multiplier(real)
    y = clamp(multiply_by_quantized_multiplier(x - in_zp, M, shift) + out_zp,
              -128, 127)

``quantize_multiplier(real)`` (TFLM ``QuantizeMultiplier``, double precision)::

    if real == 0: M = 0, shift = 0
    q, shift = frexp(real)                 # real = q * 2**shift, 0.5 <= q < 1
    M = round_half_away_from_zero(q * 2**31)   # exact in double
    if M == 2**31: M = 2**30; shift += 1
    if shift < -31: M = 0; shift = 0

``multiply_by_quantized_multiplier(x, M, shift)`` (TFLM's default
"double rounding" variant, ``TFLITE_SINGLE_ROUNDING`` off; x, M int32)::

    left  = max(shift, 0);  right = max(-shift, 0)
    a     = x * (1 << left)                          # int32
    # gemmlowp SaturatingRoundingDoublingHighMul(a, M):
    if a == M == INT32_MIN: h = INT32_MAX
    else:
        p     = (int64)a * (int64)M
        nudge = p >= 0 ? (1 << 30) : (1 - (1 << 30))
        h     = (int32)((p + nudge) / (1LL << 31))   # C division: truncates toward 0
    # gemmlowp RoundingDivideByPOT(h, right):
    mask      = (1 << right) - 1
    remainder = h & mask
    threshold = (mask >> 1) + (h < 0 ? 1 : 0)
    result    = (h >> right) + (remainder > threshold ? 1 : 0)   # arithmetic shift

Argmax over int8 scores (selector route, predicted class) takes the FIRST
maximum (lowest index), as TFLM's ``ARG_MAX`` does.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN = -128
INT8_MAX = 127
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


def round_half_away(x: float) -> int:
    """C's ``round()``: halves go away from zero (Python's ``round`` goes to even)."""
    a = abs(x)
    whole = math.floor(a)
    r = whole + (1 if a - whole >= 0.5 else 0)  # a - whole is exact in double
    return int(r) if x >= 0 else -int(r)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """TFLM ``QuantizeMultiplier``: a positive real as (Q31 multiplier, shift).

    ``real ~= multiplier * 2**(shift - 31)``; ``shift`` > 0 is a left shift.
    """
    real = float(real_multiplier)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"quantize_multiplier needs a finite real >= 0, got {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    # q * 2**31 is exact in double (a power-of-two scaling); only the rounding
    # to an integer can lose information, and it must round half away from 0.
    q_fixed = round_half_away(q * float(1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    if q_fixed > _INT32_MAX:  # cannot happen after the fix-up above
        raise AssertionError("quantized multiplier overflow")
    return int(q_fixed), int(shift)


def effective_scale(in_scale: float, out_scale: float) -> float:
    """``(double)in_scale / (double)out_scale`` with both scales taken as float32,
    the way TFLM reads them from the flatbuffer."""
    return float(np.float64(np.float32(in_scale)) / np.float64(np.float32(out_scale)))


def _trunc_div_pow2(v: np.ndarray, bits: int) -> np.ndarray:
    """C integer division by 2**bits (truncates toward zero) on int64 arrays."""
    return np.where(v >= 0, v >> bits, -((-v) >> bits))


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 values (as int64)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == b) & (a == _INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    high = _trunc_div_pow2(ab + nudge, 31)
    return np.where(overflow, np.int64(_INT32_MAX), high)


def rounding_divide_by_pot(x, exponent: int) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: x / 2**exponent, halves away from zero."""
    if not 0 <= exponent <= 31:
        raise ValueError(f"exponent must be in 0..31, got {exponent}")
    x = np.asarray(x, dtype=np.int64)
    mask = np.int64((1 << exponent) - 1)
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def multiply_by_quantized_multiplier(x, multiplier: int, shift: int) -> np.ndarray:
    """TFLM ``MultiplyByQuantizedMultiplier(int32 x, int32 M, int shift)``
    (double rounding, the default build)."""
    x = np.asarray(x, dtype=np.int64)
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    a = x * np.int64(1 << left)
    if a.size and (a.min() < _INT32_MIN or a.max() > _INT32_MAX):
        raise OverflowError("x << shift leaves the int32 range (C would overflow)")
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(a, multiplier), right)


def requantize(x, in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """int8 -> int8 requantisation exactly as TFLM's QUANTIZE kernel does it."""
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise TypeError(f"requantize expects int8 input, got {x.dtype}")
    multiplier, shift = quantize_multiplier(effective_scale(in_scale, out_scale))
    y = multiply_by_quantized_multiplier(x.astype(np.int64) - int(in_zp), multiplier, shift)
    return np.clip(y + int(out_zp), INT8_MIN, INT8_MAX).astype(np.int8)


def quantize(x, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 as TFLite's ``AffineQuantize``: float32 division, round half
    away from zero, add the zero point, clamp to int8."""
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("quantize: input contains NaN or infinity")
    v = x / np.float32(scale)  # one float32 division, as in C
    a = np.abs(v)
    whole = np.floor(a)
    r = whole + ((a - whole) >= np.float32(0.5))  # a - whole is exact in float32
    # C's float -> int32 conversion is undefined far outside int8; clamp first.
    r = np.clip(np.copysign(r, v), -(1 << 24), 1 << 24).astype(np.int64)
    return np.clip(r + int(zero_point), INT8_MIN, INT8_MAX).astype(np.int8)


def dequantize(q, scale: float, zero_point: int) -> np.ndarray:
    """int8 -> float32: ``scale * (q - zero_point)``."""
    q = np.asarray(q).astype(np.int32)
    return (np.float32(scale) * (q - np.int32(zero_point)).astype(np.float32)).astype(np.float32)


def argmax_first(scores, axis: int = -1) -> np.ndarray:
    """Index of the first maximum (numpy's argmax has the same tie rule as TFLM)."""
    return np.argmax(np.asarray(scores), axis=axis)
