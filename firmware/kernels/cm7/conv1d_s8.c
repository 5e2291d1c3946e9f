/* dtm_conv1d_s8 (Cortex-M7): same contract and bytes as ref/conv1d_s8.c.
 *
 * Outputs whose window lies inside the input (no padding taps) are computed
 * two output channels x two time steps at a time: per part, the window
 * in_p[t*stride - pad .. +K][0..C_p) is one contiguous run of K*C_p bytes and
 * so is the part's weight block (part-major layout), so each output is a
 * plain dot product (ditmos_cm7_dot.h).  Edge outputs (windows reaching into
 * the padding) clip the window, which stays contiguous, and use a 1x2 core. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__ARM_FEATURE_DSP)
/* the assembly loops need every general register: never reserve r7 */
#pragma GCC optimize("omit-frame-pointer")
#endif
#include "ditmos_kernels.h"
#include "ditmos_cm7_dot.h"

/* Both output channels of an edge output: per part, only the taps inside
 * [0, in_len) -- still one contiguous run of input and of weights. */
static void edge_acc(const dtm_conv1d_s8_params_t *p, const int8_t *const inputs[], int32_t t,
                     const int8_t *w0, const int8_t *w1, int32_t acc[2])
{
    const int32_t origin = t * p->stride - p->pad;
    const int32_t k_lo = origin < 0 ? -origin : 0;
    int32_t k_hi = p->in_len - origin;
    if (k_hi > p->kernel_size) {
        k_hi = p->kernel_size;
    }
    for (int32_t q = 0; q < p->num_parts; ++q) {
        const int32_t C = p->parts[q].channels;
        if (k_hi > k_lo) {
            cm7_dot_1x2(inputs[q] + (origin + k_lo) * C, w0 + k_lo * C, w1 + k_lo * C,
                        (k_hi - k_lo) * C, p->parts[q].input_offset, acc);
        }
        w0 += p->kernel_size * C;
        w1 += p->kernel_size * C;
    }
}

static void edge_output(const dtm_conv1d_s8_params_t *p, const int8_t *const inputs[], int32_t t,
                        int32_t o, int32_t o1, const int8_t *w0, const int8_t *w1, int32_t b0,
                        int32_t b1, const cm7_rq_t *q0, const cm7_rq_t *q1, int8_t *output)
{
    int32_t acc[2] = {b0, b1};
    edge_acc(p, inputs, t, w0, w1, acc);
    int8_t *y = output + t * p->out_channels + o;
    y[0] = cm7_requant_out(acc[0], q0, p->output_offset, p->act_min, p->act_max);
    if (o1 != o) {
        y[1] = cm7_requant_out(acc[1], q1, p->output_offset, p->act_min, p->act_max);
    }
}

void dtm_conv1d_s8(const dtm_conv1d_s8_params_t *params,
               const int8_t *const inputs[], int8_t *output)
{
    const dtm_conv1d_s8_params_t *p = params;
    const int32_t K = p->kernel_size, S = p->stride, O = p->out_channels;
    const int32_t np = p->num_parts;
    int32_t len[DITMOS_CONV_MAX_PARTS], step[DITMOS_CONV_MAX_PARTS];
    const int8_t *x_first[DITMOS_CONV_MAX_PARTS];
    int32_t row = 0;
    /* fast range [t_lo, t_hi): t*S - pad >= 0 and t*S - pad + K <= in_len */
    int32_t t_lo = (p->pad + S - 1) / S;
    int32_t t_hi = p->in_len - K + p->pad >= 0 ? (p->in_len - K + p->pad) / S + 1 : 0;
    if (t_hi > p->out_len) {
        t_hi = p->out_len;
    }
    if (t_lo > t_hi) {
        t_lo = t_hi;
    }
    for (int32_t q = 0; q < np; ++q) {
        const int32_t C = p->parts[q].channels;
        len[q] = K * C;
        step[q] = S * C;
        x_first[q] = inputs[q] + (t_lo * S - p->pad) * C; /* window of t_lo */
        row += K * C;
    }
    const int32_t out_off = p->output_offset, act_min = p->act_min, act_max = p->act_max;
    const int32_t n_pairs = (t_hi - t_lo) / 2;
    const int full_range = act_min == INT8_MIN && act_max == INT8_MAX;
    for (int32_t o = 0; o < O; o += 2) {
        const int32_t o1 = o + 1 < O ? o + 1 : o; /* odd count: last pair computes o twice */
        const int8_t *w0 = p->weights + o * row, *w1 = p->weights + o1 * row;
        const int32_t b0 = p->bias ? p->bias[o] : 0, b1 = p->bias ? p->bias[o1] : 0;
        const cm7_rq_t q0 = cm7_rq_make(p->multiplier[o], p->shift[o]);
        const cm7_rq_t q1 = cm7_rq_make(p->multiplier[o1], p->shift[o1]);
        for (int32_t t = 0; t < t_lo; ++t) {
            edge_output(p, inputs, t, o, o1, w0, w1, b0, b1, &q0, &q1, output);
        }
        /* interior outputs: sum (x + off) * w = sum x * w + off * sum w */
        int32_t c0 = b0, c1 = b1;
        if (n_pairs > 0) {
            const int8_t *wp0 = w0, *wp1 = w1;
            for (int32_t q = 0; q < np; ++q) {
                c0 += p->parts[q].input_offset * cm7_sum_s8(wp0, len[q]);
                c1 += p->parts[q].input_offset * cm7_sum_s8(wp1, len[q]);
                wp0 += len[q];
                wp1 += len[q];
            }
        }
        int8_t *y = output + t_lo * O + o;
        for (int32_t i = 0; i < n_pairs; ++i) {
            int32_t acc[4] = {c0, c1, c0, c1};
            const int8_t *wp0 = w0, *wp1 = w1;
            for (int32_t q = 0; q < np; ++q) {
                const int8_t *x0 = x_first[q] + 2 * i * step[q];
                cm7_dot_2x2_raw(x0, x0 + step[q], wp0, wp1, len[q], acc);
                wp0 += len[q];
                wp1 += len[q];
            }
            if (full_range) {
                y[0] = cm7_requant_out_r(acc[0], &q0, out_off, act_min, act_max, 1);
                y[O] = cm7_requant_out_r(acc[2], &q0, out_off, act_min, act_max, 1);
                if (o1 != o) {
                    y[1] = cm7_requant_out_r(acc[1], &q1, out_off, act_min, act_max, 1);
                    y[O + 1] = cm7_requant_out_r(acc[3], &q1, out_off, act_min, act_max, 1);
                }
            } else {
                y[0] = cm7_requant_out(acc[0], &q0, out_off, act_min, act_max);
                y[O] = cm7_requant_out(acc[2], &q0, out_off, act_min, act_max);
                if (o1 != o) {
                    y[1] = cm7_requant_out(acc[1], &q1, out_off, act_min, act_max);
                    y[O + 1] = cm7_requant_out(acc[3], &q1, out_off, act_min, act_max);
                }
            }
            y += 2 * O;
        }
        for (int32_t t = t_lo + 2 * n_pairs; t < p->out_len; ++t) {
            edge_output(p, inputs, t, o, o1, w0, w1, b0, b1, &q0, &q1, output);
        }
    }
}
