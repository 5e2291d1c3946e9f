/* dtm_softmax_s8 (Cortex-M7): same contract and bytes as ref/softmax_s8.c.
 *
 * TFLM evaluates the fixed-point exp of every input twice (once for the sum,
 * once for its output); here each row's exps are kept from the first pass
 * (rows of up to SOFTMAX_CACHE values, longer rows recompute like the
 * reference), the leading-zero count is one CLZ, and gemmlowp's
 * SaturatingRoundingDoublingHighMul is one rounding 64-bit shift:
 * trunc((ab + nudge) / 2^31) with nudge = 2^30 (ab >= 0) or 1 - 2^30 (ab < 0)
 * equals floor((ab + 2^30) / 2^31) for every product (for ab < 0, truncation
 * is ceil, and ceil(n / d) = floor((n + d - 1) / d)). */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"

static inline int32_t cm7_softmax_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + (INT64_C(1) << 30)) >> 31);
}
#define DITMOS_SOFTMAX_SRDHM cm7_softmax_srdhm
#include "ditmos_kernel_softmax.h"

#define SOFTMAX_CACHE 64

void dtm_softmax_s8(const dtm_softmax_s8_params_t *params, const int8_t *input,
                int8_t *output)
{
    const int32_t depth = params->depth;
    const int32_t left = params->input_left_shift, mult = params->input_multiplier;
    const int cached = depth <= SOFTMAX_CACHE;
    int32_t exps[SOFTMAX_CACHE];
    if (depth <= 0) {
        return;
    }
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
            int32_t e = 0;
            if (diff >= params->diff_min) {
                e = ditmos_softmax_exp(diff, left, mult);
                sum_of_exps += ditmos_rdbpot(e, 12);
            }
            if (cached) {
                exps[c] = e;
            }
        }
        /* sum_of_exps > 0: the maximum itself contributes exp(0) */
        const int32_t headroom_plus_one = (int32_t)__builtin_clz((uint32_t)sum_of_exps);
        const int32_t num_bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (UINT32_C(1) << 31));
        const int32_t shifted_scale = ditmos_one_over_one_plus_x(shifted_sum_minus_one);
        const int32_t exponent = num_bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_v;
            if (diff >= params->diff_min) {
                const int32_t e = cached ? exps[c] : ditmos_softmax_exp(diff, left, mult);
                const int32_t unsat = ditmos_rdbpot(cm7_softmax_srdhm(shifted_scale, e), exponent);
                y[c] = (int8_t)ditmos_clamp(unsat - 128, INT8_MIN, INT8_MAX);
            } else {
                y[c] = INT8_MIN;
            }
        }
    }
}
