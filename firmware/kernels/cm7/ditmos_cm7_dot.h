/*
 * Dot-product cores shared by the cm7 conv and fully-connected kernels.
 * Inputs get their offset added while being sign-extended (SXTAB16), weights
 * are sign-extended (SXTB16), SMLAD does two multiply-accumulates.
 */
#ifndef DITMOS_CM7_DOT_H
#define DITMOS_CM7_DOT_H

#include "ditmos_cm7_dsp.h"

/* The hand-scheduled loops need an optimising build (at -O0 GCC cannot give
 * an asm statement 13-14 registers); the 2x2 conv loop uses 14 registers, so
 * files using it omit the frame pointer (see the pragma in conv1d_s8.c).
 * Define DITMOS_CM7_NO_ASM to use the C versions (same bytes, slower). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__) && \
    !defined(DITMOS_CM7_NO_ASM)
#define CM7_USE_ASM 1
#else
#define CM7_USE_ASM 0
#endif

/*
 * 2x2 core without input offset: acc {x0.w0, x0.w1, x1.w0, x1.w1} += raw
 * int8 dot products of length len (the caller adds offset * sum(w)).
 * On the M7 the main loop is hand-scheduled assembly: 16 values per
 * iteration, 4 loads + 8 SXTB16 + 8 SMLAD per 4 values, all 14 general
 * registers in use (the loop end lives in memory); then one 8-value step,
 * one 4-value step and at most 3 scalar values.
 */
#if CM7_USE_ASM
#define CM7_ASM_STEP4                                                           \
    "ldr %[t0], [%[w0]], #4\n\t"                                               \
    "ldr %[t2], [%[w1]], #4\n\t"                                               \
    "sxtb16 %[t1], %[t0]\n\t"                                                  \
    "sxtb16 %[t0], %[t0], ror #8\n\t"                                          \
    "sxtb16 %[t3], %[t2]\n\t"                                                  \
    "sxtb16 %[t2], %[t2], ror #8\n\t"                                          \
    "ldr %[t4], [%[x0]], #4\n\t"                                               \
    "sxtb16 %[t5], %[t4]\n\t"                                                  \
    "sxtb16 %[t4], %[t4], ror #8\n\t"                                          \
    "smlad %[a00], %[t5], %[t1], %[a00]\n\t"                                    \
    "smlad %[a00], %[t4], %[t0], %[a00]\n\t"                                    \
    "smlad %[a01], %[t5], %[t3], %[a01]\n\t"                                    \
    "smlad %[a01], %[t4], %[t2], %[a01]\n\t"                                    \
    "ldr %[t4], [%[x1]], #4\n\t"                                               \
    "sxtb16 %[t5], %[t4]\n\t"                                                  \
    "sxtb16 %[t4], %[t4], ror #8\n\t"                                          \
    "smlad %[a10], %[t5], %[t1], %[a10]\n\t"                                    \
    "smlad %[a10], %[t4], %[t0], %[a10]\n\t"                                    \
    "smlad %[a11], %[t5], %[t3], %[a11]\n\t"                                    \
    "smlad %[a11], %[t4], %[t2], %[a11]\n\t"
#define CM7_ASM_2X2_OUT                                                         \
    : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11),        \
      [x0] "+r"(x0), [x1] "+r"(x1), [w0] "+r"(w0), [w1] "+r"(w1),                \
      [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3),            \
      [t4] "=&r"(t4), [t5] "=&r"(t5)
#endif

static inline void cm7_dot_2x2_raw(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                   const int8_t *w1, int32_t len, int32_t acc[4])
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
#if CM7_USE_ASM
    uint32_t t0, t1, t2, t3, t4, t5;
    if (len >= 16) {
        const int8_t *x0_end = x0 + (len & ~15);
        __asm__ volatile("1:\n\t" CM7_ASM_STEP4 CM7_ASM_STEP4 CM7_ASM_STEP4 CM7_ASM_STEP4
                         "ldr %[t0], %[end]\n\t"
                         "cmp %[x0], %[t0]\n\t"
                         "bne 1b\n\t"
                         CM7_ASM_2X2_OUT
                         : [end] "m"(x0_end)
                         : "cc", "memory");
    }
    if (len & 8) {
        __asm__ volatile(CM7_ASM_STEP4 CM7_ASM_STEP4 CM7_ASM_2X2_OUT : : "memory");
    }
    if (len & 4) {
        __asm__ volatile(CM7_ASM_STEP4 CM7_ASM_2X2_OUT : : "memory");
    }
#else
    for (int32_t n = len >> 2; n > 0; --n) {
        const uint32_t wa = cm7_read4(w0), wb = cm7_read4(w1);
        const uint32_t xa = cm7_read4(x0), xb = cm7_read4(x1);
        a00 = cm7_smlad(cm7_sxtb16(xa), cm7_sxtb16(wa), a00);
        a00 = cm7_smlad(cm7_sxtb16_ror8(xa), cm7_sxtb16_ror8(wa), a00);
        a01 = cm7_smlad(cm7_sxtb16(xa), cm7_sxtb16(wb), a01);
        a01 = cm7_smlad(cm7_sxtb16_ror8(xa), cm7_sxtb16_ror8(wb), a01);
        a10 = cm7_smlad(cm7_sxtb16(xb), cm7_sxtb16(wa), a10);
        a10 = cm7_smlad(cm7_sxtb16_ror8(xb), cm7_sxtb16_ror8(wa), a10);
        a11 = cm7_smlad(cm7_sxtb16(xb), cm7_sxtb16(wb), a11);
        a11 = cm7_smlad(cm7_sxtb16_ror8(xb), cm7_sxtb16_ror8(wb), a11);
        x0 += 4;
        x1 += 4;
        w0 += 4;
        w1 += 4;
    }
#endif
    for (int32_t n = len & 3; n > 0; --n) {
        const int32_t va = *x0++, vb = *x1++;
        const int32_t ka = *w0++, kb = *w1++;
        a00 += va * ka;
        a01 += va * kb;
        a10 += vb * ka;
        a11 += vb * kb;
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* Sum of len int8 weights. */
static inline int32_t cm7_sum_s8(const int8_t *w, int32_t len)
{
    const uint32_t ones = 0x00010001u;
    int32_t s = 0;
    for (int32_t n = len >> 2; n > 0; --n) {
        const uint32_t v = cm7_read4(w);
        s = cm7_smlad(cm7_sxtb16(v), ones, s);
        s = cm7_smlad(cm7_sxtb16_ror8(v), ones, s);
        w += 4;
    }
    for (int32_t n = len & 3; n > 0; --n) {
        s += *w++;
    }
    return s;
}

/* acc[j] += sum_n (x[n] + off) * w_j[n] for j in {0, 1}. */
static inline void cm7_dot_1x2(const int8_t *x, const int8_t *w0, const int8_t *w1,
                               int32_t len, int32_t off, int32_t acc[2])
{
    const uint32_t off2 = cm7_dup16(off);
    int32_t a0 = acc[0], a1 = acc[1];
    for (int32_t n = len >> 2; n > 0; --n) {
        const uint32_t xv = cm7_read4(x);
        const uint32_t x_l = cm7_sxtab16(off2, xv), x_h = cm7_sxtab16_ror8(off2, xv);
        uint32_t wv = cm7_read4(w0);
        a0 = cm7_smlad(x_l, cm7_sxtb16(wv), a0);
        a0 = cm7_smlad(x_h, cm7_sxtb16_ror8(wv), a0);
        wv = cm7_read4(w1);
        a1 = cm7_smlad(x_l, cm7_sxtb16(wv), a1);
        a1 = cm7_smlad(x_h, cm7_sxtb16_ror8(wv), a1);
        x += 4;
        w0 += 4;
        w1 += 4;
    }
    for (int32_t n = len & 3; n > 0; --n) {
        const int32_t v = *x++ + off;
        a0 += v * *w0++;
        a1 += v * *w1++;
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* Requantise one accumulator and clamp to the activation range; with
 * full_range (act_min = -128, act_max = 127, a compile-time constant at the
 * call site) the clamp is one SSAT. */
static inline int8_t cm7_requant_out_r(int32_t acc, const cm7_rq_t *q, int32_t out_offset,
                                       int32_t act_min, int32_t act_max, int full_range)
{
    int32_t v = cm7_mbqm(acc, q) + out_offset;
    if (full_range) {
        return (int8_t)cm7_ssat8(v);
    }
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

static inline int8_t cm7_requant_out(int32_t acc, const cm7_rq_t *q, int32_t out_offset,
                                     int32_t act_min, int32_t act_max)
{
    return cm7_requant_out_r(acc, q, out_offset, act_min, act_max, 0);
}

#endif /* DITMOS_CM7_DOT_H */
