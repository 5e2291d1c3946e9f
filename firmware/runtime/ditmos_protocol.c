/* Request handling for docs/protocol.md: one valid frame in, one response out.
 *
 * Board-independent apart from the board_* queries, so the host board runs
 * exactly this code in tests.
 */
#include <string.h>

#include "ditmos_board.h"
#include "ditmos_runtime.h"
#include "model.h"

#ifndef DITMOS_MODEL_KIND
/* The model.h of a DiTMoS model (selector + K classifiers) does not define it. */
#define DITMOS_MODEL_KIND DITMOS_KIND_DITMOS
#endif

#if DITMOS_INPUT_SIZE > DITMOS_MAX_PAYLOAD
#error "the model input does not fit in one protocol frame (DITMOS_MAX_PAYLOAD)"
#endif
#if defined(DITMOS_PROFILE) && (11 + DITMOS_NUM_CLASSES + 4 * DITMOS_NUM_LAYERS) > DITMOS_MAX_PAYLOAD
#error "INFER_OK with per-layer costs does not fit in one protocol frame"
#endif

#ifdef DITMOS_PROFILE
#define PROFILE_LAYERS DITMOS_NUM_LAYERS
static uint32_t layer_cost[DITMOS_NUM_LAYERS];
static uint32_t layer_mark;
void ditmos_profile_layer(uint16_t layer_index)
{
    uint32_t now = board_cycles();
    if (layer_index < DITMOS_NUM_LAYERS) {
        layer_cost[layer_index] = now - layer_mark;
        ditmos_mark(DITMOS_MARK_LAYER_BASE + layer_index);
    }
    layer_mark = board_cycles();
}
#else
#define PROFILE_LAYERS 0
void ditmos_profile_layer(uint16_t layer_index) { (void)layer_index; }
#endif

void ditmos_session_init(ditmos_session_t *s)
{
    memset(s, 0, sizeof *s);
}

size_t ditmos_error_frame(ditmos_session_t *s, const ditmos_error_t *error, uint8_t *out,
                          size_t cap)
{
    uint8_t *p = out + DITMOS_HEADER_SIZE;
    s->errors++;
    p = ditmos_put_u8(p, error->code);
    p = ditmos_put_u16(p, error->detail);
    return ditmos_frame_finish(out, cap, DITMOS_MSG_ERROR, error->seq,
                               (uint16_t)(p - (out + DITMOS_HEADER_SIZE)));
}

static size_t reply_error(ditmos_session_t *s, const ditmos_frame_t *f, uint8_t code,
                          uint16_t detail, uint8_t *out, size_t cap)
{
    ditmos_error_t e;
    e.code = code;
    e.detail = detail;
    e.seq = f->seq;
    return ditmos_error_frame(s, &e, out, cap);
}

static uint8_t *put_hello(uint8_t *p)
{
    uint32_t flash_used, ram_used;
    char hash[DITMOS_MODEL_HASH_BYTES];
    const char *name = board_name();
    size_t name_len = strlen(name);
    if (name_len > 255u) name_len = 255u;

    board_memory_usage(&flash_used, &ram_used);
    memset(hash, 0, sizeof hash);
    memcpy(hash, DITMOS_MODEL_HASH,
           sizeof(DITMOS_MODEL_HASH) - 1u < sizeof hash ? sizeof(DITMOS_MODEL_HASH) - 1u
                                                        : sizeof hash);

    p = ditmos_put_u8(p, DITMOS_PROTOCOL_VERSION);
    p = ditmos_put_u8(p, board_cost_kind());
    p = ditmos_put_u32(p, board_core_clock_hz());
    p = ditmos_put_u32(p, board_boot_counter());
    memcpy(p, hash, sizeof hash);
    p += sizeof hash;
    p = ditmos_put_u16(p, (uint16_t)DITMOS_NUM_CLASSES);
    p = ditmos_put_u8(p, (uint8_t)DITMOS_NUM_CLASSIFIERS);
    p = ditmos_put_u16(p, (uint16_t)DITMOS_INPUT_T);
    p = ditmos_put_u16(p, (uint16_t)DITMOS_INPUT_C);
    {
        uint32_t scale_bits;
        float scale = DITMOS_INPUT_SCALE;
        memcpy(&scale_bits, &scale, sizeof scale_bits);
        p = ditmos_put_u32(p, scale_bits);
    }
    p = ditmos_put_u32(p, (uint32_t)DITMOS_INPUT_ZERO_POINT);
    p = ditmos_put_u32(p, flash_used);
    p = ditmos_put_u32(p, ram_used);
    p = ditmos_put_u32(p, (uint32_t)DITMOS_ARENA_SIZE);
    p = ditmos_put_u16(p, (uint16_t)PROFILE_LAYERS);
    p = ditmos_put_u8(p, (uint8_t)name_len);
    memcpy(p, name, name_len);
    p += name_len;
    /* Appended fields (docs/protocol.md); firmware that predates them ends here. */
    p = ditmos_put_u8(p, board_clock_status());
    p = ditmos_put_u32(p, board_cycles());
    p = ditmos_put_u8(p, (uint8_t)DITMOS_MODEL_KIND);
    return p;
}

static uint8_t *put_stats(const ditmos_session_t *s, uint8_t *p)
{
    uint32_t stack_size, high_water;
    board_stack_usage(&stack_size, &high_water);
    p = ditmos_put_u32(p, stack_size);
    p = ditmos_put_u32(p, high_water);
    p = ditmos_put_u32(p, (uint32_t)DITMOS_ARENA_SIZE);
    p = ditmos_put_u32(p, s->inferences);
    p = ditmos_put_u32(p, s->errors);
    return p;
}

/* True where board_cycles() counts the cost (CPU cycles, or host nanoseconds);
 * an emulator's instruction counts go through ditmos_mark() instead. */
static int cost_in_answer(void)
{
    uint8_t kind = board_cost_kind();
    return kind == DITMOS_COST_CYCLES || kind == DITMOS_COST_NANOSECONDS;
}

/* Runs one inference and writes INFER_OK's fields at p; returns their end,
 * or NULL if the model reports a failure. */
uint8_t *ditmos_put_infer(const int8_t *input, uint8_t *p)
{
    static ditmos_result_t result;
    uint32_t start, cost;
    int rc;

    memset(&result, 0, sizeof result);
#ifdef DITMOS_PROFILE
    memset(layer_cost, 0, sizeof layer_cost);
#endif
    ditmos_mark(DITMOS_MARK_INFER_BEGIN);
    start = board_cycles();
#ifdef DITMOS_PROFILE
    layer_mark = start;
#endif
    rc = ditmos_infer(input, &result);
    cost = board_cycles() - start;
    ditmos_mark(DITMOS_MARK_INFER_END);
    if (rc != 0) return NULL;
    if (!cost_in_answer()) cost = 0;

    p = ditmos_put_u16(p, result.predicted);
    p = ditmos_put_u8(p, result.route);
    p = ditmos_put_u16(p, (uint16_t)DITMOS_NUM_CLASSES);
    memcpy(p, result.scores, DITMOS_NUM_CLASSES);
    p += DITMOS_NUM_CLASSES;
    p = ditmos_put_u32(p, cost);
    p = ditmos_put_u16(p, (uint16_t)PROFILE_LAYERS);
#ifdef DITMOS_PROFILE
    for (unsigned i = 0; i < DITMOS_NUM_LAYERS; ++i) {
        p = ditmos_put_u32(p, cost_in_answer() ? layer_cost[i] : 0u);
    }
#endif
    return p;
}

size_t ditmos_handle_frame(ditmos_session_t *s, const ditmos_frame_t *f, uint8_t *out,
                           size_t cap, int *reset_after)
{
    uint8_t *payload = out + DITMOS_HEADER_SIZE;
    uint8_t *end;
    int retransmission = 0;

    *reset_after = 0;
    if (cap < DITMOS_MAX_RESPONSE) return 0;
    if (f->type < DITMOS_MSG_HELLO || f->type > DITMOS_MSG_RAW) {
        return reply_error(s, f, DITMOS_ERR_BAD_TYPE, f->type, out, cap);
    }
    /* HELLO is accepted with any sequence number and restarts the sequence
     * (a host reconnecting to a running device starts with HELLO). */
    if (f->type != DITMOS_MSG_HELLO && s->have_last) {
        if (f->seq == s->last_seq) {
            retransmission = 1;
        } else if (f->seq != (uint16_t)(s->last_seq + 1u)) {
            return reply_error(s, f, DITMOS_ERR_BAD_SEQUENCE, (uint16_t)(s->last_seq + 1u), out,
                               cap);
        }
    }
    if (f->type == DITMOS_MSG_INFER) {
        if (f->length != DITMOS_INPUT_SIZE) {
            return reply_error(s, f, DITMOS_ERR_BAD_LENGTH, (uint16_t)DITMOS_INPUT_SIZE, out, cap);
        }
    } else if (f->type == DITMOS_MSG_CERTIFY) {
        const uint16_t want = ditmos_certify_length(f->payload, f->length);
        if (f->length != want) {
            return reply_error(s, f, DITMOS_ERR_BAD_LENGTH, want, out, cap);
        }
    } else if (f->type == DITMOS_MSG_RAW) {
        uint8_t code;
        const uint16_t detail = ditmos_raw_check(f->payload, f->length, &code);
        if (code != 0) {
            return reply_error(s, f, code, detail, out, cap);
        }
    } else if (f->length != 0) {
        return reply_error(s, f, DITMOS_ERR_BAD_LENGTH, 0, out, cap);
    }
    s->have_last = 1;
    s->last_seq = f->seq;

    switch (f->type) {
    case DITMOS_MSG_HELLO:
        end = put_hello(payload);
        break;
    case DITMOS_MSG_INFER:
        end = ditmos_put_infer((const int8_t *)f->payload, payload);
        if (end == NULL) return reply_error(s, f, DITMOS_ERR_INFER_FAILED, 0, out, cap);
        if (!retransmission) s->inferences++;
        break;
    case DITMOS_MSG_CERTIFY: {
        uint32_t n = 0;
        end = ditmos_put_certify(f->payload, payload, &n);
        if (end == NULL) return reply_error(s, f, DITMOS_ERR_INFER_FAILED, 0, out, cap);
        if (!retransmission) s->inferences += n;
        break;
    }
    case DITMOS_MSG_RAW: {
        int ran = 0;
        end = ditmos_put_raw(f->payload, f->length, payload, &ran);
        if (end == NULL) return reply_error(s, f, DITMOS_ERR_INFER_FAILED, 0, out, cap);
        if (ran && !retransmission) s->inferences++;
        break;
    }
    case DITMOS_MSG_STATS:
        end = put_stats(s, payload);
        break;
    default: /* DITMOS_MSG_RESET */
        end = payload;
        *reset_after = 1;
        break;
    }
    return ditmos_frame_finish(out, cap, (uint8_t)(f->type | DITMOS_MSG_RESPONSE_FLAG), f->seq,
                               (uint16_t)(end - payload));
}
