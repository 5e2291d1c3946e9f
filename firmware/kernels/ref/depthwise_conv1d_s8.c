/* dtm_depthwise_conv1d_s8 (reference): TFLM int8 DEPTHWISE_CONV_2D with H = 1. */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"

void dtm_depthwise_conv1d_s8(const dtm_depthwise_conv1d_s8_params_t *params,
                         const int8_t *input, int8_t *output)
{
    const int32_t C = params->in_channels;
    const int32_t M = params->depth_multiplier;
    const int32_t out_ch = C * M;
    for (int32_t t = 0; t < params->out_len; ++t) {
        const int32_t origin = t * params->stride - params->pad;
        for (int32_t c = 0; c < C; ++c) {
            for (int32_t m = 0; m < M; ++m) {
                const int32_t o = c * M + m;
                int32_t acc = 0;
                for (int32_t k = 0; k < params->kernel_size; ++k) {
                    const int32_t pos = origin + k;
                    if (pos < 0 || pos >= params->in_len) {
                        continue;
                    }
                    acc += ((int32_t)input[pos * C + c] + params->input_offset) *
                           (int32_t)params->weights[k * out_ch + o];
                }
                if (params->bias != NULL) {
                    acc += params->bias[o];
                }
                acc = ditmos_mbqm(acc, params->multiplier[o], params->shift[o]);
                acc += params->output_offset;
                output[t * out_ch + o] =
                    (int8_t)ditmos_clamp(acc, params->act_min, params->act_max);
            }
        }
    }
}
