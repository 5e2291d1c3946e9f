/* The packed int16 AVX2 core of the host kernel set (ditmos_host_gemm.h). */
#include "ditmos_host_gemm.h"

#ifndef __AVX2__
#error "the host kernel set needs AVX2 (-mavx2 or -march=native on an AVX2 CPU)"
#endif

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "ditmos_kernel_requant.h"

typedef struct {
    const void *key;
    dtm_host_layer_t layer;                 /* what was packed, compared on use */
    int8_t *weights;                        /* copies of the constants it was packed from */
    int32_t *consts;                        /* bias (or 0), multiplier, shift */
    int32_t groups;                         /* ceil(out_channels / 8) */
    int32_t pairs[DITMOS_CONV_MAX_PARTS];   /* ceil(kernel_size * C_p / 2) */
    int32_t group_words;                    /* int16 values per group */
    int16_t *w;                             /* [group][part][pair][8][2] */
    int32_t *bias, *mult, *lshift, *rshift; /* [groups * 8] */
    /* the difference path (one part only): */
    int32_t units;                          /* 4-tap units, a multiple of 2 */
    int8_t *w8;                             /* [group][unit][8][4] */
    int32_t *wsum;                          /* [groups * 8]: sum of w over all taps */
    int32_t *clean_acc;                     /* [out_len][groups * 8], bias included */
    uint64_t clean_version;                 /* ref_version clean_acc belongs to, 0 = none */
} packed_t;

static const int8_t *ref_buffer;
static int8_t *ref_clean;
static int32_t ref_size, ref_cap;
static uint64_t ref_version;
static uint8_t *dbuf;
static size_t dbuf_len;
static uint64_t difference_calls;

uint64_t dtm_host_difference_calls(void)
{
    return difference_calls;
}

static packed_t *cache;
static int32_t cache_len, cache_cap, cache_last;
static int16_t *xbuf[DITMOS_CONV_MAX_PARTS];
static size_t xbuf_len[DITMOS_CONV_MAX_PARTS];

static void *xmalloc(size_t n)
{
    void *p = aligned_alloc(32, (n + 31) & ~(size_t)31);
    if (p == NULL) {
        abort();
    }
    return p;
}

static size_t weight_count(const dtm_host_layer_t *l)
{
    size_t d = 0;
    for (int32_t p = 0; p < l->num_parts; ++p) {
        d += (size_t)(l->kernel_size * l->channels[p]);
    }
    return d * (size_t)l->out_channels;
}

static int32_t const_count(const dtm_host_layer_t *l)
{
    return l->out_channels + 2 * (l->per_channel ? l->out_channels : 1);
}

/* bias (0 when NULL), multiplier, shift, one after the other */
static void gather_consts(const dtm_host_layer_t *l, int32_t *dst)
{
    const int32_t nq = l->per_channel ? l->out_channels : 1;
    for (int32_t o = 0; o < l->out_channels; ++o) {
        dst[o] = l->bias != NULL ? l->bias[o] : 0;
    }
    memcpy(dst + l->out_channels, l->multiplier, (size_t)nq * sizeof(int32_t));
    memcpy(dst + l->out_channels + nq, l->shift, (size_t)nq * sizeof(int32_t));
}

/* Is the entry packed from exactly this layer (same shapes, same constants)?
 * The key is only a hint: a caller may reuse a parameter struct's memory. */
static int same_layer(const packed_t *pk, const dtm_host_layer_t *l)
{
    const dtm_host_layer_t *a = &pk->layer;
    if (a->num_parts != l->num_parts || a->in_len != l->in_len || a->out_len != l->out_len ||
        a->out_channels != l->out_channels || a->kernel_size != l->kernel_size ||
        a->stride != l->stride || a->pad != l->pad || a->per_channel != l->per_channel ||
        (a->bias == NULL) != (l->bias == NULL)) {
        return 0;
    }
    for (int32_t p = 0; p < l->num_parts; ++p) {
        if (a->channels[p] != l->channels[p] || a->input_offset[p] != l->input_offset[p]) {
            return 0;
        }
    }
    if (memcmp(pk->weights, l->weights, weight_count(l)) != 0) {
        return 0;
    }
    int32_t tmp[3 * 1024];
    const int32_t nc = const_count(l);
    if (nc <= 3 * 1024) {
        gather_consts(l, tmp);
        return memcmp(pk->consts, tmp, (size_t)nc * sizeof(int32_t)) == 0;
    }
    int32_t *big = xmalloc((size_t)nc * sizeof(int32_t));
    gather_consts(l, big);
    const int same = memcmp(pk->consts, big, (size_t)nc * sizeof(int32_t)) == 0;
    free(big);
    return same;
}

static void fill(packed_t *pk, const void *key, const dtm_host_layer_t *l)
{
    memset(pk, 0, sizeof(*pk));
    pk->key = key;
    pk->layer = *l;
    pk->weights = xmalloc(weight_count(l) + 1);
    memcpy(pk->weights, l->weights, weight_count(l));
    pk->consts = xmalloc((size_t)const_count(l) * sizeof(int32_t));
    gather_consts(l, pk->consts);
    pk->groups = (l->out_channels + DTM_HOST_LANES - 1) / DTM_HOST_LANES;
    int32_t total_pairs = 0, d_total = 0;
    for (int32_t p = 0; p < l->num_parts; ++p) {
        const int32_t D = l->kernel_size * l->channels[p];
        pk->pairs[p] = (D + 1) / 2;
        total_pairs += pk->pairs[p];
        d_total += D;
    }
    pk->group_words = total_pairs * 2 * DTM_HOST_LANES;
    const int32_t lanes = pk->groups * DTM_HOST_LANES;
    pk->w = xmalloc((size_t)pk->groups * (size_t)pk->group_words * sizeof(int16_t));
    pk->bias = xmalloc((size_t)lanes * sizeof(int32_t));
    pk->mult = xmalloc((size_t)lanes * sizeof(int32_t));
    pk->lshift = xmalloc((size_t)lanes * sizeof(int32_t));
    pk->rshift = xmalloc((size_t)lanes * sizeof(int32_t));
    for (int32_t g = 0; g < pk->groups; ++g) {
        int16_t *dst = pk->w + (size_t)g * (size_t)pk->group_words;
        int32_t part_start = 0;
        for (int32_t p = 0; p < l->num_parts; ++p) {
            const int32_t D = l->kernel_size * l->channels[p];
            for (int32_t j = 0; j < pk->pairs[p]; ++j) {
                for (int32_t lane = 0; lane < DTM_HOST_LANES; ++lane) {
                    const int32_t o = g * DTM_HOST_LANES + lane;
                    for (int32_t h = 0; h < 2; ++h) {
                        const int32_t d = 2 * j + h;
                        *dst++ = (o < l->out_channels && d < D)
                                     ? (int16_t)l->weights[(size_t)o * (size_t)d_total +
                                                           (size_t)(part_start + d)]
                                     : 0;
                    }
                }
            }
            part_start += D;
        }
    }
    if (l->num_parts == 1) {
        const int32_t D = d_total;
        pk->units = 2 * ((D + 7) / 8);
        pk->w8 = xmalloc((size_t)pk->groups * (size_t)pk->units * 32);
        pk->wsum = xmalloc((size_t)lanes * sizeof(int32_t));
        pk->clean_acc = xmalloc((size_t)l->out_len * (size_t)lanes * sizeof(int32_t));
        int8_t *dst = pk->w8;
        for (int32_t g = 0; g < pk->groups; ++g) {
            for (int32_t u = 0; u < pk->units; ++u) {
                for (int32_t lane = 0; lane < DTM_HOST_LANES; ++lane) {
                    const int32_t o = g * DTM_HOST_LANES + lane;
                    for (int32_t h = 0; h < 4; ++h) {
                        const int32_t d = 4 * u + h;
                        *dst++ = (o < l->out_channels && d < D) ? l->weights[(size_t)o * (size_t)D + (size_t)d] : 0;
                    }
                }
            }
        }
        for (int32_t o = 0; o < lanes; ++o) {
            int32_t sum = 0;
            for (int32_t d = 0; o < l->out_channels && d < D; ++d) {
                sum += l->weights[(size_t)o * (size_t)D + (size_t)d];
            }
            pk->wsum[o] = sum;
        }
    }
    for (int32_t o = 0; o < lanes; ++o) {
        const int32_t q = l->per_channel ? o : 0;
        const int real = o < l->out_channels;
        pk->bias[o] = (real && l->bias != NULL) ? l->bias[o] : 0;
        pk->mult[o] = real ? l->multiplier[q] : 0;
        const int32_t s = real ? l->shift[q] : 0;
        pk->lshift[o] = s > 0 ? s : 0;
        pk->rshift[o] = s > 0 ? 0 : -s;
    }
}

static void release(packed_t *pk)
{
    free(pk->weights);
    free(pk->consts);
    free(pk->w);
    free(pk->bias);
    free(pk->mult);
    free(pk->lshift);
    free(pk->rshift);
    free(pk->w8);
    free(pk->wsum);
    free(pk->clean_acc);
}

static packed_t *pack(const void *key, const dtm_host_layer_t *l)
{
    int32_t hit = -1;
    if (cache_last < cache_len && cache[cache_last].key == key) {
        hit = cache_last;
    } else {
        for (int32_t i = 0; i < cache_len; ++i) {
            if (cache[i].key == key) {
                hit = i;
                break;
            }
        }
    }
    if (hit >= 0) {
        if (!same_layer(&cache[hit], l)) {
            release(&cache[hit]);
            fill(&cache[hit], key, l);
        }
        cache_last = hit;
        return &cache[hit];
    }
    if (cache_len == cache_cap) {
        cache_cap = cache_cap ? 2 * cache_cap : 64;
        cache = realloc(cache, (size_t)cache_cap * sizeof(packed_t));
        if (cache == NULL) {
            abort();
        }
    }
    fill(&cache[cache_len], key, l);
    cache_last = cache_len++;
    return &cache[cache_last];
}

/* TFLM's MultiplyByQuantizedMultiplier on 8 lanes (see ditmos_mbqm).
 * SaturatingRoundingDoublingHighMul with m >= 0 is sign(a) q', q' = round
 * |a| m / 2^31 half up, minus one ulp of nudge for negative a (= the
 * reference's truncating division of ab + 1 - 2^30); RoundingDivideByPOT
 * rounds half away from zero, so it is odd, rdbpot(-y, e) = -rdbpot(y, e),
 * and on q' >= 0 it is (q' + 2^e / 2) >> e (no overflow in 32 unsigned bits:
 * q' < 2^31).  So the result is sign(a) ((q' + 2^e / 2) >> e). */
static inline __m256i mbqm8(__m256i x, __m256i mult, __m256i lsh, __m256i rsh)
{
    const __m256i a = _mm256_sllv_epi32(x, lsh);
    const __m256i ua = _mm256_abs_epi32(a); /* |INT32_MIN| reads as 2^31 unsigned */
    const __m256i nb = _mm256_srli_epi32(a, 31);
    const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFF);
    const __m256i half = _mm256_set1_epi64x(INT64_C(1) << 30);
    __m256i pe = _mm256_mul_epu32(ua, mult);
    __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(ua, 32), _mm256_srli_epi64(mult, 32));
    pe = _mm256_sub_epi64(_mm256_add_epi64(pe, half), _mm256_and_si256(nb, lo32));
    po = _mm256_sub_epi64(_mm256_add_epi64(po, half), _mm256_srli_epi64(nb, 32));
    pe = _mm256_srli_epi64(pe, 31);
    po = _mm256_slli_epi64(_mm256_srli_epi64(po, 31), 32);
    const __m256i q = _mm256_blend_epi32(pe, po, 0xAA);
    const __m256i rnd = _mm256_srli_epi32(_mm256_sllv_epi32(_mm256_set1_epi32(1), rsh), 1);
    return _mm256_sign_epi32(_mm256_srlv_epi32(_mm256_add_epi32(q, rnd), rsh), a);
}

static inline void store8(int8_t *dst, __m256i v, int32_t n)
{
    const __m256i a = _mm256_permute4x64_epi64(_mm256_packs_epi32(v, v), 0x08);
    const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(a), _mm256_castsi256_si128(a));
    if (n == DTM_HOST_LANES) {
        _mm_storel_epi64((__m128i *)dst, b);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, b);
        memcpy(dst, tmp, (size_t)n);
    }
}

static inline __m256i bcast(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return _mm256_set1_epi32(v);
}

/* Output time steps t .. t + T - 1 of one group of 8 channels; T is a
 * constant at every call, so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void tblock(const dtm_host_layer_t *l, const packed_t *pk,
                                                         const int16_t *wg, int32_t t, const int32_t T,
                                                         __m256i bias, __m256i mult, __m256i lsh,
                                                         __m256i rsh, __m256i oo, __m256i lo, __m256i hi,
                                                         int8_t *out, int32_t n)
{
    __m256i acc[8];
    for (int32_t r = 0; r < T; ++r) {
        acc[r] = bias;
    }
    const int16_t *wp = wg;
    for (int32_t p = 0; p < l->num_parts; ++p) {
        const int32_t step = l->stride * l->channels[p];
        const int16_t *x0 = xbuf[p] + (size_t)t * (size_t)step;
        for (int32_t j = 0; j < pk->pairs[p]; ++j) {
            const __m256i w = _mm256_load_si256((const __m256i *)wp);
            wp += 16;
            for (int32_t r = 0; r < T; ++r) {
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(bcast(x0 + r * step + 2 * j), w));
            }
        }
    }
    for (int32_t r = 0; r < T; ++r) {
        __m256i v = _mm256_add_epi32(mbqm8(acc[r], mult, lsh, rsh), oo);
        v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
        store8(out + (size_t)(t + r) * (size_t)l->out_channels, v, n);
    }
}

void dtm_host_reference_input(const int8_t *buffer, const int8_t *clean, int32_t size)
{
    ref_buffer = buffer;
    if (size == ref_size && ref_version != 0 && memcmp(clean, ref_clean, (size_t)size) == 0) {
        return;
    }
    if (size > ref_cap) {
        free(ref_clean);
        ref_clean = xmalloc((size_t)size);
        ref_cap = size;
    }
    memcpy(ref_clean, clean, (size_t)size);
    ref_size = size;
    ++ref_version;
}

/* The int32 sums (bias included, before requantisation) of the clean
 * window, as the reference kernel forms them. */
static void clean_sums(const dtm_host_layer_t *l, packed_t *pk)
{
    const int32_t C = l->channels[0], K = l->kernel_size, lanes = pk->groups * DTM_HOST_LANES;
    for (int32_t t = 0; t < l->out_len; ++t) {
        const int32_t origin = t * l->stride - l->pad;
        for (int32_t o = 0; o < lanes; ++o) {
            int32_t acc = pk->bias[o];
            for (int32_t k = 0; o < l->out_channels && k < K; ++k) {
                const int32_t pos = origin + k;
                if (pos < 0 || pos >= l->in_len) {
                    continue;
                }
                for (int32_t c = 0; c < C; ++c) {
                    acc += ((int32_t)ref_clean[pos * C + c] + l->input_offset[0]) *
                           (int32_t)l->weights[(size_t)o * (size_t)(K * C) + (size_t)(k * C + c)];
                }
            }
            pk->clean_acc[(size_t)t * (size_t)lanes + (size_t)o] = acc;
        }
    }
    pk->clean_version = ref_version;
}

/* dbuf = noisy - clean + DTM_HOST_DELTA_MAX as bytes in [0, 62], positions
 * -pad .. (padding: difference 0); 0 if some |noisy - clean| is larger. */
static int delta_bytes(const dtm_host_layer_t *l, const int8_t *x, int32_t span, int32_t slack)
{
    const int32_t C = l->channels[0];
    const size_t need = (size_t)span * (size_t)C + (size_t)slack + 32;
    if (dbuf_len < need) {
        free(dbuf);
        dbuf = xmalloc(need);
        dbuf_len = need;
    }
    memset(dbuf, DTM_HOST_DELTA_MAX, need);
    const int32_t first = l->pad < span ? l->pad : span;
    int32_t count = span - first;
    count = count < l->in_len ? count : l->in_len;
    const int32_t n = count * C;
    uint8_t *dst = dbuf + (size_t)first * (size_t)C;
    const __m256i bmax = _mm256_set1_epi8(DTM_HOST_DELTA_MAX);
    __m256i bad = _mm256_setzero_si256();
    int32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i d = _mm256_subs_epi8(_mm256_loadu_si256((const __m256i *)(x + i)),
                                           _mm256_loadu_si256((const __m256i *)(ref_clean + i)));
        bad = _mm256_or_si256(bad, _mm256_cmpgt_epi8(_mm256_abs_epi8(d), bmax));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_add_epi8(d, bmax));
    }
    if (!_mm256_testz_si256(bad, bad)) {
        return 0;
    }
    for (; i < n; ++i) {
        const int32_t d = (int32_t)x[i] - (int32_t)ref_clean[i];
        if (d < -DTM_HOST_DELTA_MAX || d > DTM_HOST_DELTA_MAX) {
            return 0;
        }
        dst[i] = (uint8_t)(d + DTM_HOST_DELTA_MAX);
    }
    return 1;
}

static inline __m256i bcast4(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return _mm256_set1_epi32(v);
}

/* Output steps t .. t + T - 1 of one group by the difference:
 * acc = clean_acc + sum (d + B) w - B sum w, the 8-bit products by VPMADDUBSW
 * (unsigned d + B <= 62 times signed |w| <= 128: a pair <= 15872, two pairs
 * <= 31744 add in int16 without overflow), widened by VPMADDWD with ones. */
static inline __attribute__((always_inline)) void dblock(const dtm_host_layer_t *l, const packed_t *pk,
                                                         int32_t g, int32_t t, const int32_t T,
                                                         __m256i mult, __m256i lsh, __m256i rsh, __m256i oo,
                                                         __m256i lo, __m256i hi, int8_t *out, int32_t n)
{
    const int32_t lanes = pk->groups * DTM_HOST_LANES;
    const int32_t step = l->stride * l->channels[0];
    const int8_t *wg = pk->w8 + (size_t)g * (size_t)pk->units * 32;
    const uint8_t *x0 = dbuf + (size_t)t * (size_t)step;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[8];
    for (int32_t r = 0; r < T; ++r) {
        acc[r] = _mm256_setzero_si256();
    }
    for (int32_t u = 0; u < pk->units; u += 2) {
        const __m256i wa = _mm256_load_si256((const __m256i *)(wg + (size_t)u * 32));
        const __m256i wb = _mm256_load_si256((const __m256i *)(wg + (size_t)u * 32 + 32));
        for (int32_t r = 0; r < T; ++r) {
            const uint8_t *xr = x0 + r * step + 4 * u;
            const __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(bcast4(xr), wa),
                                               _mm256_maddubs_epi16(bcast4(xr + 4), wb));
            acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(s, ones));
        }
    }
    const __m256i bw = _mm256_mullo_epi32(_mm256_set1_epi32(DTM_HOST_DELTA_MAX),
                                          _mm256_loadu_si256((const __m256i *)(pk->wsum + g * 8)));
    for (int32_t r = 0; r < T; ++r) {
        const __m256i clean =
            _mm256_loadu_si256((const __m256i *)(pk->clean_acc + (size_t)(t + r) * (size_t)lanes + (size_t)g * 8));
        const __m256i a = _mm256_sub_epi32(_mm256_add_epi32(acc[r], clean), bw);
        __m256i v = _mm256_add_epi32(mbqm8(a, mult, lsh, rsh), oo);
        v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
        store8(out + (size_t)(t + r) * (size_t)l->out_channels, v, n);
    }
}

static int delta_conv(const dtm_host_layer_t *l, packed_t *pk, const int8_t *x, int8_t *output)
{
    const int32_t span = (l->out_len - 1) * l->stride + l->kernel_size;
    if (!delta_bytes(l, x, span, pk->units * 4)) {
        return 0;
    }
    if (pk->clean_version != ref_version) {
        clean_sums(l, pk);
    }
    const __m256i oo = _mm256_set1_epi32(l->output_offset);
    const __m256i lo = _mm256_set1_epi32(l->act_min), hi = _mm256_set1_epi32(l->act_max);
    for (int32_t g = 0; g < pk->groups; ++g) {
        const __m256i mult = _mm256_loadu_si256((const __m256i *)(pk->mult + g * 8));
        const __m256i lsh = _mm256_loadu_si256((const __m256i *)(pk->lshift + g * 8));
        const __m256i rsh = _mm256_loadu_si256((const __m256i *)(pk->rshift + g * 8));
        const int32_t n = l->out_channels - g * 8 < 8 ? l->out_channels - g * 8 : 8;
        int8_t *out = output + (size_t)g * 8;
        int32_t t = 0;
        for (; t + 8 <= l->out_len; t += 8) {
            dblock(l, pk, g, t, 8, mult, lsh, rsh, oo, lo, hi, out, n);
        }
        for (; t + 4 <= l->out_len; t += 4) {
            dblock(l, pk, g, t, 4, mult, lsh, rsh, oo, lo, hi, out, n);
        }
        for (; t < l->out_len; ++t) {
            dblock(l, pk, g, t, 1, mult, lsh, rsh, oo, lo, hi, out, n);
        }
    }
    ++difference_calls;
    return 1;
}

void dtm_host_conv(const void *key, const dtm_host_layer_t *l, const int8_t *const inputs[],
                   int8_t *output)
{
    packed_t *pk = pack(key, l);
    if (l->num_parts == 1 && ref_buffer != NULL && inputs[0] == ref_buffer &&
        ref_size == l->in_len * l->channels[0] && delta_conv(l, pk, inputs[0], output)) {
        return;
    }
    const int32_t K = l->kernel_size, S = l->stride, OC = l->out_channels;
    /* int16 copies of the inputs plus their offsets, positions -pad .. padded
     * with 0, long enough for every tap and one value of odd-pair overread. */
    const int32_t span = (l->out_len - 1) * S + K;
    for (int32_t p = 0; p < l->num_parts; ++p) {
        const int32_t C = l->channels[p];
        const size_t need = (size_t)span * (size_t)C + 16;
        if (xbuf_len[p] < need) {
            free(xbuf[p]);
            xbuf[p] = xmalloc(need * sizeof(int16_t));
            xbuf_len[p] = need;
        }
        int16_t *xx = xbuf[p];
        const int8_t *x = inputs[p];
        /* rows -pad .. -1 and past in_len are zero; the rows in between are
         * one contiguous block of the input */
        const int32_t first = l->pad < span ? l->pad : span;
        int32_t count = span - first;
        count = count < l->in_len ? count : l->in_len;
        const int32_t n = count * C;
        memset(xx, 0, need * sizeof(int16_t));
        int16_t *dst = xx + (size_t)first * (size_t)C;
        const __m256i off = _mm256_set1_epi16((int16_t)l->input_offset[p]);
        int32_t i = 0;
        for (; i + 16 <= n; i += 16) {
            const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + i)));
            _mm256_storeu_si256((__m256i *)(dst + i), _mm256_add_epi16(v, off));
        }
        for (; i < n; ++i) {
            dst[i] = (int16_t)(x[i] + l->input_offset[p]);
        }
    }
    const __m256i oo = _mm256_set1_epi32(l->output_offset);
    const __m256i lo = _mm256_set1_epi32(l->act_min), hi = _mm256_set1_epi32(l->act_max);
    for (int32_t g = 0; g < pk->groups; ++g) {
        const int16_t *wg = pk->w + (size_t)g * (size_t)pk->group_words;
        const __m256i bias = _mm256_loadu_si256((const __m256i *)(pk->bias + g * 8));
        const __m256i mult = _mm256_loadu_si256((const __m256i *)(pk->mult + g * 8));
        const __m256i lsh = _mm256_loadu_si256((const __m256i *)(pk->lshift + g * 8));
        const __m256i rsh = _mm256_loadu_si256((const __m256i *)(pk->rshift + g * 8));
        const int32_t n = OC - g * 8 < 8 ? OC - g * 8 : 8;
        int32_t t = 0;
        for (; t + 8 <= l->out_len; t += 8) {
            tblock(l, pk, wg, t, 8, bias, mult, lsh, rsh, oo, lo, hi, output + (size_t)g * 8, n);
        }
        for (; t + 4 <= l->out_len; t += 4) {
            tblock(l, pk, wg, t, 4, bias, mult, lsh, rsh, oo, lo, hi, output + (size_t)g * 8, n);
        }
        for (; t < l->out_len; ++t) {
            tblock(l, pk, wg, t, 1, bias, mult, lsh, rsh, oo, lo, hi, output + (size_t)g * 8, n);
        }
    }
}
