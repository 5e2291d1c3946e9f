/* dtm_max_pool1d_s8 (host set, SSE4.1): the reference's clipped windows,
 * 16 or 8 channels per vector, the rest one by one. */
#include <immintrin.h>

#include "ditmos_kernel_requant.h"
#include "ditmos_kernels.h"

void dtm_max_pool1d_s8(const dtm_pool1d_s8_params_t *params,
                       const int8_t *input, int8_t *output)
{
    const int32_t C = params->channels;
    const __m128i lo = _mm_set1_epi8((char)ditmos_clamp(params->act_min, INT8_MIN, INT8_MAX));
    const __m128i hi = _mm_set1_epi8((char)ditmos_clamp(params->act_max, INT8_MIN, INT8_MAX));
    for (int32_t t = 0; t < params->out_len; ++t) {
        const int32_t origin = t * params->stride - params->pad;
        const int32_t k_start = origin < 0 ? -origin : 0;
        int32_t k_end = params->in_len - origin;
        if (k_end > params->pool_size) {
            k_end = params->pool_size;
        }
        int8_t *out = output + t * C;
        int32_t c = 0;
        for (; c + 16 <= C; c += 16) {
            __m128i m = _mm_set1_epi8(INT8_MIN);
            for (int32_t k = k_start; k < k_end; ++k) {
                m = _mm_max_epi8(m, _mm_loadu_si128((const __m128i *)(input + (origin + k) * C + c)));
            }
            _mm_storeu_si128((__m128i *)(out + c), _mm_min_epi8(_mm_max_epi8(m, lo), hi));
        }
        for (; c + 8 <= C; c += 8) {
            __m128i m = _mm_set1_epi8(INT8_MIN);
            for (int32_t k = k_start; k < k_end; ++k) {
                m = _mm_max_epi8(m, _mm_loadl_epi64((const __m128i *)(input + (origin + k) * C + c)));
            }
            _mm_storel_epi64((__m128i *)(out + c), _mm_min_epi8(_mm_max_epi8(m, lo), hi));
        }
        for (; c < C; ++c) {
            int32_t m = INT8_MIN;
            for (int32_t k = k_start; k < k_end; ++k) {
                const int32_t v = input[(origin + k) * C + c];
                m = v > m ? v : m;
            }
            out[c] = (int8_t)ditmos_clamp(m, params->act_min, params->act_max);
        }
    }
}
