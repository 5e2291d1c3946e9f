/* conv1d_packed_s8 (Cortex-M7): conv1d_s8 / fully_connected_s8 over weights
 * and constants re-laid out offline (layout in ditmos_kernels.h, packer in
 * ditmos/codegen/variants.py).  Same bytes as the reference kernels.
 *
 * Register blocking: four output channels x one time step per tile.  Each
 * input word is loaded once and sign-extended once (SXTB16, SXTB16 ROR 8)
 * and feeds eight SMLADs; the eight int16 weight pairs it meets arrive
 * ready-made with two LDMs.  Per 16 MACs: 1 LDR + 2 SXTB16 + 2 LDM + 8 SMLAD.
 * Input offsets live in the bias, output offset and both roundings of TFLM's
 * requantisation in one 64-bit constant per channel (SMLAL + a shift).
 * Uneven window lengths overlap their first word (zero weights there), so
 * every word goes through the same loop; windows reaching into SAME padding
 * are copied into a small buffer filled with the zero point. */
#include <string.h>

#include "ditmos_kernels.h"
#include "ditmos_cm7_dot.h"

/* acc[0..3] += the packed dot products of one part's window (D >= 4 bytes at
 * x, head = D - 4 (ceil(D / 4) - 1)); *w advances past the part's words. */
#if CM7_USE_ASM
#define PK_WORD                                                                  \
    "ldr r5, [r6], #4\n\t"                                                      \
    "sxtb16 r4, r5\n\t"                                                         \
    "sxtb16 r5, r5, ror #8\n\t"                                                 \
    "ldm r12!, {r8, r9, r10, r11}\n\t"                                          \
    "smlad r0, r4, r8, r0\n\t"                                                  \
    "smlad r1, r4, r9, r1\n\t"                                                  \
    "smlad r2, r4, r10, r2\n\t"                                                 \
    "smlad r3, r4, r11, r3\n\t"                                                 \
    "ldm r12!, {r8, r9, r10, r11}\n\t"                                          \
    "smlad r0, r5, r8, r0\n\t"                                                  \
    "smlad r1, r5, r9, r1\n\t"                                                  \
    "smlad r2, r5, r10, r2\n\t"                                                 \
    "smlad r3, r5, r11, r3\n\t"

static inline void pk_part(const int8_t *x, int32_t len, int32_t head, const int32_t **w,
                           int32_t acc[4])
{
    /* r0-r3 accumulators, r4/r5 input halves, r6 input, r8-r11 weights,
     * r12 weights pointer, lr end of the input window; r7 stays free */
    register int32_t a0 __asm__("r0") = acc[0];
    register int32_t a1 __asm__("r1") = acc[1];
    register int32_t a2 __asm__("r2") = acc[2];
    register int32_t a3 __asm__("r3") = acc[3];
    register int32_t step __asm__("r4") = head;
    register const int8_t *px __asm__("r6") = x;
    register const int32_t *pw __asm__("r12") = *w;
    register const int8_t *end __asm__("lr") = x + len;
    __asm__ volatile(
        /* head word at byte 0, then the pointer moves to byte `head` */
        "ldr r5, [r6]\n\t"
        "add r6, r6, r4\n\t"
        "sxtb16 r4, r5\n\t"
        "sxtb16 r5, r5, ror #8\n\t"
        "ldm r12!, {r8, r9, r10, r11}\n\t"
        "smlad r0, r4, r8, r0\n\t"
        "smlad r1, r4, r9, r1\n\t"
        "smlad r2, r4, r10, r2\n\t"
        "smlad r3, r4, r11, r3\n\t"
        "ldm r12!, {r8, r9, r10, r11}\n\t"
        "smlad r0, r5, r8, r0\n\t"
        "smlad r1, r5, r9, r1\n\t"
        "smlad r2, r5, r10, r2\n\t"
        "smlad r3, r5, r11, r3\n\t"
        /* the remaining words, four per iteration; enter so that the
         * count works out (words mod 4 = 1, 2, 3 -> blocks 4, 3, 2) */
        "subs r4, lr, r6\n\t"
        "beq 9f\n\t"
        "ubfx r5, r4, #2, #2\n\t"
        "cmp r5, #2\n\t"
        "beq 2f\n\t"
        "bhi 1f\n\t"
        "cmp r5, #1\n\t"
        "beq 3f\n\t"
        "0:\n\t" PK_WORD
        "1:\n\t" PK_WORD
        "2:\n\t" PK_WORD
        "3:\n\t" PK_WORD
        "cmp r6, lr\n\t"
        "bne 0b\n\t"
        "9:\n\t"
        : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(step), "+r"(px), "+r"(pw)
        : "r"(end)
        : "r5", "r8", "r9", "r10", "r11", "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    *w = pw;
}
#undef PK_WORD
#else
static inline void pk_word(uint32_t xv, const int32_t *w, int32_t acc[4])
{
    const uint32_t lo = cm7_sxtb16(xv), hi = cm7_sxtb16_ror8(xv);
    for (int j = 0; j < 4; ++j) {
        acc[j] = cm7_smlad(lo, (uint32_t)w[j], acc[j]);
        acc[j] = cm7_smlad(hi, (uint32_t)w[4 + j], acc[j]);
    }
}

static inline void pk_part(const int8_t *x, int32_t len, int32_t head, const int32_t **w,
                           int32_t acc[4])
{
    const int32_t *pw = *w;
    pk_word(cm7_read4(x), pw, acc);
    pw += 8;
    for (int32_t i = head; i < len; i += 4) {
        pk_word(cm7_read4(x + i), pw, acc);
        pw += 8;
    }
    *w = pw;
}
#endif

/* TFLM MBQM + output offset: q = {pre_lo, pre_hi, multiplier, e - 1}. */
static inline int32_t pk_requant(int32_t acc, const int32_t *q)
{
    int64_t v = (int64_t)(((uint64_t)(uint32_t)q[1] << 32) | (uint32_t)q[0]);
    v += (int64_t)acc * q[2];
    v -= (int64_t)((uint32_t)acc >> 31) << 31;
    return (int32_t)(v >> 32) >> q[3];
}

/* All output channels of one time step whose part windows start at win[]. */
static inline void pk_step(const conv1d_packed_s8_params_t *p, const int8_t *const win[],
                           const int32_t len[], int8_t *y)
{
    const int32_t O = p->out_channels, np = p->num_parts;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const int32_t *w = p->weights, *b = p->bias, *rq = p->requant;
    for (int32_t o = 0; o < O; o += DITMOS_PACKED_GROUP) {
        int32_t acc[4] = {b[0], b[1], b[2], b[3]};
        for (int32_t q = 0; q < np; ++q) {
            pk_part(win[q], len[q], p->head[q], &w, acc);
        }
        const int32_t n = O - o < 4 ? O - o : 4;
        if (n == 4 && act_min == INT8_MIN && act_max == INT8_MAX) {
            y[0] = (int8_t)cm7_ssat8(pk_requant(acc[0], rq));
            y[1] = (int8_t)cm7_ssat8(pk_requant(acc[1], rq + 4));
            y[2] = (int8_t)cm7_ssat8(pk_requant(acc[2], rq + 8));
            y[3] = (int8_t)cm7_ssat8(pk_requant(acc[3], rq + 12));
        } else {
            for (int32_t j = 0; j < n; ++j) {
                int32_t v = pk_requant(acc[j], rq + 4 * j);
                v = v < act_min ? act_min : v;
                y[j] = (int8_t)(v > act_max ? act_max : v);
            }
        }
        y += n;
        b += 4;
        rq += 16;
    }
}

/* An output whose window reaches into the padding: the windows are copied,
 * each part padded with its zero point (so the offset-folded bias stays
 * right), into a buffer that only this function's frame holds. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void pk_edge_step(const conv1d_packed_s8_params_t *p, const int8_t *const inputs[],
                         int32_t origin, const int32_t len[], int8_t *y)
{
    int8_t buf[DITMOS_PACKED_EDGE_BYTES];
    const int8_t *win[DITMOS_CONV_MAX_PARTS];
    int8_t *dst = buf;
    for (int32_t q = 0; q < p->num_parts; ++q) {
        const int32_t C = p->channels[q];
        win[q] = dst;
        for (int32_t k = 0; k < p->kernel_size; ++k, dst += C) {
            const int32_t pos = origin + k;
            if (pos >= 0 && pos < p->in_len) {
                memcpy(dst, inputs[q] + pos * C, (size_t)C);
            } else {
                memset(dst, p->zero_point[q], (size_t)C);
            }
        }
    }
    pk_step(p, win, len, y);
}

void conv1d_packed_s8(const conv1d_packed_s8_params_t *params,
                      const int8_t *const inputs[], int8_t *output)
{
    const conv1d_packed_s8_params_t *p = params;
    const int32_t K = p->kernel_size, np = p->num_parts;
    int32_t len[DITMOS_CONV_MAX_PARTS];
    for (int32_t q = 0; q < np; ++q) {
        len[q] = K * p->channels[q];
    }
    for (int32_t t = 0; t < p->out_len; ++t) {
        const int32_t origin = t * p->stride - p->pad;
        int8_t *y = output + t * p->out_channels;
        if (origin >= 0 && origin + K <= p->in_len) {
            const int8_t *win[DITMOS_CONV_MAX_PARTS];
            for (int32_t q = 0; q < np; ++q) {
                win[q] = inputs[q] + origin * p->channels[q];
            }
            pk_step(p, win, len, y);
        } else {
            pk_edge_step(p, inputs, origin, len, y);
        }
    }
}
