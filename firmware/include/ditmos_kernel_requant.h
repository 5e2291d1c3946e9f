/*
 * Fixed-point helpers shared by the ditmos kernels: TFLM's default
 * (double-rounding, TFLITE_SINGLE_ROUNDING off) requantisation arithmetic,
 * i.e. gemmlowp's SaturatingRoundingDoublingHighMul followed by
 * RoundingDivideByPOT.  Header-only, static inline, C99.
 */
#ifndef DITMOS_KERNEL_REQUANT_H
#define DITMOS_KERNEL_REQUANT_H

#include <stdint.h>

/* (a * b * 2) >> 32 with round-half-away-from-zero of the 64-bit product,
 * saturating the single overflow case a == b == INT32_MIN. */
static inline int32_t ditmos_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? (INT64_C(1) << 30) : (1 - (INT64_C(1) << 30));
    /* C division truncates toward zero, as gemmlowp's does. */
    return (int32_t)((ab + nudge) / (INT64_C(1) << 31));
}

/* x / 2^exponent rounded half away from zero (0 <= exponent <= 31). */
static inline int32_t ditmos_rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM MultiplyByQuantizedMultiplier(int32 x, multiplier, shift). */
static inline int32_t ditmos_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    /* x * 2^left wraps like TFLM's int32 multiply on every target we build for. */
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return ditmos_rdbpot(ditmos_srdhm(shifted, multiplier), right);
}

/* TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp (left_shift <= 0). */
static inline int32_t ditmos_mbqm_smaller_than_one(int32_t x, int32_t multiplier,
                                                   int32_t left_shift)
{
    return ditmos_rdbpot(ditmos_srdhm(x, multiplier), -left_shift);
}

static inline int32_t ditmos_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* A MEAN over T values: fold 1/T into (multiplier, shift) exactly as TFLM's
 * QuantizedMeanOrSum does (T <= 0 leaves them unchanged). */
static inline void ditmos_mean_fold(int32_t T, int32_t *multiplier, int32_t *shift)
{
    if (T <= 0) {
        return;
    }
    int32_t n_shift = 0;
    while ((INT64_C(1) << (n_shift + 1)) <= (int64_t)T) {
        ++n_shift;
    }
    if (n_shift > 32) {
        n_shift = 32;
    }
    if (n_shift > 31 + *shift) {
        n_shift = 31 + *shift;
    }
    *multiplier = (int32_t)(((int64_t)*multiplier << n_shift) / (int64_t)T);
    *shift -= n_shift;
}

#endif /* DITMOS_KERNEL_REQUANT_H */
