/* dtm_fully_connected_s8 (Cortex-M7): same contract and bytes as
 * ref/fully_connected_s8.c; four output rows share each input load. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__ARM_FEATURE_DSP)
/* the assembly loops need every general register: never reserve r7 */
#pragma GCC optimize("omit-frame-pointer")
#endif
#include "ditmos_kernels.h"
#include "ditmos_cm7_dot.h"

/* acc[j] += sum_n (x[n] + off) * w_j[n], w_j = w + j * w_stride, j < 4.
 * On the M7 the main loop (8 values per iteration) is hand-scheduled
 * assembly using 13 general registers (the loop end and the packed offset
 * live in memory), so it also builds with a frame pointer or at -O3. */
#if defined(__GNUC__)
__attribute__((noinline)) /* a clean register state for the asm, whatever the caller */
#endif
static void cm7_dot_1x4(const int8_t *x, const int8_t *w, int32_t w_stride, int32_t len,
                        int32_t off, int32_t acc[4])
{
    const uint32_t off2 = cm7_dup16(off);
    const int8_t *w0 = w, *w1 = w + w_stride, *w2 = w + 2 * w_stride, *w3 = w + 3 * w_stride;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int32_t n8 = len >> 3;
#if CM7_USE_ASM
    if (n8 > 0) {
        const int8_t *x_end = x + 8 * n8;
        uint32_t t0, t1, t2, t3;
#define CM7_ASM_ROW(W, A)                                                        \
        "ldr %[t2], [%[" W "]], #4\n\t"                                          \
        "sxtb16 %[t3], %[t2]\n\t"                                               \
        "sxtb16 %[t2], %[t2], ror #8\n\t"                                       \
        "smlad %[" A "], %[t0], %[t3], %[" A "]\n\t"                             \
        "smlad %[" A "], %[t1], %[t2], %[" A "]\n\t"
#define CM7_ASM_STEP                                                            \
        "ldr %[t1], [%[x]], #4\n\t"                                             \
        "ldr %[t3], %[off2]\n\t"                                                \
        "sxtab16 %[t0], %[t3], %[t1]\n\t"                                       \
        "sxtab16 %[t1], %[t3], %[t1], ror #8\n\t"                               \
        CM7_ASM_ROW("w0", "a0") CM7_ASM_ROW("w1", "a1")                          \
        CM7_ASM_ROW("w2", "a2") CM7_ASM_ROW("w3", "a3")
        __asm__ volatile(
            "1:\n\t"
            CM7_ASM_STEP
            CM7_ASM_STEP
            "ldr %[t0], %[end]\n\t"
            "cmp %[x], %[t0]\n\t"
            "bne 1b\n\t"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x),
              [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [w3] "+r"(w3),
              [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3)
            : [end] "m"(x_end), [off2] "m"(off2)
            : "cc", "memory");
#undef CM7_ASM_STEP
#undef CM7_ASM_ROW
    }
#else
    for (int32_t n = 2 * n8; n > 0; --n) {
        const uint32_t xv = cm7_read4(x);
        const uint32_t x_l = cm7_sxtab16(off2, xv), x_h = cm7_sxtab16_ror8(off2, xv);
        uint32_t wv = cm7_read4(w0);
        a0 = cm7_smlad(x_l, cm7_sxtb16(wv), a0);
        a0 = cm7_smlad(x_h, cm7_sxtb16_ror8(wv), a0);
        wv = cm7_read4(w1);
        a1 = cm7_smlad(x_l, cm7_sxtb16(wv), a1);
        a1 = cm7_smlad(x_h, cm7_sxtb16_ror8(wv), a1);
        wv = cm7_read4(w2);
        a2 = cm7_smlad(x_l, cm7_sxtb16(wv), a2);
        a2 = cm7_smlad(x_h, cm7_sxtb16_ror8(wv), a2);
        wv = cm7_read4(w3);
        a3 = cm7_smlad(x_l, cm7_sxtb16(wv), a3);
        a3 = cm7_smlad(x_h, cm7_sxtb16_ror8(wv), a3);
        x += 4;
        w0 += 4;
        w1 += 4;
        w2 += 4;
        w3 += 4;
    }
#endif
    for (int32_t n = len & 7; n > 0; --n) {
        const int32_t v = *x++ + off;
        a0 += v * *w0++;
        a1 += v * *w1++;
        a2 += v * *w2++;
        a3 += v * *w3++;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

void dtm_fully_connected_s8(const dtm_fully_connected_s8_params_t *params,
                        const int8_t *input, int8_t *output)
{
    const dtm_fully_connected_s8_params_t *p = params;
    const int32_t N = p->in_features, O = p->out_features;
    const int32_t out_off = p->output_offset, act_min = p->act_min, act_max = p->act_max;
    const cm7_rq_t q_tensor = cm7_rq_make(p->multiplier[0], p->shift[0]);
    const int full_range = act_min == INT8_MIN && act_max == INT8_MAX;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * N;
        int8_t *y = output + b * O;
        int32_t o = 0;
        for (; o + 4 <= O; o += 4) {
            int32_t acc[4] = {0, 0, 0, 0};
            if (p->bias != NULL) {
                acc[0] = p->bias[o];
                acc[1] = p->bias[o + 1];
                acc[2] = p->bias[o + 2];
                acc[3] = p->bias[o + 3];
            }
            cm7_dot_1x4(x, p->weights + o * N, N, N, p->input_offset, acc);
            for (int32_t j = 0; j < 4; ++j) {
                cm7_rq_t q_row;
                const cm7_rq_t *rq = &q_tensor;
                if (p->per_channel) {
                    q_row = cm7_rq_make(p->multiplier[o + j], p->shift[o + j]);
                    rq = &q_row;
                }
                y[o + j] = full_range ? cm7_requant_out_r(acc[j], rq, out_off, act_min, act_max, 1)
                                      : cm7_requant_out(acc[j], rq, out_off, act_min, act_max);
            }
        }
        for (; o < O; o += 2) {
            /* leftover rows in pairs (a lone last row is computed twice) */
            const int32_t o1 = o + 1 < O ? o + 1 : o;
            int32_t acc[2] = {p->bias ? p->bias[o] : 0, p->bias ? p->bias[o1] : 0};
            cm7_dot_1x2(x, p->weights + o * N, p->weights + o1 * N, N, p->input_offset, acc);
            for (int32_t j = 0; j < 2 && o + j < O; ++j) {
                const int32_t q = p->per_channel ? o + j : 0;
                const cm7_rq_t rq = cm7_rq_make(p->multiplier[q], p->shift[q]);
                y[o + j] = cm7_requant_out(acc[j], &rq, out_off, act_min, act_max);
            }
        }
    }
}
