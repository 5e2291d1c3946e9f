/* Fixed-point MFCC front end (integer only).
 *
 * Computes exactly the integers of ditmos/data/mfcc_fixed.py (the reference;
 * its module docstring defines every step): int16 audio -> int32 MFCC in
 * log2 Q10 units. The tables come from mfcc_fixed.c_tables(), which the
 * code generator writes next to the model.
 */
#ifndef DITMOS_MFCC_H
#define DITMOS_MFCC_H

#include <stdint.h>

typedef struct {
    int32_t frame_length;        /* samples per frame */
    int32_t hop_length;          /* samples between frame starts */
    int32_t n_fft;               /* FFT points, a power of two */
    int32_t n_mels;              /* mel filters */
    int32_t n_coeffs;            /* cepstral coefficients kept */
    const int32_t *window;       /* [frame_length] Hamming, Q15 */
    const int32_t *cos;          /* [n_fft/2] cos(2 pi k / n_fft), Q15 */
    const int32_t *sin;          /* [n_fft/2] sin(2 pi k / n_fft), Q15 */
    const int32_t *bitrev;       /* [n_fft] bit-reversed index */
    const int32_t *fb_start;     /* [n_mels] first FFT bin of each filter */
    const int32_t *fb_len;       /* [n_mels] bins per filter */
    const int32_t *fb_weights;   /* concatenated filter weights, Q15 */
    const int32_t *log_lut;      /* [65] round(log2(1 + i/64) * 1024) */
    const int32_t *dct;          /* [n_coeffs][n_mels] orthonormal DCT-II, Q15 */
    uint64_t mel_floor;          /* added to each mel energy before the log */
} ditmos_mfcc_params;

/* int32 words of scratch ditmos_mfcc_frame needs: 2*n_fft + 2*n_mels. */
#define DITMOS_MFCC_SCRATCH_WORDS(n_fft, n_mels) (2 * (n_fft) + 2 * (n_mels))

/* One frame: frame[frame_length] int16 -> out[n_coeffs] int32 (log2 Q10).
 * scratch: DITMOS_MFCC_SCRATCH_WORDS int32 words, 8-byte aligned. */
void ditmos_mfcc_frame(const ditmos_mfcc_params *p, const int16_t *frame,
                       int32_t *scratch, int32_t *out);

/* num_frames frames of a clip (frame t starts at sample t*hop_length):
 * clip[(num_frames-1)*hop_length + frame_length] -> out[num_frames][n_coeffs]. */
void ditmos_mfcc_clip(const ditmos_mfcc_params *p, const int16_t *clip, int32_t num_frames,
                      int32_t *scratch, int32_t *out);

#endif /* DITMOS_MFCC_H */
