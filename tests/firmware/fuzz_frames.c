/* libFuzzer target: arbitrary bytes through the frame parser and the request
 * handler (with the fixture model), as the device main loop feeds them.
 * Invariants checked on every response: it fits the buffer, and a fresh
 * parser reads it back as exactly one valid frame ending on its last byte.
 * A byte 0xEE at a position that is a multiple of 61 simulates the
 * inter-byte timeout there. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ditmos_protocol.h"
#include "ditmos_runtime.h"

static ditmos_parser_t parser, checker;
static ditmos_session_t session;
static uint8_t out[DITMOS_MAX_RESPONSE];

static void check_response(size_t n)
{
    ditmos_frame_t f;
    ditmos_error_t e;
    if (n < DITMOS_FRAME_OVERHEAD || n > sizeof out) abort();
    ditmos_parser_init(&checker);
    for (size_t i = 0; i < n; ++i) {
        ditmos_feed_t r = ditmos_parser_feed(&checker, out[i], &f, &e);
        if (r == DITMOS_FEED_ERROR) abort();
        if ((r == DITMOS_FEED_FRAME) != (i + 1 == n)) abort();
    }
    if (f.length + DITMOS_FRAME_OVERHEAD != n) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ditmos_parser_init(&parser);
    ditmos_session_init(&session);
    for (size_t i = 0; i < size; ++i) {
        ditmos_frame_t frame;
        ditmos_error_t error;
        size_t n = 0;
        int reset_after = 0;
        if (data[i] == 0xEE && i % 61 == 0) {
            if (ditmos_parser_timeout(&parser, &error)) {
                check_response(ditmos_error_frame(&session, &error, out, sizeof out));
            }
            continue;
        }
        switch (ditmos_parser_feed(&parser, data[i], &frame, &error)) {
        case DITMOS_FEED_FRAME:
            if (frame.length > DITMOS_MAX_PAYLOAD) abort();
            n = ditmos_handle_frame(&session, &frame, out, sizeof out, &reset_after);
            check_response(n);
            break;
        case DITMOS_FEED_ERROR:
            check_response(ditmos_error_frame(&session, &error, out, sizeof out));
            break;
        default:
            break;
        }
        if (reset_after) ditmos_session_init(&session); /* the device would reboot */
    }
    return 0;
}
