/* dtm_max_pool1d_s8 (Cortex-M7): same contract and bytes as ref/max_pool1d_s8.c;
 * four channels per word with SSUB8 + SEL. */
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
    if (P == 2 && !clamp && (C & 3) == 0) { /* the common max-pool 2: SSUB8 + SEL per word */
        for (int32_t t = t_lo; t < t_hi; ++t) {
            const int8_t *x = input + (t * S - params->pad) * C;
            int8_t *y = output + t * C;
            for (int32_t c = 0; c < C; c += 4) {
                cm7_write4(y + c, cm7_max4(cm7_read4(x + c), cm7_read4(x + C + c)));
            }
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
