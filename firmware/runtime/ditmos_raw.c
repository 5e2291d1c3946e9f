/* The RAW request of docs/protocol.md: raw samples in, the generated input
 * pipeline (prepare.h: front end, normalisation, quantisation) and the model
 * on the device, INFER_OK's fields out.
 *
 * A raw input larger than one frame arrives in chunks at increasing byte
 * offsets; the device keeps them in one static buffer and runs the pipeline
 * when the last byte has arrived.  Built with -DDITMOS_HAS_PREPARE (the build
 * sets it when the model directory has prepare.h); without it every kind is
 * answered with ERROR NO_RAW. */
#include <string.h>

#include "ditmos_board.h"
#include "ditmos_runtime.h"
#include "model.h"
#ifdef DITMOS_HAS_PREPARE
#include "prepare.h"
#endif

#if defined(DITMOS_PROFILE) && DITMOS_NUM_LAYERS + DITMOS_MARK_LAYER_BASE > DITMOS_MARK_PREPARE_BEGIN
#error "too many profiled layers: their marks would collide with the front end's"
#endif

#if defined(DITMOS_HAS_PREPARE) && defined(DITMOS_PROFILE) && \
    (23 + DITMOS_NUM_CLASSES + 4 * DITMOS_NUM_LAYERS) > DITMOS_MAX_PAYLOAD
#error "RAW_OK with per-layer costs does not fit in one protocol frame"
#endif

#define RAW_HEADER 5u /* kind u8, offset u32 */

#define FLOAT_BYTES (4u * DITMOS_INPUT_SIZE)
#if defined(DITMOS_HAS_PREPARE) && defined(DITMOS_AUDIO_SAMPLES)
#define AUDIO_BYTES (2u * DITMOS_AUDIO_SAMPLES)
#else
#define AUDIO_BYTES 0u
#endif
#if AUDIO_BYTES > FLOAT_BYTES
#define RAW_BYTES AUDIO_BYTES
#else
#define RAW_BYTES FLOAT_BYTES
#endif

#ifdef DITMOS_HAS_PREPARE
/* The raw input being received, aligned for float and int16 access. */
static union {
    float f[RAW_BYTES / 4u];
    int16_t s[RAW_BYTES / 2u];
    uint8_t b[RAW_BYTES];
} raw_buf;
static int8_t raw_window[DITMOS_INPUT_SIZE];
#ifdef DITMOS_AUDIO_SAMPLES
static int64_t raw_scratch[(DITMOS_AUDIO_SCRATCH_WORDS + 1) / 2]; /* 8-byte aligned int32 words */
#endif
#endif
static uint8_t raw_kind;
static uint32_t raw_received;

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

uint32_t ditmos_raw_total(uint8_t kind)
{
#ifdef DITMOS_HAS_PREPARE
    if (kind == DITMOS_RAW_FLOAT) return FLOAT_BYTES;
#ifdef DITMOS_HAS_RAW_I16
    if (kind == DITMOS_RAW_I16) return 2u * (uint32_t)DITMOS_INPUT_SIZE;
#endif
#ifdef DITMOS_AUDIO_SAMPLES
    if (kind == DITMOS_RAW_AUDIO) return AUDIO_BYTES;
#endif
#else
    (void)kind;
#endif
    return 0u;
}

uint16_t ditmos_raw_check(const uint8_t *payload, uint16_t length, uint8_t *code)
{
    uint32_t total, offset, n;
    if (length <= RAW_HEADER) {
        *code = DITMOS_ERR_BAD_LENGTH;
        return RAW_HEADER + 1u;
    }
    total = ditmos_raw_total(payload[0]);
    if (total == 0u) {
        *code = DITMOS_ERR_NO_RAW;
        return payload[0];
    }
    offset = get_u32(payload + 1);
    n = (uint32_t)length - RAW_HEADER;
    /* a chunk starts a new input (offset 0) or continues the current one
     * without a gap; it may overlap what arrived (a retransmission) */
    if ((offset != 0u && (payload[0] != raw_kind || offset > raw_received)) ||
        offset > total || n > total - offset) {
        *code = DITMOS_ERR_BAD_OFFSET;
        return (uint16_t)(payload[0] == raw_kind && raw_received < 0xFFFFu ? raw_received : 0u);
    }
    *code = 0;
    return 0;
}

/* Runs the pipeline on the complete raw input; 0 or the model's error. */
#ifdef DITMOS_HAS_PREPARE
static void prepare(uint8_t kind)
{
    if (kind == DITMOS_RAW_FLOAT) {
        ditmos_prepare_window(raw_buf.f, raw_window);
    }
#ifdef DITMOS_HAS_RAW_I16
    if (kind == DITMOS_RAW_I16) {
        ditmos_prepare_window_i16(raw_buf.s, raw_window);
    }
#endif
#ifdef DITMOS_AUDIO_SAMPLES
    if (kind == DITMOS_RAW_AUDIO) {
        ditmos_prepare_audio(raw_buf.s, (int32_t *)raw_scratch, raw_window);
    }
#endif
}
#endif

uint8_t *ditmos_put_raw(const uint8_t *payload, uint16_t length, uint8_t *p, int *ran)
{
    const uint8_t kind = payload[0];
    const uint32_t offset = get_u32(payload + 1);
    const uint32_t n = (uint32_t)length - RAW_HEADER;
    const uint32_t total = ditmos_raw_total(kind);
    uint32_t start, cost = 0;

    *ran = 0;
#ifdef DITMOS_HAS_PREPARE
    if (offset == 0u) {
        raw_kind = kind;
        raw_received = 0u;
    }
    memcpy(raw_buf.b + offset, payload + RAW_HEADER, n);
    if (offset + n > raw_received) raw_received = offset + n;
#else
    (void)offset;
    (void)n;
#endif
    if (raw_received < total) {
        p = ditmos_put_u32(p, raw_received);
        p = ditmos_put_u32(p, total);
        return ditmos_put_u32(p, 0u);
    }
#ifdef DITMOS_HAS_PREPARE
    ditmos_mark(DITMOS_MARK_PREPARE_BEGIN);
    start = board_cycles();
    prepare(kind);
    cost = board_cycles() - start;
    ditmos_mark(DITMOS_MARK_PREPARE_END);
#else
    (void)start;
#endif
    if (board_cost_kind() != DITMOS_COST_CYCLES && board_cost_kind() != DITMOS_COST_NANOSECONDS) {
        cost = 0;
    }
    p = ditmos_put_u32(p, raw_received);
    p = ditmos_put_u32(p, total);
    p = ditmos_put_u32(p, cost);
    *ran = 1;
#ifdef DITMOS_HAS_PREPARE
    return ditmos_put_infer(raw_window, p);
#else
    return NULL;
#endif
}
