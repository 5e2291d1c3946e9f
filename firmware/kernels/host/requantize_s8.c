/* dtm_requantize_s8 (host set): the reference's value for each of the 256
 * possible input bytes, computed once per (zero points, multiplier, shift)
 * with the reference arithmetic (ditmos_mbqm), then looked up.  Works in
 * place.  Not thread-safe. */
#include <stdlib.h>

#include "ditmos_kernel_requant.h"
#include "ditmos_kernels.h"

typedef struct {
    dtm_requantize_s8_params_t key; /* size ignored */
    int8_t table[256];
} lut_t;

static lut_t *luts;
static int32_t luts_len, luts_cap;

static const int8_t *lut_of(const dtm_requantize_s8_params_t *params)
{
    for (int32_t i = 0; i < luts_len; ++i) {
        const dtm_requantize_s8_params_t *k = &luts[i].key;
        if (k->input_zero_point == params->input_zero_point &&
            k->output_zero_point == params->output_zero_point &&
            k->multiplier == params->multiplier && k->shift == params->shift) {
            return luts[i].table;
        }
    }
    if (luts_len == luts_cap) {
        luts_cap = luts_cap ? 2 * luts_cap : 32;
        luts = realloc(luts, (size_t)luts_cap * sizeof(lut_t));
        if (luts == NULL) {
            abort();
        }
    }
    lut_t *l = &luts[luts_len++];
    l->key = *params;
    for (int32_t v = INT8_MIN; v <= INT8_MAX; ++v) {
        const int32_t r = ditmos_mbqm(v - params->input_zero_point, params->multiplier, params->shift) +
                          params->output_zero_point;
        l->table[(uint8_t)(int8_t)v] = (int8_t)ditmos_clamp(r, INT8_MIN, INT8_MAX);
    }
    return l->table;
}

void dtm_requantize_s8(const dtm_requantize_s8_params_t *params,
                       const int8_t *input, int8_t *output)
{
    const int8_t *table = lut_of(params);
    for (int32_t i = 0; i < params->size; ++i) {
        output[i] = table[(uint8_t)input[i]];
    }
}
