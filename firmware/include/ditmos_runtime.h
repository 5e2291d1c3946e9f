/* The protocol runtime: request handling and the device main loop. */
#ifndef DITMOS_RUNTIME_H
#define DITMOS_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "ditmos_protocol.h"

/* Largest response payload: HELLO_OK with a 255-byte board name. */
#define DITMOS_MAX_RESPONSE DITMOS_MAX_FRAME

typedef struct {
    uint8_t have_last; /* 0 right after boot: any sequence number is accepted */
    uint16_t last_seq;
    uint32_t inferences;
    uint32_t errors;
} ditmos_session_t;

void ditmos_session_init(ditmos_session_t *s);

/* Handle one valid frame; writes the complete response frame into out and
 * returns its length.  *reset_after is set when the device must reset once
 * the response has been sent. */
size_t ditmos_handle_frame(ditmos_session_t *s, const ditmos_frame_t *frame,
                           uint8_t *out, size_t cap, int *reset_after);

/* Build an ERROR frame (and count it); returns its length. */
size_t ditmos_error_frame(ditmos_session_t *s, const ditmos_error_t *error,
                          uint8_t *out, size_t cap);

/* CERTIFY (ditmos_certify.c): the payload length a CERTIFY request must
 * have, read from its table size (header-only length if shorter). */
uint16_t ditmos_certify_length(const uint8_t *payload, uint16_t length);

/* Runs a CERTIFY request and writes CERTIFY_OK's payload at p; returns its
 * end, or NULL if the table is malformed or the model fails.  *n = inferences. */
uint8_t *ditmos_put_certify(const uint8_t *payload, uint8_t *p, uint32_t *n);

/* Runs one inference and writes INFER_OK's fields at p; returns their end,
 * or NULL if the model fails. */
uint8_t *ditmos_put_infer(const int8_t *input, uint8_t *p);

/* RAW (ditmos_raw.c): bytes of a complete raw input of `kind` in this
 * firmware (0: kind not built in). */
uint32_t ditmos_raw_total(uint8_t kind);

/* Checks a RAW request against the state of the raw buffer: 0, or an ERROR
 * code in *code with the detail returned. */
uint16_t ditmos_raw_check(const uint8_t *payload, uint16_t length, uint8_t *code);

/* Stores a checked RAW chunk and writes RAW_OK's payload at p; once the input
 * is complete, runs the input pipeline and the model (*ran = 1).  NULL if the
 * model fails. */
uint8_t *ditmos_put_raw(const uint8_t *payload, uint16_t length, uint8_t *p, int *ran);

/* The device main loop: never returns on a microcontroller; returns when the
 * host board's link closes. */
void ditmos_runtime_run(void);

/* Called by generated code built with -DDITMOS_PROFILE after each layer. */
void ditmos_profile_layer(uint16_t layer_index);

#endif /* DITMOS_RUNTIME_H */
