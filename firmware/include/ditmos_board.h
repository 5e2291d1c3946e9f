/* The board layer: everything the runtime needs from a target.
 *
 * One C file per board implements it (firmware/boards/<board>/board.c);
 * facts such as memory sizes, clock and compiler flags live in
 * ditmos/boards/boards.json.  The runtime never touches a register itself.
 */
#ifndef DITMOS_BOARD_H
#define DITMOS_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Clocks, caches, FPU, UART, tick; increments the boot counter. */
void board_init(void);

/* One received byte (0..255), -1 after `timeout_ms` without a byte, or
 * -2 if the link is closed for good (host board only). */
int board_uart_getc(uint32_t timeout_ms);
/* Blocking write; returns when every byte has left the transmitter. */
void board_uart_write(const uint8_t *data, size_t len);

uint32_t board_millis(void);       /* monotonic milliseconds since boot */
uint32_t board_cycles(void);       /* cost counter: CPU cycles, host nanoseconds, 0 where none */
uint32_t board_core_clock_hz(void); /* the clock the core actually runs at */
/* Clock bring-up: 0 = as designed; else board-specific bits (docs/protocol.md
 * HELLO_OK clock_status), bit 7 = running from a fallback clock. */
uint8_t board_clock_status(void);
uint8_t board_cost_kind(void);     /* DITMOS_COST_* (docs/protocol.md HELLO_OK) */
const char *board_name(void);
uint32_t board_boot_counter(void); /* 1 on the first boot, +1 on every reset */
void board_memory_usage(uint32_t *flash_used, uint32_t *ram_used);
/* Stack size and bytes ever used (stack painting); zeros where unknown. */
void board_stack_usage(uint32_t *stack_size, uint32_t *high_water);
void board_heartbeat(void);        /* toggles an LED where there is one */

void board_reset(void) __attribute__((noreturn));
void board_exit(int code) __attribute__((noreturn));

/* Instruction-count marker (cost_kind 1): a call the emulator plugin sees,
 * with `id` readable by it.  A no-op on boards with a cycle counter. */
void ditmos_mark(uint32_t id);
#define DITMOS_MARK_INFER_BEGIN 0u
#define DITMOS_MARK_INFER_END 1u
#define DITMOS_MARK_LAYER_BASE 2u /* + layer index, after each profiled layer */
/* around the input pipeline of a RAW request, before mark 0 of its inference */
#define DITMOS_MARK_PREPARE_BEGIN 254u
#define DITMOS_MARK_PREPARE_END 255u

#endif /* DITMOS_BOARD_H */
