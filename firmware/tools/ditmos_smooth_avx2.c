/* Host-only (x86-64 AVX2) ditmos_noise_s8: the values of the portable
 * generator in firmware/runtime/ditmos_smooth.c, eight at a time.  Built with
 * that file compiled under -DDITMOS_NOISE_S8_EXTERNAL (ditmos/smoothing/fast.py),
 * so the vote loop and ditmos_smooth_counts are the device's own code.
 *
 * Per lane: u = mix32(mix32(c ^ k1) + k2) >> 1 with 32-bit multiplies, the
 * count i = #{j : t[j] <= u} by a binary search in registers over the
 * central thresholds (the rare groups reaching a tail take the portable
 * search), then in + i - offset saturated to int8 by the packs. */
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
        int32_t i = table->guide != 0 ? table->guide[u >> 23] : 0;
        while (t[i] <= u) {
            ++i;
        }
        int32_t v = (int32_t)in[e] + i - table->offset;
        v = v < -128 ? -128 : (v > 127 ? 127 : v);
        out[e] = (int8_t)v;
    }
}

#define WINDOW 32

/* The host kernel set's hint (firmware/kernels/host/ditmos_host_gemm.h):
 * `out` is `in` plus noise.  Weak: absent when only the noise is built. */
void dtm_host_reference_input(const int8_t *buffer, const int8_t *clean, int32_t size) __attribute__((weak));

void ditmos_noise_s8(const ditmos_noise_table_t *table, uint32_t seed, uint32_t counter0,
                     const int8_t *in, int8_t *out, int32_t size)
{
    const uint32_t k1 = ditmos_mix32(seed);
    const uint32_t k2 = ditmos_mix32(seed ^ 0x9E3779B9u);
    const uint32_t *t = table->thresholds;
    /* A branch-free binary search over the window a[w] = t[j0 + w] of 32
     * thresholds around the centre (entries past the table never <= u).  For
     * u with t[j0] <= u (or j0 = 0) and u < t[j0 + 31] (or no such entry),
     * #{j : t[j] <= u} = j0 + c, c = #{w < 31 : a[w] <= u} (t is
     * non-decreasing), found by steps 16, 8, 4, 2, 1 that read a[c + step - 1]
     * with in-register permutes.  A group of eight with any lane outside goes
     * to the portable search.  u < 2^31 and t[j] <= 2^31, so t[j] <= u is the
     * signed u > t[j] - 1. */
    int32_t j0 = table->offset - WINDOW / 2;
    j0 = j0 > table->size - WINDOW ? table->size - WINDOW : j0;
    j0 = j0 < 0 ? 0 : j0;
    int32_t a[WINDOW];
    for (int32_t w = 0; w < WINDOW; ++w) {
        a[w] = j0 + w < table->size ? (int32_t)(t[j0 + w] - 1u) : INT32_MAX;
    }
    const __m256i lower = _mm256_set1_epi32(j0 > 0 ? a[0] : -1);
    const __m256i upper = _mm256_set1_epi32(a[WINDOW - 1]);
    const __m256i a15 = _mm256_set1_epi32(a[15]), a7 = _mm256_set1_epi32(a[7]),
                  a23 = _mm256_set1_epi32(a[23]);
    const __m256i r4 = _mm256_setr_epi32(a[3], a[11], a[19], a[27], 0, 0, 0, 0);
    const __m256i r2 = _mm256_setr_epi32(a[1], a[5], a[9], a[13], a[17], a[21], a[25], a[29]);
    const __m256i r1lo = _mm256_setr_epi32(a[0], a[2], a[4], a[6], a[8], a[10], a[12], a[14]);
    const __m256i r1hi = _mm256_setr_epi32(a[16], a[18], a[20], a[22], a[24], a[26], a[28], a[30]);
    const __m256i vk1 = _mm256_set1_epi32((int32_t)k1), vk2 = _mm256_set1_epi32((int32_t)k2);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i base = _mm256_set1_epi32(j0 - table->offset);
    const __m256i s16 = _mm256_set1_epi32(16), s8 = _mm256_set1_epi32(8), s4 = _mm256_set1_epi32(4),
                  s2 = _mm256_set1_epi32(2), s1 = _mm256_set1_epi32(1);
    int32_t e = 0;
    for (; e + 8 <= size; e += 8) {
        const __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(counter0 + (uint32_t)e)), lane);
        const __m256i u = _mm256_srli_epi32(mix8(_mm256_add_epi32(mix8(_mm256_xor_si256(c0, vk1)), vk2)), 1);
        /* outside: u < t[j0] or u >= t[j0 + 31] */
        const __m256i outside = _mm256_or_si256(_mm256_cmpgt_epi32(u, upper),
                                                _mm256_xor_si256(_mm256_cmpgt_epi32(u, lower),
                                                                 _mm256_set1_epi32(-1)));
        if (!_mm256_testz_si256(outside, outside)) {
            noise_scalar(table, k1, k2, counter0, in, out, e, e + 8);
            continue;
        }
        const __m256i m16 = _mm256_cmpgt_epi32(u, a15);
        __m256i c = _mm256_and_si256(m16, s16);
        c = _mm256_add_epi32(c, _mm256_and_si256(_mm256_cmpgt_epi32(u, _mm256_blendv_epi8(a7, a23, m16)), s8));
        c = _mm256_add_epi32(c, _mm256_and_si256(
                                    _mm256_cmpgt_epi32(u, _mm256_permutevar8x32_epi32(r4, _mm256_srli_epi32(c, 3))),
                                    s4));
        c = _mm256_add_epi32(c, _mm256_and_si256(
                                    _mm256_cmpgt_epi32(u, _mm256_permutevar8x32_epi32(r2, _mm256_srli_epi32(c, 2))),
                                    s2));
        const __m256i i1 = _mm256_srli_epi32(c, 1);
        const __m256i v1 = _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(r1lo, i1),
                                              _mm256_permutevar8x32_epi32(r1hi, i1), m16);
        c = _mm256_add_epi32(c, _mm256_and_si256(_mm256_cmpgt_epi32(u, v1), s1));
        int64_t raw;
        memcpy(&raw, in + e, sizeof(raw));
        const __m256i x = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(raw));
        const __m256i v = _mm256_add_epi32(_mm256_add_epi32(x, c), base);
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(v, v), 0x08);
        const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_castsi256_si128(p));
        _mm_storel_epi64((__m128i *)(out + e), b);
    }
    noise_scalar(table, k1, k2, counter0, in, out, e, size);
    if (dtm_host_reference_input != 0) {
        dtm_host_reference_input(out, in, size);
    }
}
