/* Host-only (x86-64 AVX2) ditmos_noise_s8: the values of the portable
 * generator in firmware/runtime/ditmos_smooth.c, eight at a time.  Built with
 * that file compiled under -DDITMOS_NOISE_S8_EXTERNAL (ditmos/smoothing/fast.py),
 * so the vote loop and ditmos_smooth_counts are the device's own code.
 *
 * Per lane: u = mix32(mix32(c ^ k1) + k2) >> 1 with 32-bit multiplies, the
 * count i = #{j : t[j] <= u} by comparisons with the central thresholds
 * (the rare groups reaching a tail take the portable linear search), then
 * in + i - offset saturated to int8 by the packs. */
#ifndef __AVX2__
#error "ditmos_smooth_avx2.c needs AVX2 (-mavx2 or -march=native on an AVX2 CPU)"
#endif

#include <immintrin.h>
#include <string.h>

#include "ditmos_smooth.h"

static inline __m256i mix8(__m256i x)
{
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int32_t)0x7FEB352Du));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int32_t)0x846CA68Bu));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

static void noise_scalar(const ditmos_noise_table_t *table, uint32_t k1, uint32_t k2,
                         uint32_t counter0, const int8_t *in, int8_t *out, int32_t from,
                         int32_t size)
{
    const uint32_t *t = table->thresholds;
    for (int32_t e = from; e < size; ++e) {
        const uint32_t u = ditmos_mix32(ditmos_mix32((counter0 + (uint32_t)e) ^ k1) + k2) >> 1;
        int32_t i = 0;
        while (t[i] <= u) {
            ++i;
        }
        int32_t v = (int32_t)in[e] + i - table->offset;
        v = v < -128 ? -128 : (v > 127 ? 127 : v);
        out[e] = (int8_t)v;
    }
}

#define WINDOW 32

void ditmos_noise_s8(const ditmos_noise_table_t *table, uint32_t seed, uint32_t counter0,
                     const int8_t *in, int8_t *out, int32_t size)
{
    const uint32_t k1 = ditmos_mix32(seed);
    const uint32_t k2 = ditmos_mix32(seed ^ 0x9E3779B9u);
    const uint32_t *t = table->thresholds;
    /* The search over a window of W thresholds t[j0 .. j0 + W - 1] around the
     * centre, by comparisons: for u with t[j0] <= u < t[j0 + W] (bounds that
     * do not exist count as met), #{j : t[j] <= u} = j0 + #{w : t[j0 + w] <= u}
     * as t is non-decreasing.  A group of eight with any lane outside goes to
     * the portable search.  u < 2^31 and t[j] <= 2^31, so t[j] <= u is the
     * signed u > t[j] - 1. */
    const int32_t W = table->size < WINDOW ? table->size : WINDOW;
    int32_t j0 = table->offset - W / 2;
    j0 = j0 < 0 ? 0 : (j0 > table->size - W ? table->size - W : j0);
    __m256i tm1[WINDOW];
    for (int32_t w = 0; w < W; ++w) {
        tm1[w] = _mm256_set1_epi32((int32_t)(t[j0 + w] - 1u));
    }
    const __m256i lower = _mm256_set1_epi32(j0 > 0 ? (int32_t)(t[j0] - 1u) : -1);
    const __m256i upper = _mm256_set1_epi32(j0 + W < table->size ? (int32_t)(t[j0 + W] - 1u) : INT32_MAX);
    const __m256i vk1 = _mm256_set1_epi32((int32_t)k1), vk2 = _mm256_set1_epi32((int32_t)k2);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i base = _mm256_set1_epi32(j0 - table->offset);
    int32_t e = 0;
    for (; e + 8 <= size; e += 8) {
        const __m256i c = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(counter0 + (uint32_t)e)), lane);
        const __m256i u = _mm256_srli_epi32(mix8(_mm256_add_epi32(mix8(_mm256_xor_si256(c, vk1)), vk2)), 1);
        /* outside: u < t[j0] or u >= t[j0 + W] */
        const __m256i outside = _mm256_or_si256(_mm256_cmpgt_epi32(u, upper),
                                                _mm256_xor_si256(_mm256_cmpgt_epi32(u, lower),
                                                                 _mm256_set1_epi32(-1)));
        if (!_mm256_testz_si256(outside, outside)) {
            noise_scalar(table, k1, k2, counter0, in, out, e, e + 8);
            continue;
        }
        __m256i r = base;
        for (int32_t w = 0; w < W; ++w) {
            r = _mm256_sub_epi32(r, _mm256_cmpgt_epi32(u, tm1[w]));
        }
        int64_t raw;
        memcpy(&raw, in + e, sizeof(raw));
        const __m256i x = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(raw));
        const __m256i v = _mm256_add_epi32(x, r);
        const __m256i a = _mm256_permute4x64_epi64(_mm256_packs_epi32(v, v), 0x08);
        const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(a), _mm256_castsi256_si128(a));
        _mm_storel_epi64((__m128i *)(out + e), b);
    }
    noise_scalar(table, k1, k2, counter0, in, out, e, size);
}
