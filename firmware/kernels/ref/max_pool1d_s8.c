/* dtm_max_pool1d_s8 (reference): TFLM int8 MAX_POOL_2D with H = 1. */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"

void dtm_max_pool1d_s8(const dtm_pool1d_s8_params_t *params,
                   const int8_t *input, int8_t *output)
{
    const int32_t C = params->channels;
    for (int32_t t = 0; t < params->out_len; ++t) {
        const int32_t origin = t * params->stride - params->pad;
        const int32_t k_start = origin < 0 ? -origin : 0;
        int32_t k_end = params->in_len - origin;
        if (k_end > params->pool_size) {
            k_end = params->pool_size;
        }
        for (int32_t c = 0; c < C; ++c) {
            int32_t m = INT8_MIN;
            for (int32_t k = k_start; k < k_end; ++k) {
                const int32_t v = input[(origin + k) * C + c];
                if (v > m) {
                    m = v;
                }
            }
            output[t * C + c] = (int8_t)ditmos_clamp(m, params->act_min, params->act_max);
        }
    }
}
