/* dtm_add_s8 (reference): TFLM int8 ADD, element-wise, left shift 20. */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"

void dtm_add_s8(const dtm_add_s8_params_t *params, const int8_t *input1,
            const int8_t *input2, int8_t *output)
{
    for (int32_t i = 0; i < params->size; ++i) {
        const int32_t a = ((int32_t)input1[i] + params->input1_offset) * (1 << params->left_shift);
        const int32_t b = ((int32_t)input2[i] + params->input2_offset) * (1 << params->left_shift);
        const int32_t sa = ditmos_mbqm_smaller_than_one(a, params->input1_multiplier, params->input1_shift);
        const int32_t sb = ditmos_mbqm_smaller_than_one(b, params->input2_multiplier, params->input2_shift);
        const int32_t out = ditmos_mbqm_smaller_than_one(sa + sb, params->output_multiplier,
                                                         params->output_shift) +
                            params->output_offset;
        output[i] = (int8_t)ditmos_clamp(out, params->act_min, params->act_max);
    }
}
