/* requantize_s8 (Cortex-M7): same contract and bytes as ref/requantize_s8.c,
 * with the shift split once and the single-SMLAL rounding of ditmos_cm7_dsp.h. */
#include "ditmos_kernels.h"
#include "ditmos_cm7_dsp.h"

void requantize_s8(const requantize_s8_params_t *params,
                   const int8_t *input, int8_t *output)
{
    const cm7_rq_t q = cm7_rq_make(params->multiplier, params->shift);
    const int32_t zin = params->input_zero_point, zout = params->output_zero_point;
    for (int32_t i = 0; i < params->size; ++i) {
        int32_t v = cm7_mbqm((int32_t)input[i] - zin, &q) + zout;
        v = v < INT8_MIN ? INT8_MIN : v;
        output[i] = (int8_t)(v > INT8_MAX ? INT8_MAX : v);
    }
}
