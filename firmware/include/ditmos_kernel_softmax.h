/*
 * gemmlowp's fixed-point exp / reciprocal as TFLM's int8 SOFTMAX uses them,
 * shared by the ref and cm7 softmax kernels.  Header-only, static inline, C99.
 */
#ifndef DITMOS_KERNEL_SOFTMAX_H
#define DITMOS_KERNEL_SOFTMAX_H

#include <stdint.h>

#include "ditmos_kernel_requant.h"

/* A kernel may supply its own SaturatingRoundingDoublingHighMul (same
 * results) by defining DITMOS_SOFTMAX_SRDHM before including this header. */
#ifndef DITMOS_SOFTMAX_SRDHM
#define DITMOS_SOFTMAX_SRDHM ditmos_srdhm
#endif

/* gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent. */
static inline int32_t ditmos_sat_shl(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)((UINT32_C(1) << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), a and result in Q0.31. */
static inline int32_t ditmos_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668;    /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 */
    const int32_t x = a + (1 << 28);             /* a + 1/8 */
    const int32_t x2 = DITMOS_SOFTMAX_SRDHM(x, x);
    const int32_t x3 = DITMOS_SOFTMAX_SRDHM(x2, x);
    const int32_t x4 = DITMOS_SOFTMAX_SRDHM(x2, x2);
    const int32_t x4_over_4 = ditmos_rdbpot(x4, 2);
    const int32_t poly = ditmos_rdbpot(DITMOS_SOFTMAX_SRDHM(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + DITMOS_SOFTMAX_SRDHM(constant_term, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26; result in Q0.31. */
static inline int32_t ditmos_exp_on_negative_values(int32_t a)
{
    static const int32_t barrel[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1)   */
        290630308,  /* exp(-2)   */
        39332535,   /* exp(-4)   */
        720401,     /* exp(-8)   */
        242,        /* exp(-16)  */
    };
    const int32_t frac_bits = 26;
    const int32_t one_quarter = 1 << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = ditmos_exp_quarter(ditmos_sat_shl(a_mod_quarter_minus_one_quarter, 5));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    for (int32_t e = -2; e <= 4; ++e) {
        if (remainder & (1 << (frac_bits + e))) {
            result = DITMOS_SOFTMAX_SRDHM(result, barrel[e + 2]);
        }
    }
    if (a == 0) {
        result = INT32_MAX;
    }
    return result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1, Q0.31 in and out. */
static inline int32_t ditmos_one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t c48_17 = 1515870810;       /* 48/17 in Q2.29 */
    const int32_t cneg32_17 = -1010580540;   /* -32/17 in Q2.29 */
    int32_t x = c48_17 + DITMOS_SOFTMAX_SRDHM(half_denominator, cneg32_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t hdx = DITMOS_SOFTMAX_SRDHM(half_denominator, x);
        const int32_t one_minus = (1 << 29) - hdx;
        x = x + ditmos_sat_shl(DITMOS_SOFTMAX_SRDHM(x, one_minus), 2);
    }
    return ditmos_sat_shl(x, 1);
}

static inline int32_t ditmos_clz32(uint32_t v)
{
    int32_t n = 0;
    if (v == 0) {
        return 32;
    }
    while (!(v & UINT32_C(0x80000000))) {
        v <<= 1;
        ++n;
    }
    return n;
}

/* Q0.31 exp of the scaled difference of an int8 input to its row maximum
 * (diff <= 0, diff >= diff_min). */
static inline int32_t ditmos_softmax_exp(int32_t diff, int32_t input_left_shift, int32_t input_multiplier)
{
    const int32_t scaled =
        DITMOS_SOFTMAX_SRDHM((int32_t)((uint32_t)diff << input_left_shift), input_multiplier);
    return ditmos_exp_on_negative_values(scaled);
}

#endif /* DITMOS_KERNEL_SOFTMAX_H */
