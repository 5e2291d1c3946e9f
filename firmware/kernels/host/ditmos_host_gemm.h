/*
 * Host-only (x86-64 AVX2) core of the "host" kernel set: the convolution and
 * fully-connected kernels of ditmos_kernels.h, bit-exact with the reference
 * kernels (firmware/kernels/ref/), for fast integer smoothing on a PC
 * (ditmos/smoothing/fast.py).  Never built into firmware.
 *
 * How the arithmetic stays exact:
 *  - every product (x + input_offset) * w is formed from int16 operands
 *    (|x + offset| <= 255, |w| <= 128) by VPMADDWD, which adds two such
 *    products into an int32 lane without saturation (|sum| <= 65280), and the
 *    int32 accumulator wraps exactly as the reference's int32 sum does;
 *  - taps outside [0, in_len) read an int16 copy of the input padded with 0
 *    (= the zero point plus its offset), so they add nothing, as the
 *    reference's skipped taps;
 *  - the requantisation is TFLM's double rounding (ditmos_mbqm) lane by lane:
 *    SaturatingRoundingDoublingHighMul by |a| * m in 64 bits (m >= 0, so the
 *    saturating case a == m == INT32_MIN cannot occur) with the sign put back,
 *    then RoundingDivideByPOT with per-lane variable shifts.
 *
 * Weights are re-laid out on first use of a parameter struct (the structs
 * are static const, so their address identifies a layer) into, per group of
 * 8 output channels and per part, int16 pairs (w[o][d], w[o][d+1]) for the 8
 * channels: one 256-bit register per pair of reduction steps.
 */
#ifndef DITMOS_HOST_GEMM_H
#define DITMOS_HOST_GEMM_H

#include <stdint.h>

#include "ditmos_kernels.h"

#define DTM_HOST_LANES 8

/* One layer as the core sees it: parts of [len][C_p] int8 inputs. */
typedef struct {
    int32_t num_parts;
    int32_t channels[DITMOS_CONV_MAX_PARTS];
    int32_t input_offset[DITMOS_CONV_MAX_PARTS];
    int32_t in_len, out_len, out_channels, kernel_size, stride, pad;
    const int8_t *weights; /* [out][part][kernel][C_p] */
    const int32_t *bias;   /* [out] or NULL */
    const int32_t *multiplier, *shift;
    int32_t per_channel;   /* 0: multiplier[0], shift[0] for every output */
    int32_t output_offset, act_min, act_max;
} dtm_host_layer_t;

/* Declares that `buffer` (size int8 values) holds `clean` plus a small
 * perturbation (the noisy window of randomized smoothing).  A single-part
 * convolution reading `buffer` may then compute its sums as those of `clean`
 * (computed once per clean window) plus those of the difference, in 8-bit
 * products: (noisy + off) w = (clean + off) w + (noisy - clean) w exactly.
 * It checks |noisy - clean| <= DTM_HOST_DELTA_MAX element by element on
 * every call and takes the ordinary path otherwise, so a stale or wrong
 * declaration costs time, never a different result. */
#define DTM_HOST_DELTA_MAX 31
void dtm_host_reference_input(const int8_t *buffer, const int8_t *clean, int32_t size);

/* How many layer calls took the difference path so far (for tests). */
uint64_t dtm_host_difference_calls(void);

/* Runs the layer; `key` identifies it (its static parameter struct). */
void dtm_host_conv(const void *key, const dtm_host_layer_t *layer,
                   const int8_t *const inputs[], int8_t *output);

#endif /* DITMOS_HOST_GEMM_H */
