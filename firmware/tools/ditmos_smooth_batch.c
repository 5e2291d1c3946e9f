/* Host-only helper of integer smoothing (never built into firmware): the
 * noisy windows of inferences first .. first + n - 1, written one after the
 * other, with the device's own generator and table search
 * (ditmos_noise_s8 of firmware/runtime/ditmos_smooth.c).  The host then
 * classifies them in large batches (ditmos/smoothing/batched.py). */
#include "ditmos_smooth.h"

/* out holds n * size values.  Returns 0, or -2 for a malformed table. */
int ditmos_smooth_noisy_batch(const int8_t *input, const uint32_t *thresholds,
                              int32_t table_size, int32_t offset, uint32_t seed,
                              uint32_t first, uint32_t n, int32_t size, int8_t *out)
{
    if (table_size < 2 || (table_size & (table_size - 1)) != 0 || offset < 0 ||
        thresholds[table_size - 1] != 0x80000000u || size < 1) {
        return -2;
    }
    uint16_t guide[DITMOS_NOISE_GUIDE];
    ditmos_noise_guide(thresholds, table_size, guide);
    const ditmos_noise_table_t table = {thresholds, table_size, offset, guide};
    for (uint32_t j = 0; j < n; ++j) {
        ditmos_noise_s8(&table, seed, (first + j) * (uint32_t)size, input,
                        out + (uint64_t)j * (uint64_t)size, size);
    }
    return 0;
}
