/* fully_connected_s8 (Cortex-M7): same contract and bytes as
 * ref/fully_connected_s8.c; four output rows share each input load. */
#include "ditmos_kernels.h"
#include "ditmos_cm7_dot.h"

void fully_connected_s8(const fully_connected_s8_params_t *params,
                        const int8_t *input, int8_t *output)
{
    const fully_connected_s8_params_t *p = params;
    const int32_t N = p->in_features, O = p->out_features;
    const int32_t out_off = p->output_offset, act_min = p->act_min, act_max = p->act_max;
    const cm7_rq_t q_tensor = cm7_rq_make(p->multiplier[0], p->shift[0]);
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * N;
        int8_t *y = output + b * O;
        int32_t o = 0;
        for (; o + 4 <= O; o += 4) {
            int32_t acc[4] = {0, 0, 0, 0};
            if (p->bias != NULL) {
                acc[0] = p->bias[o];
                acc[1] = p->bias[o + 1];
                acc[2] = p->bias[o + 2];
                acc[3] = p->bias[o + 3];
            }
            cm7_dot_1x4(x, p->weights + o * N, N, N, p->input_offset, acc);
            if (p->per_channel) {
                for (int32_t j = 0; j < 4; ++j) {
                    const cm7_rq_t rq = cm7_rq_make(p->multiplier[o + j], p->shift[o + j]);
                    y[o + j] = cm7_requant_out(acc[j], &rq, out_off, act_min, act_max);
                }
            } else {
                for (int32_t j = 0; j < 4; ++j) {
                    y[o + j] = cm7_requant_out(acc[j], &q_tensor, out_off, act_min, act_max);
                }
            }
        }
        for (; o < O; o += 2) {
            /* leftover rows in pairs (a lone last row is computed twice) */
            const int32_t o1 = o + 1 < O ? o + 1 : o;
            int32_t acc[2] = {p->bias ? p->bias[o] : 0, p->bias ? p->bias[o1] : 0};
            cm7_dot_1x2(x, p->weights + o * N, p->weights + o1 * N, N, p->input_offset, acc);
            for (int32_t j = 0; j < 2 && o + j < O; ++j) {
                const int32_t q = p->per_channel ? o + j : 0;
                const cm7_rq_t rq = cm7_rq_make(p->multiplier[q], p->shift[q]);
                y[o + j] = cm7_requant_out(acc[j], &rq, out_off, act_min, act_max);
            }
        }
    }
}
