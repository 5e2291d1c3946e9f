/* dtm_fully_connected_s8 (reference): TFLM int8 FULLY_CONNECTED, per-tensor or
 * per-channel requantisation, weight zero point 0. */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"

void dtm_fully_connected_s8(const dtm_fully_connected_s8_params_t *params,
                        const int8_t *input, int8_t *output)
{
    const int32_t N = params->in_features;
    const int32_t O = params->out_features;
    for (int32_t b = 0; b < params->batches; ++b) {
        const int8_t *x = input + b * N;
        for (int32_t o = 0; o < O; ++o) {
            const int8_t *w = params->weights + o * N;
            int32_t acc = 0;
            for (int32_t i = 0; i < N; ++i) {
                acc += ((int32_t)x[i] + params->input_offset) * (int32_t)w[i];
            }
            if (params->bias != NULL) {
                acc += params->bias[o];
            }
            const int32_t q = params->per_channel ? o : 0;
            acc = ditmos_mbqm(acc, params->multiplier[q], params->shift[q]);
            acc += params->output_offset;
            output[b * O + o] = (int8_t)ditmos_clamp(acc, params->act_min, params->act_max);
        }
    }
}
