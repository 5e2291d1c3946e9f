/* dtm_relu_s8 (reference): TFLM int8 RELU / RELU6 (requantise, then clamp). */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"

void dtm_relu_s8(const dtm_relu_s8_params_t *params, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < params->size; ++i) {
        const int32_t v = ditmos_mbqm((int32_t)input[i] - params->input_zero_point,
                                      params->multiplier, params->shift) +
                          params->output_zero_point;
        output[i] = (int8_t)ditmos_clamp(v, params->act_min, params->act_max);
    }
}
