/* dtm_requantize_lut_s8 (Cortex-M7): int8 -> int8 requantisation as one table
 * lookup per byte (the generator evaluates TFLM's arithmetic for all 256
 * inputs offline), four bytes per word load and store. */
#include "ditmos_kernels.h"
#include "ditmos_cm7_dsp.h"

void dtm_requantize_lut_s8(const dtm_requantize_lut_s8_params_t *params,
                       const int8_t *input, int8_t *output)
{
    const uint8_t *lut = (const uint8_t *)params->table;
    const int32_t n = params->size;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t v = cm7_read4(input + i);
        cm7_write4(output + i, (uint32_t)lut[v & 0xFFu] | (uint32_t)lut[(v >> 8) & 0xFFu] << 8 |
                                   (uint32_t)lut[(v >> 16) & 0xFFu] << 16 |
                                   (uint32_t)lut[v >> 24] << 24);
    }
    for (; i < n; ++i) {
        output[i] = (int8_t)lut[(uint8_t)input[i]];
    }
}
