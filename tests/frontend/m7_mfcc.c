/* The MFCC front end on the Cortex-M7 (QEMU mps2-an500, semihosting): runs
 * ditmos_mfcc_clip over the clips in clips.c (written by the test), prints a
 * checksum of all output bytes, and calls bench_mark() around the first clip
 * so the instruction-count plugin measures one keyword-spotting window. */
#include <stdint.h>

#include "ditmos_mfcc.h"
#include "semihost.h"

extern const ditmos_mfcc_params test_params;
extern const int16_t test_clips[];
extern const int32_t test_num_clips, test_clip_samples, test_num_frames;

static int32_t out[256 * 40];
static int64_t scratch64[1024];

__attribute__((noinline)) void bench_mark(void)
{
    __asm__ volatile("" ::: "memory");
}

int main(void)
{
    uint32_t h = 2166136261u; /* FNV-1a over the little-endian output bytes */
    for (int32_t i = 0; i < test_num_clips; ++i) {
        if (i == 0) bench_mark();
        ditmos_mfcc_clip(&test_params, test_clips + i * test_clip_samples, test_num_frames,
                         (int32_t *)scratch64, out);
        if (i == 0) bench_mark();
        const uint8_t *b = (const uint8_t *)out;
        for (int32_t k = 0; k < test_num_frames * test_params.n_coeffs * 4; ++k) {
            h = (h ^ b[k]) * 16777619u;
        }
    }
    char line[] = "mfcc hash=00000000\n";
    for (int k = 0; k < 8; ++k) {
        line[10 + k] = "0123456789abcdef"[(h >> (28 - 4 * k)) & 15u];
    }
    sh_write0(line);
    sh_exit(0);
}
