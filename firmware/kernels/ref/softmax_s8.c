/* dtm_softmax_s8 (reference): TFLM int8 -> int8 SOFTMAX, bit-exact.
 *
 * TFLM's int8 softmax uses gemmlowp's fixed-point arithmetic: differences to
 * the row maximum are scaled to Q5.26, exp() is evaluated on [-1/4, 0) with a
 * 4th-order polynomial around -1/8 and a barrel shifter of exp(-2^k)
 * constants, the sum of exponentials (Q12.19) is inverted by Newton-Raphson,
 * and the result is scaled to the output's 1/256 step. */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"
#include "ditmos_kernel_softmax.h"

void dtm_softmax_s8(const dtm_softmax_s8_params_t *params, const int8_t *input,
                int8_t *output)
{
    const int32_t depth = params->depth;
    for (int32_t r = 0; r < params->rows; ++r) {
        const int8_t *x = input + r * depth;
        int8_t *y = output + r * depth;
        int32_t max_v = INT8_MIN;
        for (int32_t c = 0; c < depth; ++c) {
            if (x[c] > max_v) {
                max_v = x[c];
            }
        }
        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_v;
            if (diff >= params->diff_min) {
                sum_of_exps += ditmos_rdbpot(
                    ditmos_softmax_exp(diff, params->input_left_shift, params->input_multiplier), 12);
            }
        }
        const int32_t headroom_plus_one = ditmos_clz32((uint32_t)sum_of_exps);
        const int32_t num_bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (UINT32_C(1) << 31));
        const int32_t shifted_scale = ditmos_one_over_one_plus_x(shifted_sum_minus_one);
        const int32_t exponent = num_bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_v;
            if (diff >= params->diff_min) {
                const int32_t e =
                    ditmos_softmax_exp(diff, params->input_left_shift, params->input_multiplier);
                const int32_t unsat = ditmos_rdbpot(ditmos_srdhm(shifted_scale, e), exponent);
                y[c] = (int8_t)ditmos_clamp(unsat - 128, INT8_MIN, INT8_MAX);
            } else {
                y[c] = INT8_MIN;
            }
        }
    }
}
