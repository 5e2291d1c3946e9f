/* Randomized smoothing of the generated model: class counts of n noisy
 * inferences of one window (ditmos_smooth.h, ditmos_infer from model.h).
 * Integer operations only.  The host builds this file with the model alone
 * (ditmos certify --int8); the firmware answers CERTIFY with it. */
#include <stdint.h>

#include "ditmos_smooth.h"
#include "model.h"

static int classify_model(void *ctx, const int8_t *input, uint16_t *predicted)
{
    ditmos_result_t result;
    (void)ctx;
    const int err = ditmos_infer(input, &result);
    *predicted = result.predicted;
    return err;
}

/* counts: DITMOS_NUM_CLASSES entries, zeroed here.  Returns 0 on success,
 * -2 for a malformed table, else the model's error. */
int ditmos_smooth_counts(const int8_t *input, const uint32_t *thresholds, int32_t table_size,
                         int32_t offset, uint32_t seed, uint32_t first, uint32_t n,
                         uint32_t *counts)
{
    static int8_t scratch[DITMOS_INPUT_SIZE];
    if (table_size < 2 || (table_size & (table_size - 1)) != 0 || offset < 0 ||
        thresholds[table_size - 1] != 0x80000000u) {
        return -2;
    }
    for (int32_t c = 0; c < DITMOS_NUM_CLASSES; ++c) {
        counts[c] = 0u;
    }
    static uint16_t guide[DITMOS_NOISE_GUIDE];
    ditmos_noise_guide(thresholds, table_size, guide);
    const ditmos_noise_table_t table = {thresholds, table_size, offset, guide};
    return ditmos_smooth_vote_s8(&table, seed, first, n, input, scratch, DITMOS_INPUT_SIZE,
                                 classify_model, 0, counts, DITMOS_NUM_CLASSES);
}

