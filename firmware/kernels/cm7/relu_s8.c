/* dtm_relu_s8 (Cortex-M7): same contract and bytes as ref/relu_s8.c, with the
 * shift split once and the single-SMLAL rounding of ditmos_cm7_dsp.h; the
 * ReLU bounds are applied after an SSAT to the int8 range (they lie inside it). */
#include "ditmos_kernels.h"
#include "ditmos_cm7_dsp.h"

void dtm_relu_s8(const dtm_relu_s8_params_t *params, const int8_t *input, int8_t *output)
{
    const cm7_rq_t q = cm7_rq_make(params->multiplier, params->shift);
    const int32_t zin = params->input_zero_point, zout = params->output_zero_point;
    const int32_t lo = params->act_min, hi = params->act_max;
    const int32_t n = params->size;
    for (int32_t i = 0; i < n; ++i) {
        int32_t v = cm7_ssat8(cm7_mbqm((int32_t)input[i] - zin, &q) + zout);
        v = v < lo ? lo : v;
        output[i] = (int8_t)(v > hi ? hi : v);
    }
}
