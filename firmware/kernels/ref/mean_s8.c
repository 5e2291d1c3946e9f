/* dtm_mean_s8 (reference): TFLM int8 MEAN over the time axis of [T][C]. */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"

void dtm_mean_s8(const dtm_mean_s8_params_t *params, const int8_t *input, int8_t *output)
{
    const int32_t T = params->in_len;
    const int32_t C = params->channels;
    int32_t multiplier = params->multiplier;
    int32_t shift = params->shift;
    ditmos_mean_fold(T, &multiplier, &shift);
    for (int32_t c = 0; c < C; ++c) {
        int32_t sum = 0;
        for (int32_t t = 0; t < T; ++t) {
            sum += input[t * C + c];
        }
        const int32_t out = ditmos_mbqm(sum - params->input_zero_point * T, multiplier, shift) +
                            params->output_zero_point;
        output[c] = (int8_t)ditmos_clamp(out, INT8_MIN, INT8_MAX);
    }
}
