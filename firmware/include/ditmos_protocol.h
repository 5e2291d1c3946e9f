/* ditmos serial protocol, version 1: constants, CRC, frame parser and encoder.
 *
 * The byte layout is specified in docs/protocol.md; this header is its C side.
 * Its constants equal those of ditmos/harness/protocol.py (the Python side);
 * tests/firmware/test_protocol_constants.py keeps the two in step.
 * Everything here is pure C99 without board dependencies so that the parser
 * can be compiled on the host, unit-tested and fuzzed.
 */
#ifndef DITMOS_PROTOCOL_H
#define DITMOS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define DITMOS_PROTOCOL_VERSION 1u
#define DITMOS_SYNC0 0xA5u
#define DITMOS_SYNC1 0x5Au
#define DITMOS_MAX_PAYLOAD 2048u
#define DITMOS_HEADER_SIZE 8u
#define DITMOS_CRC_SIZE 2u
#define DITMOS_FRAME_OVERHEAD (DITMOS_HEADER_SIZE + DITMOS_CRC_SIZE)
#define DITMOS_MAX_FRAME (DITMOS_MAX_PAYLOAD + DITMOS_FRAME_OVERHEAD)
/* Inter-byte timeout: a partial frame older than this since its last byte is dropped. */
#define DITMOS_INTERBYTE_TIMEOUT_MS 200u
/* HELLO_OK carries this many ASCII bytes of the model hash (NUL-padded). */
#define DITMOS_MODEL_HASH_BYTES 16u

/* Message types. */
#define DITMOS_MSG_HELLO 0x01u
#define DITMOS_MSG_INFER 0x02u
#define DITMOS_MSG_STATS 0x03u
#define DITMOS_MSG_RESET 0x04u
/* randomized smoothing: class counts (docs/protocol.md) */
#define DITMOS_MSG_CERTIFY 0x05u
/* raw samples through the device's input pipeline (docs/protocol.md) */
#define DITMOS_MSG_RAW 0x06u
#define DITMOS_MSG_RESPONSE_FLAG 0x80u
#define DITMOS_MSG_ERROR 0x7Fu

/* ERROR codes. */
#define DITMOS_ERR_BAD_CRC 1u
#define DITMOS_ERR_BAD_VERSION 2u
#define DITMOS_ERR_BAD_TYPE 3u
#define DITMOS_ERR_BAD_LENGTH 4u
#define DITMOS_ERR_TOO_LONG 5u
#define DITMOS_ERR_BAD_SEQUENCE 6u
#define DITMOS_ERR_TIMEOUT 7u
#define DITMOS_ERR_INFER_FAILED 8u
#define DITMOS_ERR_NO_RAW 9u
#define DITMOS_ERR_BAD_OFFSET 10u

/* Kinds of raw input in a RAW request. */
#define DITMOS_RAW_FLOAT 1u
#define DITMOS_RAW_I16 2u
#define DITMOS_RAW_AUDIO 3u

/* cost_kind values in HELLO_OK. */
#define DITMOS_COST_CYCLES 0u
#define DITMOS_COST_INSTRUCTIONS 1u
#define DITMOS_COST_NONE 2u
/* host wall clock (host board) */
#define DITMOS_COST_NANOSECONDS 3u

/* model_kind values in HELLO_OK (appended field): what INFER_OK's route means.
 * DITMOS: selector + K classifiers, route = the classifier chosen;
 * NETWORK: one network with N exits, route = the exit taken. */
#define DITMOS_KIND_DITMOS 0u
#define DITMOS_KIND_NETWORK 1u

/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout. */
uint16_t ditmos_crc16(uint16_t crc, const uint8_t *data, size_t len);
#define DITMOS_CRC16_INIT 0xFFFFu

/* A complete, CRC-checked frame.  `payload` points into the parser's buffer
 * and stays valid until the next call to ditmos_parser_feed(). */
typedef struct {
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint16_t length;
    const uint8_t *payload;
} ditmos_frame_t;

/* A rejected frame: the ERROR code and detail to answer with. */
typedef struct {
    uint8_t code;
    uint16_t detail;
    uint16_t seq; /* the frame's sequence number, or 0 if the header was incomplete */
} ditmos_error_t;

typedef enum {
    DITMOS_FEED_MORE = 0,  /* byte consumed, nothing to report */
    DITMOS_FEED_FRAME = 1, /* *frame holds a complete, valid frame */
    DITMOS_FEED_ERROR = 2  /* *error holds why a frame was dropped */
} ditmos_feed_t;

typedef struct {
    uint8_t state;
    uint16_t pos;  /* bytes stored in buf */
    uint16_t need; /* total frame length once the header is known */
    uint8_t buf[DITMOS_MAX_FRAME];
} ditmos_parser_t;

void ditmos_parser_init(ditmos_parser_t *p);
ditmos_feed_t ditmos_parser_feed(ditmos_parser_t *p, uint8_t byte,
                                 ditmos_frame_t *frame, ditmos_error_t *error);
/* Non-zero while a frame has started (sync marker seen) but not completed. */
int ditmos_parser_busy(const ditmos_parser_t *p);
/* Drop a partial frame after the inter-byte timeout.  Returns 1 and fills
 * *error (TIMEOUT, detail = bytes received) if a frame had started. */
int ditmos_parser_timeout(ditmos_parser_t *p, ditmos_error_t *error);

/* Frame encoding: the caller writes the payload at out + DITMOS_HEADER_SIZE,
 * then ditmos_frame_finish() writes header and CRC around it and returns the
 * total frame length, or 0 if it does not fit in `cap`. */
size_t ditmos_frame_finish(uint8_t *out, size_t cap, uint8_t type, uint16_t seq,
                           uint16_t payload_len);

/* Little-endian field writers used to build payloads; each returns p + size. */
uint8_t *ditmos_put_u8(uint8_t *p, uint8_t v);
uint8_t *ditmos_put_u16(uint8_t *p, uint16_t v);
uint8_t *ditmos_put_u32(uint8_t *p, uint32_t v);

#endif /* DITMOS_PROTOCOL_H */
