/* Fixed-point MFCC front end; see ditmos_mfcc.h and ditmos/data/mfcc_fixed.py. */
#include "ditmos_mfcc.h"

/* (v + 2^14) >> 15 with an arithmetic shift, as numpy does on int64. */
static inline int32_t round_q15(int64_t v) {
    return (int32_t)((v + (1 << 14)) >> 15);
}

static void fft(const ditmos_mfcc_params *p, int32_t *re, int32_t *im) {
    const int32_t n = p->n_fft;
    for (int32_t size = 2; size <= n; size *= 2) {
        const int32_t half = size / 2;
        const int32_t step = n / size;
        for (int32_t base = 0; base < n; base += size) {
            for (int32_t j = 0; j < half; ++j) {
                const int64_t c = p->cos[j * step];
                const int64_t s = p->sin[j * step];
                const int32_t ia = base + j, ib = ia + half;
                const int64_t br = re[ib], bi = im[ib];
                const int32_t tr = round_q15(br * c + bi * s);
                const int32_t ti = round_q15(bi * c - br * s);
                const int32_t ar = re[ia], ai = im[ia];
                re[ia] = ar + tr;
                im[ia] = ai + ti;
                re[ib] = ar - tr;
                im[ib] = ai - ti;
            }
        }
    }
}

/* log2(v) in Q10 for v >= 1 (step 7 of the reference). */
static int32_t log2_q10(uint64_t v, const int32_t *lut) {
    int32_t e = 0;
    for (int32_t step = 32; step >= 1; step /= 2) {
        if ((v >> (e + step)) != 0) e += step;
    }
    const uint64_t u = e >= 16 ? (v >> (e - 16)) : (v << (16 - e));
    const int32_t f = (int32_t)u - (1 << 16);
    const int32_t i = f >> 10, r = f & 1023;
    const int32_t lo = lut[i], hi = lut[i + 1];
    return e * 1024 + lo + (((hi - lo) * r + 512) >> 10);
}

void ditmos_mfcc_frame(const ditmos_mfcc_params *p, const int16_t *frame,
                       int32_t *scratch, int32_t *out) {
    const int32_t n = p->n_fft;
    int32_t *re = scratch;
    int32_t *im = scratch + n;
    uint64_t *mel = (uint64_t *)(scratch + 2 * n); /* n_mels words x 2 */
    int32_t *logm = re; /* re/im are free again once the mel energies exist */

    for (int32_t i = 0; i < n; ++i) {
        const int32_t src = p->bitrev[i];
        re[i] = src < p->frame_length ? round_q15((int64_t)frame[src] * p->window[src]) : 0;
        im[i] = 0;
    }
    fft(p, re, im);

    const int32_t *w = p->fb_weights;
    for (int32_t m = 0; m < p->n_mels; ++m) {
        uint64_t acc = 0;
        const int32_t lo = p->fb_start[m];
        for (int32_t k = 0; k < p->fb_len[m]; ++k) {
            const int64_t r = re[lo + k], q = im[lo + k];
            acc += (uint64_t)(r * r + q * q) * (uint64_t)w[k];
        }
        w += p->fb_len[m];
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
