/* dtm_conv1d_s8 (reference): TFLM int8 CONV_2D with H = 1, over a
 * channel-concatenation of parts that is never materialised. */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"

void dtm_conv1d_s8(const dtm_conv1d_s8_params_t *params,
               const int8_t *const inputs[], int8_t *output)
{
    const int32_t K = params->kernel_size;
    int32_t in_ch_total = 0;
    for (int32_t p = 0; p < params->num_parts; ++p) {
        in_ch_total += params->parts[p].channels;
    }
    for (int32_t t = 0; t < params->out_len; ++t) {
        const int32_t origin = t * params->stride - params->pad;
        for (int32_t o = 0; o < params->out_channels; ++o) {
            const int8_t *w = params->weights + (int32_t)o * K * in_ch_total;
            int32_t acc = 0;
            for (int32_t p = 0; p < params->num_parts; ++p) {
                const int32_t C = params->parts[p].channels;
                const int32_t off = params->parts[p].input_offset;
                const int8_t *x = inputs[p];
                for (int32_t k = 0; k < K; ++k) {
                    const int32_t pos = origin + k;
                    if (pos < 0 || pos >= params->in_len) {
                        continue;
                    }
                    for (int32_t c = 0; c < C; ++c) {
                        acc += ((int32_t)x[pos * C + c] + off) * (int32_t)w[k * C + c];
                    }
                }
                w += K * C;
            }
            if (params->bias != NULL) {
                acc += params->bias[o];
            }
            acc = ditmos_mbqm(acc, params->multiplier[o], params->shift[o]);
            acc += params->output_offset;
            output[t * params->out_channels + o] =
                (int8_t)ditmos_clamp(acc, params->act_min, params->act_max);
        }
    }
}
