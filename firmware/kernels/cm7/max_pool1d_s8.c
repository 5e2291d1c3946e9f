/* max_pool1d_s8 (Cortex-M7): same contract and bytes as ref/max_pool1d_s8.c;
 * four channels per word with SSUB8 + SEL. */
#include "ditmos_kernels.h"
#include "ditmos_cm7_dsp.h"

void max_pool1d_s8(const pool1d_s8_params_t *params,
                   const int8_t *input, int8_t *output)
{
    const int32_t C = params->channels;
    const int32_t act_min = params->act_min, act_max = params->act_max;
    const int clamp = act_min > INT8_MIN || act_max < INT8_MAX;
    const uint32_t lo4 = cm7_dup8(act_min), hi4 = cm7_dup8(act_max);
    for (int32_t t = 0; t < params->out_len; ++t) {
        const int32_t origin = t * params->stride - params->pad;
        const int32_t k_start = origin < 0 ? -origin : 0;
        int32_t k_end = params->in_len - origin;
        if (k_end > params->pool_size) {
            k_end = params->pool_size;
        }
        int8_t *y = output + t * C;
        if (k_end <= k_start) { /* window entirely in the padding */
            for (int32_t c = 0; c < C; ++c) {
                y[c] = (int8_t)(INT8_MIN < act_min ? act_min : (INT8_MIN > act_max ? act_max : INT8_MIN));
            }
            continue;
        }
        const int8_t *x = input + (origin + k_start) * C;
        const int32_t n = k_end - k_start;
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
}
