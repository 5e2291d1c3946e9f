/* Integer noise and the vote loop of randomized smoothing (ditmos_smooth.h).
 * Part of the runtime rather than a kernel set: one version serves every
 * board (no Cortex-M7 twin), as the loop's cost is the inferences it calls. */
#include "ditmos_smooth.h"

uint32_t ditmos_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

void ditmos_noise_guide(const uint32_t *thresholds, int32_t size, uint16_t *guide)
{
    int32_t i = 0;
    for (int32_t b = 0; b < DITMOS_NOISE_GUIDE; ++b) {
        const uint32_t v = (uint32_t)b << 23;
        while (i < size && thresholds[i] <= v) {
            ++i;
        }
        guide[b] = (uint16_t)i;
    }
}

/* A host build may bring its own (vectorised) ditmos_noise_s8 instead:
 * firmware/tools/ditmos_smooth_avx2.c, same values. */
#ifndef DITMOS_NOISE_S8_EXTERNAL
void ditmos_noise_s8(const ditmos_noise_table_t *table, uint32_t seed, uint32_t counter0,
                     const int8_t *in, int8_t *out, int32_t size)
{
    const uint32_t k1 = ditmos_mix32(seed);
    const uint32_t k2 = ditmos_mix32(seed ^ 0x9E3779B9u);
    const uint32_t *t = table->thresholds;
    for (int32_t e = 0; e < size; ++e) {
        const uint32_t u = ditmos_mix32(ditmos_mix32((counter0 + (uint32_t)e) ^ k1) + k2) >> 1;
        /* #{j : t[j] <= u}; t[size-1] = 2^31 > u ends both searches. */
        int32_t i = 0;
        if (table->guide != 0) {
            /* every t[j] with j < guide[u >> 23] is <= (u >> 23) << 23 <= u */
            i = table->guide[u >> 23];
            while (t[i] <= u) {
                ++i;
            }
        } else {
            for (int32_t step = table->size >> 1; step > 0; step >>= 1) {
                if (t[i + step - 1] <= u) {
                    i += step;
                }
            }
        }
        int32_t v = (int32_t)in[e] + i - table->offset;
        v = v < -128 ? -128 : (v > 127 ? 127 : v);
        out[e] = (int8_t)v;
    }
}
#endif

int ditmos_smooth_vote_s8(const ditmos_noise_table_t *table, uint32_t seed, uint32_t first,
                          uint32_t n, const int8_t *in, int8_t *scratch, int32_t size,
                          ditmos_classify_fn classify, void *ctx, uint32_t *counts,
                          int32_t num_classes)
{
    for (uint32_t j = 0; j < n; ++j) {
        uint16_t predicted = 0;
        ditmos_noise_s8(table, seed, (first + j) * (uint32_t)size, in, scratch, size);
        const int err = classify(ctx, scratch, &predicted);
        if (err != 0) {
            return err;
        }
        if ((int32_t)predicted >= num_classes) {
            return -1;
        }
        counts[predicted] += 1u;
    }
    return 0;
}
