/* The device main loop: bytes in from the board's UART, frames through the
 * parser, responses out.  A partial frame is dropped (ERROR TIMEOUT) when no
 * byte arrives for DITMOS_INTERBYTE_TIMEOUT_MS, so the device never waits
 * forever in the middle of a frame.
 */
#include "ditmos_board.h"
#include "ditmos_runtime.h"

#define HEARTBEAT_MS 500u
#define POLL_MS 20u

static ditmos_parser_t parser;
static ditmos_session_t session;
static uint8_t tx[DITMOS_MAX_RESPONSE];

void ditmos_runtime_run(void)
{
    uint32_t last_byte = board_millis();
    uint32_t last_beat = last_byte;

    ditmos_parser_init(&parser);
    ditmos_session_init(&session);
    for (;;) {
        int c = board_uart_getc(POLL_MS);
        uint32_t now = board_millis();
        if (now - last_beat >= HEARTBEAT_MS) {
            board_heartbeat();
            last_beat = now;
        }
        if (c == -2) return; /* host board: link closed */
        if (c < 0) {
            ditmos_error_t error;
            if (ditmos_parser_busy(&parser) &&
                now - last_byte >= DITMOS_INTERBYTE_TIMEOUT_MS &&
                ditmos_parser_timeout(&parser, &error)) {
                size_t n = ditmos_error_frame(&session, &error, tx, sizeof tx);
                board_uart_write(tx, n);
            }
            continue;
        }
        last_byte = now;

        ditmos_frame_t frame;
        ditmos_error_t error;
        size_t n = 0;
        int reset_after = 0;
        switch (ditmos_parser_feed(&parser, (uint8_t)c, &frame, &error)) {
        case DITMOS_FEED_FRAME:
            n = ditmos_handle_frame(&session, &frame, tx, sizeof tx, &reset_after);
            break;
        case DITMOS_FEED_ERROR:
            n = ditmos_error_frame(&session, &error, tx, sizeof tx);
            break;
        default:
            break;
        }
        if (n > 0) board_uart_write(tx, n);
        if (reset_after) board_reset();
        /* Time spent handling a frame (an inference) is not inter-byte time. */
        last_byte = board_millis();
    }
}

int main(void)
{
    board_init();
    ditmos_runtime_run();
    board_exit(0);
}
