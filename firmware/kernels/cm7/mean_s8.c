/* dtm_mean_s8 (Cortex-M7): same contract and bytes as ref/mean_s8.c.
 *
 * Four channels at a time: each step's word of four int8 values is added to
 * two registers of 16-bit lane sums (SXTAB16 and SXTAB16 ROR 8), flushed to
 * int32 every 255 steps (|sum| <= 255 * 128 < 2^15, so no lane overflows);
 * the channels left over (C % 4) come from one more group of four ending at
 * the last channel (overlapping the one before; only the new channels are
 * written), or, with fewer than 4 channels in all, are summed one by one.
 * Output and input must not overlap. */
#include "ditmos_kernels.h"
#include "ditmos_kernel_requant.h"
#include "ditmos_cm7_dsp.h"

#define MEAN_LANE_STEPS 255

static int8_t mean_out(int32_t sum, int32_t offset, int32_t multiplier, int32_t shift, int32_t zp)
{
    return (int8_t)ditmos_clamp(ditmos_mbqm(sum + offset, multiplier, shift) + zp, INT8_MIN, INT8_MAX);
}

void dtm_mean_s8(const dtm_mean_s8_params_t *params, const int8_t *input, int8_t *output)
{
    const int32_t T = params->in_len;
    const int32_t C = params->channels;
    const int32_t zp = params->output_zero_point;
    int32_t multiplier = params->multiplier;
    int32_t shift = params->shift;
    ditmos_mean_fold(T, &multiplier, &shift);
    const int32_t offset = -params->input_zero_point * T;
    int32_t c = 0;
    while (c + 4 <= C || (c < C && C >= 4)) {
        const int32_t g = c + 4 <= C ? c : C - 4; /* the last group may overlap */
        int32_t sum[4] = {0, 0, 0, 0};
        const int8_t *x = input + g;
        for (int32_t t = 0; t < T;) {
            const int32_t n = T - t < MEAN_LANE_STEPS ? T - t : MEAN_LANE_STEPS;
            uint32_t a02 = 0, a13 = 0;
            for (int32_t k = 0; k < n; ++k, x += C) {
                const uint32_t w = cm7_read4(x);
                a02 = cm7_sxtab16(a02, w);
                a13 = cm7_sxtab16_ror8(a13, w);
            }
            sum[0] += (int16_t)(a02 & 0xFFFFu);
            sum[2] += (int16_t)(a02 >> 16);
            sum[1] += (int16_t)(a13 & 0xFFFFu);
            sum[3] += (int16_t)(a13 >> 16);
            t += n;
        }
        for (int32_t j = c - g; j < 4; ++j) {
            output[g + j] = mean_out(sum[j], offset, multiplier, shift, zp);
        }
        c = g + 4;
    }
    for (; c < C; ++c) {
        int32_t sum = 0;
        const int8_t *x = input + c;
        for (int32_t t = 0; t < T; ++t, x += C) {
            sum += *x;
        }
        output[c] = mean_out(sum, offset, multiplier, shift, zp);
    }
}
