/* dtm_requantize_s8 (reference): TFLM int8 -> int8 QUANTIZE. */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"

void dtm_requantize_s8(const dtm_requantize_s8_params_t *params,
                   const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < params->size; ++i) {
        const int32_t v = ditmos_mbqm((int32_t)input[i] - params->input_zero_point,
                                      params->multiplier, params->shift) +
                          params->output_zero_point;
        output[i] = (int8_t)ditmos_clamp(v, INT8_MIN, INT8_MAX);
    }
}
