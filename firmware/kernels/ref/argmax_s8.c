/* dtm_argmax_s8 (reference): TFLM ARG_MAX over the last axis; first maximum wins. */
#include "ditmos_kernels.h"

void dtm_argmax_s8(const dtm_argmax_s8_params_t *params, const int8_t *input,
               int32_t *output)
{
    for (int32_t r = 0; r < params->rows; ++r) {
        const int8_t *x = input + r * params->depth;
        int32_t best = 0;
        for (int32_t d = 1; d < params->depth; ++d) {
            if (x[d] > x[best]) {
                best = d;
            }
        }
        output[r] = best;
    }
}
