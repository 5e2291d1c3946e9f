/* Fixed-point MFCC front end; see ditmos_mfcc.h and ditmos/data/mfcc_fixed.py. */
#include "ditmos_mfcc.h"

/* (v + 2^14) >> 15 with an arithmetic shift, as numpy does on int64. */
static inline int32_t round_q15(int64_t v) {
    return (int32_t)((v + (1 << 14)) >> 15);
}

/* The butterflies of one radix-2 stage that share twiddle index j, over every
 * group: a' = a + t, b' = a - t (b is `half` after a, groups `size` apart),
 * with t given by the two statements T_RE and T_IM. x holds the complex
 * values interleaved (re, im), so each is one 64-bit load and store. */
#define BUTTERFLIES(T_RE, T_IM)                                                 \
    for (int32_t *a = x + 2 * j, *b = a + 2 * half; a < end; a += 2 * size, b += 2 * size) { \
        const int32_t br = b[0], bi = b[1];                                     \
        int32_t tr, ti;                                                         \
        T_RE;                                                                   \
        T_IM;                                                                   \
        const int32_t ar = a[0], ai = a[1];                                     \
        a[0] = ar + tr;                                                         \
        a[1] = ai + ti;                                                         \
        b[0] = ar - tr;                                                         \
        b[1] = ai - ti;                                                         \
    }

/* The reference's radix-2 DIT FFT, the same integers. The first two stages
 * (twiddles 1 and -j only) are done by the caller on the real input; here the
 * stages of size 8..n, twiddle by twiddle, so each twiddle is loaded once.
 * Twiddles 1 (j = 0) and -j (j = half/2: cos 0, sin 32768) are exact in the
 * reference's arithmetic ((b * 32768 + 2^14) >> 15 = b), so they take no
 * multiply. */
static void fft_from_stage3(const ditmos_mfcc_params *p, int32_t *x) {
    const int32_t n = p->n_fft;
    const int32_t *end = x + 2 * n;
    for (int32_t size = 8; size <= n; size *= 2) {
        const int32_t half = size / 2;
        const int32_t step = n / size;
        for (int32_t j = 0; j < half; ++j) {
            if (j == 0) {
                BUTTERFLIES(tr = br, ti = bi)
            } else if (2 * j == half) {
                BUTTERFLIES(tr = bi, ti = -br)
            } else {
                const int64_t c = p->cos[j * step], s = p->sin[j * step];
                BUTTERFLIES(tr = round_q15(br * c + bi * s), ti = round_q15(bi * c - br * s))
            }
        }
    }
}
#undef BUTTERFLIES

/* log2(v) in Q10 for v >= 1 (step 7 of the reference). */
static int32_t log2_q10(uint64_t v, const int32_t *lut) {
    int32_t e; /* index of the highest set bit */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(DITMOS_MFCC_NO_BUILTINS)
    e = 63 - __builtin_clzll(v); /* CLZ on the Cortex-M7 */
#else
    e = 0;
    for (int32_t step = 32; step >= 1; step /= 2) {
        if ((v >> (e + step)) != 0) e += step;
    }
#endif
    const uint64_t u = e >= 16 ? (v >> (e - 16)) : (v << (16 - e));
    const int32_t f = (int32_t)u - (1 << 16);
    const int32_t i = f >> 10, r = f & 1023;
    const int32_t lo = lut[i], hi = lut[i + 1];
    return e * 1024 + lo + (((hi - lo) * r + 512) >> 10);
}

void ditmos_mfcc_frame(const ditmos_mfcc_params *p, const int16_t *frame,
                       int32_t *scratch, int32_t *out) {
    const int32_t n = p->n_fft;
    int32_t *x = scratch; /* [n] complex values, re and im interleaved */
    uint64_t *mel = (uint64_t *)(scratch + 2 * n); /* n_mels words x 2 */
    int32_t *logm = x; /* x is free again once the mel energies exist */

    /* window, bit-reversed order, and the first two FFT stages (twiddles 1
     * and -j on a real input: sums only) on each group of four inputs. The
     * window product fits 32 bits: |x * W| <= 2^15 * 2^15. */
    const int32_t *bitrev = p->bitrev, *window = p->window;
    const int32_t frame_length = p->frame_length;
    for (int32_t i = 0; i < n; i += 4) {
        int32_t v[4];
        for (int32_t q = 0; q < 4; ++q) {
            const int32_t src = bitrev[i + q];
            v[q] = src < frame_length ? (frame[src] * window[src] + (1 << 14)) >> 15 : 0;
        }
        const int32_t s01 = v[0] + v[1], d01 = v[0] - v[1];
        const int32_t s23 = v[2] + v[3], d23 = v[2] - v[3];
        int32_t *y = x + 2 * i;
        y[0] = s01 + s23;
        y[1] = 0;
        y[2] = d01;
        y[3] = -d23;
        y[4] = s01 - s23;
        y[5] = 0;
        y[6] = d01;
        y[7] = d23;
    }
    fft_from_stage3(p, x);

    const int32_t *w = p->fb_weights, *fb_start = p->fb_start, *fb_len = p->fb_len;
    const int32_t n_mels = p->n_mels;
    for (int32_t m = 0; m < n_mels; ++m) {
        uint64_t acc = 0;
        const int32_t *bin = x + 2 * fb_start[m];
        const int32_t len = fb_len[m];
        for (int32_t k = 0; k < len; ++k, bin += 2) {
            const uint64_t power = (uint64_t)((int64_t)bin[0] * bin[0] + (int64_t)bin[1] * bin[1]);
            acc += power * (uint32_t)w[k];
        }
        w += len;
        mel[m] = acc;
    }
    for (int32_t m = 0; m < p->n_mels; ++m) {
        logm[m] = log2_q10(mel[m] + p->mel_floor, p->log_lut);
    }
    for (int32_t i = 0; i < p->n_coeffs; ++i) {
        const int32_t *d = p->dct + i * p->n_mels;
        int64_t acc = 0;
        for (int32_t m = 0; m < p->n_mels; ++m) {
            acc += (int64_t)d[m] * logm[m];
        }
        out[i] = round_q15(acc);
    }
}

void ditmos_mfcc_clip(const ditmos_mfcc_params *p, const int16_t *clip, int32_t num_frames,
                      int32_t *scratch, int32_t *out) {
    for (int32_t t = 0; t < num_frames; ++t) {
        ditmos_mfcc_frame(p, clip + t * p->hop_length, scratch, out + t * p->n_coeffs);
    }
}
