/*
 * The few Armv7E-M DSP instructions the cm7 kernels use, as static inline
 * functions written with GCC inline assembly (no CMSIS headers).  Without
 * __ARM_FEATURE_DSP (e.g. on the host) each one falls back to portable C with
 * the instruction's exact semantics, so the cm7 kernels also build and are
 * tested on the host.
 *
 * Packed values are two signed 16-bit halves in a uint32_t (lane 0 = bits
 * 0..15).  Loads of four int8 values are little-endian words (byte i -> bits
 * 8i..8i+7), unaligned allowed (Cortex-M7 LDR supports it).
 */
#ifndef DITMOS_CM7_DSP_H
#define DITMOS_CM7_DSP_H

#include <stdint.h>
#include <string.h>

/* Four consecutive int8 values as one word (bytes 0,1,2,3 = lanes). */
static inline uint32_t cm7_read4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void cm7_write4(int8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

/* All four int8 lanes set to v. */
static inline uint32_t cm7_dup8(int32_t v)
{
    return (uint32_t)(uint8_t)v * 0x01010101u;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

/* bytes 0 and 2 sign-extended to halves */
static inline uint32_t cm7_sxtb16(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}

/* bytes 1 and 3 sign-extended to halves */
static inline uint32_t cm7_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* halves of a plus sign-extended bytes 0 and 2 of x */
static inline uint32_t cm7_sxtab16(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* halves of a plus sign-extended bytes 1 and 3 of x */
static inline uint32_t cm7_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* acc + x.lo * y.lo + x.hi * y.hi */
static inline int32_t cm7_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}

/* signed 64-bit product */
static inline int64_t cm7_smull(int32_t a, int32_t b)
{
    return (int64_t)a * (int64_t)b; /* GCC emits SMULL */
}

/* saturate to [-128, 127] */
static inline int32_t cm7_ssat8(int32_t v)
{
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r;
}

/* per-byte signed max / min of four int8 lanes (SSUB8 sets GE, SEL picks) */
static inline uint32_t cm7_max4(uint32_t a, uint32_t b)
{
    uint32_t r, t;
    __asm__("ssub8 %1, %2, %3\n\tsel %0, %2, %3" : "=r"(r), "=&r"(t) : "r"(a), "r"(b) : "cc");
    return r;
}

static inline uint32_t cm7_min4(uint32_t a, uint32_t b)
{
    uint32_t r, t;
    __asm__("ssub8 %1, %2, %3\n\tsel %0, %3, %2" : "=r"(r), "=&r"(t) : "r"(a), "r"(b) : "cc");
    return r;
}

#else /* portable equivalents */

static inline uint32_t cm7_max4(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) {
        const int8_t x = (int8_t)(uint8_t)(a >> (8 * i)), y = (int8_t)(uint8_t)(b >> (8 * i));
        r |= (uint32_t)(uint8_t)(x >= y ? x : y) << (8 * i);
    }
    return r;
}

static inline uint32_t cm7_min4(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) {
        const int8_t x = (int8_t)(uint8_t)(a >> (8 * i)), y = (int8_t)(uint8_t)(b >> (8 * i));
        r |= (uint32_t)(uint8_t)(x >= y ? y : x) << (8 * i);
    }
    return r;
}

static inline uint32_t cm7_halves(int32_t lo, int32_t hi)
{
    return ((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu);
}

static inline int32_t cm7_lane(uint32_t x, int lane)
{
    return (int32_t)(int16_t)(uint16_t)(x >> (16 * lane));
}

static inline int32_t cm7_byte(uint32_t x, int b)
{
    return (int32_t)(int8_t)(uint8_t)(x >> (8 * b));
}

static inline uint32_t cm7_sxtb16(uint32_t x)
{
    return cm7_halves(cm7_byte(x, 0), cm7_byte(x, 2));
}

static inline uint32_t cm7_sxtb16_ror8(uint32_t x)
{
    return cm7_halves(cm7_byte(x, 1), cm7_byte(x, 3));
}

static inline uint32_t cm7_sxtab16(uint32_t a, uint32_t x)
{
    return cm7_halves(cm7_lane(a, 0) + cm7_byte(x, 0), cm7_lane(a, 1) + cm7_byte(x, 2));
}

static inline uint32_t cm7_sxtab16_ror8(uint32_t a, uint32_t x)
{
    return cm7_halves(cm7_lane(a, 0) + cm7_byte(x, 1), cm7_lane(a, 1) + cm7_byte(x, 3));
}

static inline int32_t cm7_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    const uint32_t sum = (uint32_t)acc + (uint32_t)(cm7_lane(x, 0) * cm7_lane(y, 0)) +
                         (uint32_t)(cm7_lane(x, 1) * cm7_lane(y, 1));
    return (int32_t)sum; /* wraps like the instruction */
}

static inline int64_t cm7_smull(int32_t a, int32_t b)
{
    return (int64_t)a * (int64_t)b;
}

static inline int32_t cm7_ssat8(int32_t v)
{
    return v < INT8_MIN ? INT8_MIN : (v > INT8_MAX ? INT8_MAX : v);
}

#endif

/* Both 16-bit lanes set to v (v in int16 range). */
static inline uint32_t cm7_dup16(int32_t v)
{
    return ((uint32_t)v << 16) | ((uint32_t)v & 0xFFFFu);
}

/*
 * TFLM MultiplyByQuantizedMultiplier for multiplier >= 0 (always true for
 * QuantizeMultiplier output), with the shift split once per channel:
 *  - SaturatingRoundingDoublingHighMul(a, m) = (a*m + 2^30) >> 31 (floor):
 *    equal to gemmlowp's sign-dependent nudge and truncating division for
 *    every product (one SMLAL); a = m = INT32_MIN cannot occur as m >= 0.
 *  - RoundingDivideByPOT(h, r) = (h >> r) + ((h & mask) > (mask >> 1) + (h < 0)),
 *    gemmlowp's own formula, valid for r = 0 too (mask = 0).
 */
typedef struct {
    int32_t multiplier;
    int32_t left;
    int32_t right;
    int32_t mask;
    int32_t half;
} cm7_rq_t;

static inline cm7_rq_t cm7_rq_make(int32_t multiplier, int32_t shift)
{
    cm7_rq_t q;
    q.multiplier = multiplier;
    q.left = shift > 0 ? shift : 0;
    q.right = shift > 0 ? 0 : -shift;
    q.mask = (int32_t)((UINT32_C(1) << q.right) - 1u);
    q.half = q.mask >> 1;
    return q;
}

static inline int32_t cm7_mbqm(int32_t x, const cm7_rq_t *q)
{
    const int32_t a = (int32_t)((uint32_t)x << q->left);
    const int32_t h = (int32_t)((cm7_smull(a, q->multiplier) + (INT64_C(1) << 30)) >> 31);
    const int32_t threshold = q->half + (int32_t)((uint32_t)h >> 31);
    return (h >> q->right) + ((h & q->mask) > threshold ? 1 : 0);
}

#endif /* DITMOS_CM7_DSP_H */
