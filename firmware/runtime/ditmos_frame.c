/* Frame parser and encoder for docs/protocol.md (version 1).
 *
 * A byte-at-a-time state machine over one bounded buffer: it never reads or
 * writes past DITMOS_MAX_FRAME bytes whatever the input, and it drops back to
 * hunting for the sync marker after every frame and every error.
 */
#include <string.h>

#include "ditmos_protocol.h"

enum { HUNT_SYNC0 = 0, HUNT_SYNC1, IN_FRAME };

uint16_t ditmos_crc16(uint16_t crc, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

void ditmos_parser_init(ditmos_parser_t *p)
{
    p->state = HUNT_SYNC0;
    p->pos = 0;
    p->need = 0;
}

int ditmos_parser_busy(const ditmos_parser_t *p) { return p->state == IN_FRAME; }

static ditmos_feed_t reject(ditmos_parser_t *p, ditmos_error_t *error, uint8_t code,
                            uint16_t detail)
{
    error->code = code;
    error->detail = detail;
    error->seq = p->pos >= 6 ? get_u16(&p->buf[4]) : 0;
    ditmos_parser_init(p);
    return DITMOS_FEED_ERROR;
}

int ditmos_parser_timeout(ditmos_parser_t *p, ditmos_error_t *error)
{
    if (p->state != IN_FRAME) {
        ditmos_parser_init(p); /* a lone first sync byte is not a frame */
        return 0;
    }
    (void)reject(p, error, DITMOS_ERR_TIMEOUT, p->pos);
    return 1;
}

ditmos_feed_t ditmos_parser_feed(ditmos_parser_t *p, uint8_t byte, ditmos_frame_t *frame,
                                 ditmos_error_t *error)
{
    switch (p->state) {
    case HUNT_SYNC0:
        if (byte == DITMOS_SYNC0) p->state = HUNT_SYNC1;
        return DITMOS_FEED_MORE;
    case HUNT_SYNC1:
        if (byte == DITMOS_SYNC1) {
            p->buf[0] = DITMOS_SYNC0;
            p->buf[1] = DITMOS_SYNC1;
            p->pos = 2;
            p->need = DITMOS_HEADER_SIZE;
            p->state = IN_FRAME;
        } else if (byte != DITMOS_SYNC0) {
            p->state = HUNT_SYNC0;
        }
        return DITMOS_FEED_MORE;
    default:
        break;
    }

    if (p->pos >= p->need || p->need > sizeof p->buf) { /* cannot happen; stay safe */
        ditmos_parser_init(p);
        return DITMOS_FEED_MORE;
    }
    p->buf[p->pos++] = byte;
    if (p->pos < p->need) return DITMOS_FEED_MORE;

    if (p->pos == DITMOS_HEADER_SIZE) {
        uint8_t version = p->buf[2];
        uint16_t length = get_u16(&p->buf[6]);
        if (version != DITMOS_PROTOCOL_VERSION) {
            return reject(p, error, DITMOS_ERR_BAD_VERSION, version);
        }
        if (length > DITMOS_MAX_PAYLOAD) {
            return reject(p, error, DITMOS_ERR_TOO_LONG, length);
        }
        p->need = (uint16_t)(DITMOS_HEADER_SIZE + length + DITMOS_CRC_SIZE);
        return DITMOS_FEED_MORE;
    }

    /* Whole frame received. */
    uint16_t length = (uint16_t)(p->need - DITMOS_FRAME_OVERHEAD);
    uint16_t expected = ditmos_crc16(DITMOS_CRC16_INIT, &p->buf[2],
                                     (size_t)(DITMOS_HEADER_SIZE - 2u + length));
    uint16_t received = get_u16(&p->buf[DITMOS_HEADER_SIZE + length]);
    if (expected != received) {
        return reject(p, error, DITMOS_ERR_BAD_CRC, expected);
    }
    frame->version = p->buf[2];
    frame->type = p->buf[3];
    frame->seq = get_u16(&p->buf[4]);
    frame->length = length;
    frame->payload = &p->buf[DITMOS_HEADER_SIZE];
    ditmos_parser_init(p);
    return DITMOS_FEED_FRAME;
}

uint8_t *ditmos_put_u8(uint8_t *p, uint8_t v)
{
    p[0] = v;
    return p + 1;
}

uint8_t *ditmos_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

uint8_t *ditmos_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return p + 4;
}

size_t ditmos_frame_finish(uint8_t *out, size_t cap, uint8_t type, uint16_t seq,
                           uint16_t payload_len)
{
    size_t total = (size_t)payload_len + DITMOS_FRAME_OVERHEAD;
    if (payload_len > DITMOS_MAX_PAYLOAD || total > cap) return 0;
    out[0] = DITMOS_SYNC0;
    out[1] = DITMOS_SYNC1;
    out[2] = DITMOS_PROTOCOL_VERSION;
    out[3] = type;
    (void)ditmos_put_u16(&out[4], seq);
    (void)ditmos_put_u16(&out[6], payload_len);
    uint16_t crc = ditmos_crc16(DITMOS_CRC16_INIT, &out[2], (size_t)(6u + payload_len));
    (void)ditmos_put_u16(&out[DITMOS_HEADER_SIZE + payload_len], crc);
    return total;
}
