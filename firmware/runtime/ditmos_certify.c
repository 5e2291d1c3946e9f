/* The CERTIFY request of docs/protocol.md: randomized smoothing on the
 * device, class counts of n noisy inferences (ditmos_smooth_model.c). */
#include <stdint.h>

#include "ditmos_board.h"
#include "ditmos_runtime.h"
#include "ditmos_smooth.h"
#include "model.h"

/* Largest noise table a CERTIFY request may carry. */
#define DITMOS_SMOOTH_MAX_TABLE 256
#define CERTIFY_HEADER 16u

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint16_t ditmos_certify_length(const uint8_t *payload, uint16_t length)
{
    uint32_t table_size = length >= CERTIFY_HEADER ? get_u16(payload + 12) : 0u;
    uint32_t want = CERTIFY_HEADER + 4u * table_size + (uint32_t)DITMOS_INPUT_SIZE;
    return want > 0xFFFFu ? 0xFFFFu : (uint16_t)want;
}

/* payload: seed u32, first u32, n u32, table_size u16, offset u16,
 * thresholds table_size x u32, window DITMOS_INPUT_SIZE x i8 (length checked).
 * CERTIFY_OK: num_classes u16, counts num_classes x u32, cost u32. */
uint8_t *ditmos_put_certify(const uint8_t *payload, uint8_t *p, uint32_t *n)
{
    static uint32_t thresholds[DITMOS_SMOOTH_MAX_TABLE];
    static uint32_t counts[DITMOS_NUM_CLASSES];
    const uint32_t seed = get_u32(payload);
    const uint32_t first = get_u32(payload + 4);
    const uint16_t table_size = get_u16(payload + 12);
    const uint16_t offset = get_u16(payload + 14);
    uint32_t start, cost;
    int rc;

    *n = get_u32(payload + 8);
    if (table_size > DITMOS_SMOOTH_MAX_TABLE) return NULL;
    for (uint32_t i = 0; i < table_size; ++i) {
        thresholds[i] = get_u32(payload + CERTIFY_HEADER + 4u * i);
    }
    ditmos_mark(DITMOS_MARK_INFER_BEGIN);
    start = board_cycles();
    rc = ditmos_smooth_counts((const int8_t *)(payload + CERTIFY_HEADER + 4u * table_size),
                              thresholds, (int32_t)table_size, (int32_t)offset, seed, first, *n,
                              counts);
    cost = board_cycles() - start;
    ditmos_mark(DITMOS_MARK_INFER_END);
    if (rc != 0) return NULL;
    if (board_cost_kind() != DITMOS_COST_CYCLES) cost = 0;
    p = ditmos_put_u16(p, (uint16_t)DITMOS_NUM_CLASSES);
    for (int32_t c = 0; c < DITMOS_NUM_CLASSES; ++c) {
        p = ditmos_put_u32(p, counts[c]);
    }
    return ditmos_put_u32(p, cost);
}
