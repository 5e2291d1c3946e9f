/* dtm_max_pool1d_s8 (Cortex-M7): same contract and bytes as ref/max_pool1d_s8.c;
 * four channels per word with SSUB8 + SEL.  Pool 2: channel counts that are
 * not a multiple of 4 (but at least 4) overlap their last word with the one
 * before (max is idempotent, so bytes computed twice are equal); with 1 or 2
 * channels and stride 2 the words hold consecutive steps instead. */
#include "ditmos_kernels.h"
#include "ditmos_cm7_dsp.h"

/* One output step over n >= 1 valid taps starting at x. */
static void pool_step(const int8_t *x, int32_t n, int32_t C, int8_t *y, int clamp,
                      int32_t act_min, int32_t act_max)
{
    const uint32_t lo4 = cm7_dup8(act_min), hi4 = cm7_dup8(act_max);
    int32_t c = 0;
    for (; c + 4 <= C; c += 4) {
        uint32_t m = cm7_read4(x + c);
        for (int32_t k = 1; k < n; ++k) {
            m = cm7_max4(m, cm7_read4(x + k * C + c));
        }
        if (clamp) {
            m = cm7_min4(cm7_max4(m, lo4), hi4);
        }
        cm7_write4(y + c, m);
    }
    for (; c < C; ++c) {
        int32_t m = x[c];
        for (int32_t k = 1; k < n; ++k) {
            m = x[k * C + c] > m ? x[k * C + c] : m;
        }
        m = m < act_min ? act_min : m;
        y[c] = (int8_t)(m > act_max ? act_max : m);
    }
}

void dtm_max_pool1d_s8(const dtm_pool1d_s8_params_t *params,
                   const int8_t *input, int8_t *output)
{
    const int32_t C = params->channels, S = params->stride, P = params->pool_size;
    const int32_t act_min = params->act_min, act_max = params->act_max;
    const int clamp = act_min > INT8_MIN || act_max < INT8_MAX;
    /* windows fully inside the input: [t_lo, t_hi) */
    int32_t t_lo = (params->pad + S - 1) / S;
    int32_t t_hi = params->in_len - P + params->pad >= 0 ? (params->in_len - P + params->pad) / S + 1 : 0;
    if (t_hi > params->out_len) {
        t_hi = params->out_len;
    }
    if (t_lo > t_hi) {
        t_lo = t_hi;
    }
    if (P == 2 && !clamp && C >= 4) { /* the common max-pool 2: SSUB8 + SEL per word */
        const int32_t last = C - 4;   /* the last word, overlapping when C % 4 != 0 */
        for (int32_t t = t_lo; t < t_hi; ++t) {
            const int8_t *x = input + (t * S - params->pad) * C;
            int8_t *y = output + t * C;
            int32_t c = 0;
            for (; c < last; c += 4) {
                cm7_write4(y + c, cm7_max4(cm7_read4(x + c), cm7_read4(x + C + c)));
            }
            cm7_write4(y + last, cm7_max4(cm7_read4(x + last), cm7_read4(x + C + last)));
        }
    } else if (P == 2 && S == 2 && !clamp && C <= 2) {
        /* one word = 4 / C consecutive input steps = 2 / C output steps */
        int32_t t = t_lo;
        const int8_t *x = input + (t * 2 - params->pad) * C;
        int8_t *y = output + t * C;
        if (C == 2) { /* steps (a, b), (c, d) -> max(a, b), max(c, d) */
            for (; t + 2 <= t_hi; t += 2, x += 8, y += 4) {
                const uint32_t w0 = cm7_read4(x), w1 = cm7_read4(x + 4);
                cm7_write4(y, cm7_max4((w0 & 0xFFFFu) | (w1 << 16), (w0 >> 16) | (w1 & 0xFFFF0000u)));
            }
        } else { /* bytes x0..x7 -> max(x0, x1), max(x2, x3), ... */
            for (; t + 4 <= t_hi; t += 4, x += 8, y += 4) {
                const uint32_t w0 = cm7_read4(x), w1 = cm7_read4(x + 4);
                const uint32_t m0 = cm7_max4(w0, w0 >> 8), m1 = cm7_max4(w1, w1 >> 8);
                cm7_write4(y, (m0 & 0xFFu) | ((m0 >> 8) & 0xFF00u) | ((m1 & 0xFFu) << 16) |
                                  ((m1 << 8) & 0xFF000000u));
            }
        }
        for (; t < t_hi; ++t) {
            pool_step(input + (t * 2 - params->pad) * C, 2, C, output + t * C, 0, act_min, act_max);
        }
    } else {
        for (int32_t t = t_lo; t < t_hi; ++t) {
            pool_step(input + (t * S - params->pad) * C, P, C, output + t * C, clamp, act_min,
                      act_max);
        }
    }
    for (int32_t t = 0; t < params->out_len; ++t) { /* edges: windows clipped to the input */
        if (t == t_lo && t_hi > t_lo) {
            t = t_hi - 1;
            continue;
        }
        const int32_t origin = t * S - params->pad;
        const int32_t k_start = origin < 0 ? -origin : 0;
        int32_t k_end = params->in_len - origin;
        if (k_end > P) {
            k_end = P;
        }
        int8_t *y = output + t * C;
        if (k_end <= k_start) { /* window entirely in the padding */
            const int32_t v = INT8_MIN < act_min ? act_min : (INT8_MIN > act_max ? act_max : INT8_MIN);
            for (int32_t c = 0; c < C; ++c) {
                y[c] = (int8_t)v;
            }
            continue;
        }
        pool_step(input + (origin + k_start) * C, k_end - k_start, C, y, clamp, act_min, act_max);
    }
}
