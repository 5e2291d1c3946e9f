/* Integer-only randomized smoothing: noise generator and vote loop.
 *
 * Bit-exact twin of ditmos/smoothing/noise.py (the specification):
 *   u(c)  = mix32(mix32(c ^ mix32(seed)) + mix32(seed ^ 0x9E3779B9)) >> 1
 *   r(c)  = #{j : thresholds[j] <= u(c)} - offset
 *   noisy = clamp(q + r, -128, 127)
 * Inference j of a window of `size` values uses counters (first + j) * size + e.
 * 32-bit integer operations only. */
#ifndef DITMOS_SMOOTH_H
#define DITMOS_SMOOTH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const uint32_t *thresholds; /* non-decreasing, last entry 2^31 */
    int32_t size;               /* number of thresholds, a power of two */
    int32_t offset;             /* noise values lie in [-offset, offset] */
    const uint16_t *guide;      /* NULL, or DITMOS_NOISE_GUIDE entries from
                                   ditmos_noise_guide(): a faster search, same values */
} ditmos_noise_table_t;

#define DITMOS_NOISE_GUIDE 256

/* guide[b] = #{j : thresholds[j] <= b * 2^23} for b < DITMOS_NOISE_GUIDE. */
void ditmos_noise_guide(const uint32_t *thresholds, int32_t size, uint16_t *guide);

/* The 32-bit mixer. */
uint32_t ditmos_mix32(uint32_t x);

/* out[e] = clamp(in[e] + r(counter0 + e), -128, 127) for e < size. */
void ditmos_noise_s8(const ditmos_noise_table_t *table, uint32_t seed, uint32_t counter0,
                     const int8_t *in, int8_t *out, int32_t size);

/* Classifies one int8 window; returns 0 on success. */
typedef int (*ditmos_classify_fn)(void *ctx, const int8_t *input, uint16_t *predicted);

/* Adds counts[c] += #{inferences j < n whose noisy window classify() maps to c}
 * for inferences first .. first + n - 1.  scratch holds `size` int8 values.
 * Returns 0, or the classifier's error, or -1 for a class >= num_classes. */
int ditmos_smooth_vote_s8(const ditmos_noise_table_t *table, uint32_t seed, uint32_t first,
                          uint32_t n, const int8_t *in, int8_t *scratch, int32_t size,
                          ditmos_classify_fn classify, void *ctx, uint32_t *counts,
                          int32_t num_classes);

/* The generated model smoothed (firmware/runtime/ditmos_smooth_model.c):
 * counts[DITMOS_NUM_CLASSES] of inferences first .. first + n - 1 on input.
 * Returns 0, -2 for a malformed table, or the model's error. */
int ditmos_smooth_counts(const int8_t *input, const uint32_t *thresholds, int32_t table_size,
                         int32_t offset, uint32_t seed, uint32_t first, uint32_t n,
                         uint32_t *counts);

#ifdef __cplusplus
}
#endif

#endif /* DITMOS_SMOOTH_H */
