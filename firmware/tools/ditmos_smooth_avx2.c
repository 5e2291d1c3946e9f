/* Host-only (x86-64 AVX2) ditmos_noise_s8: the values of the portable
 * generator in firmware/runtime/ditmos_smooth.c, eight at a time.  Built with
 * that file compiled under -DDITMOS_NOISE_S8_EXTERNAL (ditmos/smoothing/fast.py),
 * so the vote loop and ditmos_smooth_counts are the device's own code.
 *
 * Per lane: u = mix32(mix32(c ^ k1) + k2) >> 1 with 32-bit multiplies; the
 * search starts at guide[u >> 23] (#{j : t[j] <= (u >> 23) << 23}) and steps
 * while t[i] <= u, as the portable search does, so i = #{j : t[j] <= u};
 * then in + i - offset saturated to int8 by the packs. */
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

void ditmos_noise_s8(const ditmos_noise_table_t *table, uint32_t seed, uint32_t counter0,
                     const int8_t *in, int8_t *out, int32_t size)
{
    const uint32_t k1 = ditmos_mix32(seed);
    const uint32_t k2 = ditmos_mix32(seed ^ 0x9E3779B9u);
    /* the guide as int32 for the gathers (the table's own, or built here) */
    uint16_t own[DITMOS_NOISE_GUIDE];
    const uint16_t *g16 = table->guide;
    if (g16 == 0) {
        ditmos_noise_guide(table->thresholds, table->size, own);
        g16 = own;
    }
    int32_t guide[DITMOS_NOISE_GUIDE];
    for (int32_t b = 0; b < DITMOS_NOISE_GUIDE; ++b) {
        guide[b] = g16[b];
    }
    const int *thr = (const int *)table->thresholds;
    const __m256i vk1 = _mm256_set1_epi32((int32_t)k1), vk2 = _mm256_set1_epi32((int32_t)k2);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i off = _mm256_set1_epi32(table->offset);
    int32_t e = 0;
    for (; e + 8 <= size; e += 8) {
        const __m256i c = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(counter0 + (uint32_t)e)), lane);
        const __m256i u = _mm256_srli_epi32(mix8(_mm256_add_epi32(mix8(_mm256_xor_si256(c, vk1)), vk2)), 1);
        __m256i i = _mm256_i32gather_epi32(guide, _mm256_srli_epi32(u, 23), 4);
        for (;;) {
            /* t[i] <= u, unsigned (t[i] may be 2^31) */
            const __m256i t = _mm256_i32gather_epi32(thr, i, 4);
            const __m256i le = _mm256_cmpeq_epi32(_mm256_max_epu32(t, u), u);
            if (_mm256_testz_si256(le, le)) {
                break;
            }
            i = _mm256_sub_epi32(i, le);
        }
        int64_t raw;
        memcpy(&raw, in + e, sizeof(raw));
        const __m256i x = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(raw));
        const __m256i v = _mm256_sub_epi32(_mm256_add_epi32(x, i), off);
        const __m256i a = _mm256_permute4x64_epi64(_mm256_packs_epi32(v, v), 0x08);
        const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(a), _mm256_castsi256_si128(a));
        _mm_storel_epi64((__m128i *)(out + e), b);
    }
    noise_scalar(table, k1, k2, counter0, in, out, e, size);
}
