/* dtm_requantize_s8 (Cortex-M7): same contract and bytes as ref/requantize_s8.c,
 * with the shift split once, the single-SMLAL rounding of ditmos_cm7_dsp.h
 * and an SSAT clamp. */
#include "ditmos_kernels.h"
#include "ditmos_cm7_dsp.h"

void dtm_requantize_s8(const dtm_requantize_s8_params_t *params,
                   const int8_t *input, int8_t *output)
{
    const cm7_rq_t q = cm7_rq_make(params->multiplier, params->shift);
    const int32_t zin = params->input_zero_point, zout = params->output_zero_point;
    const int32_t n = params->size;
    for (int32_t i = 0; i < n; ++i) {
        output[i] = (int8_t)cm7_ssat8(cm7_mbqm((int32_t)input[i] - zin, &q) + zout);
    }
}
