/* dtm_concat_s8 (reference): TFLM int8 CONCATENATION on the channel axis. */
#include <string.h>

#include "ditmos_kernels.h"

void dtm_concat_s8(const dtm_concat_s8_params_t *params,
                   const int8_t *const parts[], int8_t *output)
{
    for (int32_t r = 0; r < params->rows; ++r) {
        for (int32_t p = 0; p < params->num_parts; ++p) {
            const int32_t c = params->channels[p];
            memcpy(output, parts[p] + (size_t)r * (size_t)c, (size_t)c);
            output += c;
        }
    }
}
