/*
 * ditmos int8 kernels: the public API shared by the reference kernels
 * (firmware/kernels/ref/) and their Cortex-M7 twins (firmware/kernels/cm7/).
 *
 * Every kernel is bit-exact with the TensorFlow Lite Micro reference kernel
 * of the same op (int8 activations, int8 weights, int32 bias, TFLM's
 * double-rounding MultiplyByQuantizedMultiplier).  See
 * firmware/kernels/README.md for layouts and how the generator fills the
 * parameter structs.
 *
 * Conventions
 *  - Every public symbol starts with dtm_ (functions, parameter structs), so
 *    the kernels link beside CMSIS-NN or other kernel libraries.
 *  - Activations are 1-D feature maps stored time-major, [T][C] (NWC with
 *    N = 1, the layout TFLite uses).  Flat vectors are [N].
 *  - Offsets follow TFLM: input_offset = -input_zero_point,
 *    output_offset = +output_zero_point.
 *  - multiplier/shift pairs are TFLM's QuantizeMultiplier() output:
 *    multiplier in [2^30, 2^31) (or 0), shift > 0 is a left shift.
 *  - act_min/act_max are the quantised activation bounds (fused ReLU/ReLU6
 *    or the full int8 range [-128, 127]).
 *  - Parameter structs hold only compile-time constants (shapes,
 *    quantisation, const weights), so the generator can emit them `static
 *    const` in flash.  Activation pointers are passed as arguments.
 *  - No kernel allocates memory.  No kernel needs scratch memory; should one
 *    ever need it, a `dtm_<op>_s8_scratch_size()` function is declared beside it.
 *  - Input and output buffers must not overlap, except for dtm_requantize_s8,
 *    dtm_relu_s8 and dtm_add_s8, which work in place (output == input is allowed).
 */
#ifndef DITMOS_KERNELS_H
#define DITMOS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: every public symbol carries the dtm_ prefix; dtm_concat_s8 added. */
#define DITMOS_KERNELS_API_VERSION 2

/* Maximum number of channel-concatenated parts a dtm_conv1d_s8 input may have. */
#define DITMOS_CONV_MAX_PARTS 4

/* ------------------------------------------------------------------------ */
/* dtm_conv1d_s8: 1-D convolution (TFLM CONV_2D with H = 1), dilation 1.         */
/*                                                                          */
/* The input is the channel-concatenation [part 0 ; part 1 ; ...] of up to  */
/* DITMOS_CONV_MAX_PARTS feature maps of the same length in_len; the        */
/* concatenated buffer is never built: each part is read from its own       */
/* buffer and all parts accumulate into one int32 accumulator per output.   */
/* A plain convolution is simply num_parts = 1.                             */
/*                                                                          */
/* out[t][o] = clamp(MBQM(bias[o] + sum_p sum_k sum_c                        */
/*                 (in_p[t*stride - pad + k][c] + part[p].input_offset)     */
/*                 * w[o][p][k][c], multiplier[o], shift[o])                */
/*                 + output_offset, act_min, act_max)                       */
/* Taps outside [0, in_len) are skipped (TFLM's zero-point padding).        */
/*                                                                          */
/* Weight layout "part-major": [out_channels][part][kernel_size][part.channels] */
/* For num_parts = 1 this is exactly TFLite's [O][1][K][I] filter tensor;   */
/* for several parts the generator slices TFLite's [O][K][I_total] along    */
/* the channel axis and stores each part's [K][C_p] block contiguously.     */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t channels;      /* channels of this part (C_p >= 1) */
    int32_t input_offset;  /* -zero_point of this part */
} dtm_conv1d_s8_part_t;

typedef struct {
    int32_t num_parts;     /* 1 .. DITMOS_CONV_MAX_PARTS */
    dtm_conv1d_s8_part_t parts[DITMOS_CONV_MAX_PARTS];
    int32_t in_len;        /* input time steps (same for every part) */
    int32_t out_len;       /* output time steps */
    int32_t out_channels;
    int32_t kernel_size;
    int32_t stride;        /* >= 1 */
    int32_t pad;           /* taps before t = 0 (TFLite's padding.height / width); 0 for VALID */
    const int8_t *weights; /* part-major, see above */
    const int32_t *bias;   /* [out_channels], or NULL for no bias */
    const int32_t *multiplier; /* [out_channels] (per-channel requantisation) */
    const int32_t *shift;      /* [out_channels] */
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} dtm_conv1d_s8_params_t;

/* inputs[p] points at part p's [in_len][parts[p].channels] buffer;
 * output is [out_len][out_channels]. */
void dtm_conv1d_s8(const dtm_conv1d_s8_params_t *params,
               const int8_t *const inputs[], int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_conv1d_packed_s8: the same operation as dtm_conv1d_s8 (and, with in_len =    */
/* out_len = batches, kernel_size = 1, as dtm_fully_connected_s8), reading one  */
/* constant stream re-laid out offline by the generator                     */
/* (ditmos/codegen/variants.py).  Cortex-M7 set only: the generator emits   */
/* it for kernels = cm7 when the layer qualifies.                           */
/*                                                                          */
/* Output channels go in groups of 4; when 1 or 2 channels are left over   */
/* they form one last group of 2, when 3 are left over the last group of 4  */
/* is padded (padded channels are computed but never stored).  Per part, a  */
/* window of D_p = kernel_size * C_p bytes (D_p >= 4) is read as            */
/* n_p = ceil(D_p / 4)                                                      */
/* little-endian words: a head word at byte 0, then words at bytes          */
/* head_p + 4i (head_p = D_p - 4 (n_p - 1), 1..4); the head word's weights  */
/* are zero where it overlaps the next word, so no byte is counted twice    */
/* and nothing outside the window is read.                                  */
/* stream: int32 words, per group of g = 4 (or 2) output channels:         */
/*   bias2[g]   2 (bias + sum_p input_offset_p * sum(w of part p))          */
/*   per part, per word: the g channels' (2w[d], 2w[d+2]) pairs, then      */
/*              their (2w[d+1], 2w[d+3]) pairs, int16 halves (lane 0 low):  */
/*              SMLAD-ready against SXTB16 / SXTB16 ROR 8 of the input word */
/*   rq[g][3]   {hb, multiplier, e} with e = -shift >= 1, multiplier in     */
/*              (2^30, 2^31), hb = 2^(e-1) + output_offset * 2^e.           */
/* The accumulator is 2 acc (the generator proves |acc| < 2^30), so         */
/* SMMLAR(2 acc, multiplier, hb) = SaturatingRoundingDoublingHighMul + hb,  */
/* and out = (that - [acc < 0]) >> e is TFLM's RoundingDivideByPOT plus the */
/* output offset, exactly.  Windows reaching into SAME padding are copied   */
/* to a stack buffer (DITMOS_PACKED_EDGE_BYTES) filled with the zero point. */
/* ------------------------------------------------------------------------ */
#define DITMOS_PACKED_GROUP 4
#define DITMOS_PACKED_EDGE_BYTES 256

typedef struct {
    int32_t num_parts;                            /* 1 .. DITMOS_CONV_MAX_PARTS */
    int32_t channels[DITMOS_CONV_MAX_PARTS];      /* C_p */
    int32_t head[DITMOS_CONV_MAX_PARTS];          /* head_p, 1..4 */
    int32_t zero_point[DITMOS_CONV_MAX_PARTS];    /* padding value of part p */
    int32_t in_len;
    int32_t out_len;
    int32_t out_channels;
    int32_t kernel_size;
    int32_t stride;
    int32_t pad;
    int32_t act_min;
    int32_t act_max;
    const int32_t *stream;
} dtm_conv1d_packed_s8_params_t;

void dtm_conv1d_packed_s8(const dtm_conv1d_packed_s8_params_t *params,
                      const int8_t *const inputs[], int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_depthwise_conv1d_s8: TFLM DEPTHWISE_CONV_2D with H = 1, dilation 1.       */
/* out channel o = c * depth_multiplier + m reads input channel c.          */
/* Weights: TFLite's [1][kernel_size][in_channels * depth_multiplier],      */
/* i.e. [K][C_out].                                                          */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t in_len;
    int32_t in_channels;
    int32_t depth_multiplier;  /* out_channels = in_channels * depth_multiplier */
    int32_t out_len;
    int32_t kernel_size;
    int32_t stride;
    int32_t pad;
    int32_t input_offset;
    const int8_t *weights;     /* [kernel_size][out_channels] */
    const int32_t *bias;       /* [out_channels] or NULL */
    const int32_t *multiplier; /* [out_channels] */
    const int32_t *shift;      /* [out_channels] */
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} dtm_depthwise_conv1d_s8_params_t;

void dtm_depthwise_conv1d_s8(const dtm_depthwise_conv1d_s8_params_t *params,
                         const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_fully_connected_s8: TFLM FULLY_CONNECTED (int8, weights zero point 0).    */
/* out[b][o] = clamp(MBQM(bias[o] + sum_i (in[b][i] + input_offset) * w[o][i],*/
/*                        multiplier[q], shift[q]) + output_offset)          */
/* with q = o when per_channel, else q = 0.                                  */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t batches;       /* rows of the input (1 for a flat vector) */
    int32_t in_features;
    int32_t out_features;
    int32_t input_offset;
    const int8_t *weights; /* [out_features][in_features] (TFLite layout) */
    const int32_t *bias;   /* [out_features] or NULL */
    int32_t per_channel;   /* 0: multiplier[0]/shift[0] for all outputs */
    const int32_t *multiplier; /* [1] or [out_features] */
    const int32_t *shift;      /* [1] or [out_features] */
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} dtm_fully_connected_s8_params_t;

void dtm_fully_connected_s8(const dtm_fully_connected_s8_params_t *params,
                        const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* Pooling over time (TFLM MAX_POOL_2D / AVERAGE_POOL_2D with H = 1).        */
/* Input and output share scale and zero point (TFLite requires it).         */
/* Windows are clipped to [0, in_len); average divides by the number of      */
/* valid taps with TFLM's rounding (half away from zero).                    */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t in_len;
    int32_t channels;
    int32_t out_len;
    int32_t pool_size;
    int32_t stride;
    int32_t pad;           /* 0 for VALID */
    int32_t act_min;
    int32_t act_max;
} dtm_pool1d_s8_params_t;

void dtm_max_pool1d_s8(const dtm_pool1d_s8_params_t *params,
                   const int8_t *input, int8_t *output);
void dtm_avg_pool1d_s8(const dtm_pool1d_s8_params_t *params,
                   const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_mean_s8: TFLM MEAN over the time axis of a [T][C] map -> [C].             */
/* multiplier/shift = QuantizeMultiplier(in_scale / out_scale), also when    */
/* the scales are equal; the kernel folds 1/T in exactly as TFLM's           */
/* QuantizedMeanOrSum does (the int8 path the pinned TFLM always takes).     */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t in_len;
    int32_t channels;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier;
    int32_t shift;
} dtm_mean_s8_params_t;

void dtm_mean_s8(const dtm_mean_s8_params_t *params, const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_add_s8: TFLM int8 ADD (same shapes, no broadcast), left_shift = 20.       */
/* With s_max2 = 2 * max(s1, s2), QuantizeMultiplierSmallerThanOneExp of     */
/* s1 / s_max2, s2 / s_max2 and s_max2 / (2^left_shift * s_out).             */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t size;            /* elements */
    int32_t left_shift;      /* 20 for int8 */
    int32_t input1_offset;
    int32_t input1_multiplier;
    int32_t input1_shift;    /* <= 0 */
    int32_t input2_offset;
    int32_t input2_multiplier;
    int32_t input2_shift;    /* <= 0 */
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;    /* <= 0 */
    int32_t act_min;
    int32_t act_max;
} dtm_add_s8_params_t;

void dtm_add_s8(const dtm_add_s8_params_t *params, const int8_t *input1,
            const int8_t *input2, int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_requantize_s8: TFLM QUANTIZE int8 -> int8.                                */
/* out = clamp(MBQM(in - input_zero_point, multiplier, shift)                */
/*             + output_zero_point, -128, 127),                             */
/* multiplier/shift = QuantizeMultiplier(in_scale / out_scale).              */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier;
    int32_t shift;
} dtm_requantize_s8_params_t;

void dtm_requantize_s8(const dtm_requantize_s8_params_t *params,
                   const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_requantize_lut_s8: dtm_requantize_s8 through a 256-byte table computed by the */
/* generator (ditmos/codegen/variants.py): out = table[(uint8_t)in].        */
/* Cortex-M7 set only; output == input is allowed.                          */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t size;
    const int8_t *table;   /* [256], indexed by the input byte as unsigned */
} dtm_requantize_lut_s8_params_t;

void dtm_requantize_lut_s8(const dtm_requantize_lut_s8_params_t *params,
                       const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_relu_s8: TFLM int8 RELU / RELU6 as a standalone op (not fused).          */
/* out = clamp(MBQM(in - input_zero_point, multiplier, shift)               */
/*             + output_zero_point, act_min, act_max),                      */
/* multiplier/shift = QuantizeMultiplier(in_scale / out_scale); act_min/max */
/* are the ReLU (ReLU6) bounds on the output scale.  Works in place.        */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier;
    int32_t shift;
    int32_t act_min;
    int32_t act_max;
} dtm_relu_s8_params_t;

void dtm_relu_s8(const dtm_relu_s8_params_t *params, const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_softmax_s8: TFLM int8 -> int8 SOFTMAX over the last axis (gemmlowp        */
/* fixed-point exp and reciprocal, bit-exact).  The generator computes, as   */
/* TFLM's PreprocessSoftmaxScaling with kScaledDiffIntegerBits = 5:          */
/* input_multiplier, input_left_shift and diff_min (= -CalculateInputRadius(5, */
/* input_left_shift, 31)).  The output is scale 1/256, zero point -128.     */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t rows;
    int32_t depth;
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} dtm_softmax_s8_params_t;

void dtm_softmax_s8(const dtm_softmax_s8_params_t *params, const int8_t *input,
                int8_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_argmax_s8: TFLM ARG_MAX over the last axis; ties go to the lowest index.  */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t rows;
    int32_t depth;
} dtm_argmax_s8_params_t;

void dtm_argmax_s8(const dtm_argmax_s8_params_t *params, const int8_t *input,
               int32_t *output);

/* ------------------------------------------------------------------------ */
/* dtm_concat_s8: channel concatenation of [rows][channels[p]] parts into     */
/* [rows][sum channels] (TFLM int8 CONCATENATION on the last axis, which     */
/* copies bytes: every part has the output's scale and zero point).          */
/* ------------------------------------------------------------------------ */
typedef struct {
    int32_t rows;
    int32_t num_parts;
    const int32_t *channels;  /* [num_parts] */
} dtm_concat_s8_params_t;

/* parts[p] points at part p's [rows][channels[p]] buffer. */
void dtm_concat_s8(const dtm_concat_s8_params_t *params,
                   const int8_t *const parts[], int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* DITMOS_KERNELS_H */
