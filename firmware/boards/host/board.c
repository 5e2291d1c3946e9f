/* The host board: the firmware runtime as a POSIX process, for tests and the
 * harness's fake device.
 *
 * The serial link is the process's standard input (bytes in) and standard
 * output (bytes out); the launcher (ditmos.boards.host.HostDevice) connects
 * both to a pseudo-terminal.  A RESET ends the process with exit code
 * DITMOS_HOST_RESET_EXIT (75) and the launcher starts it again.  The boot
 * counter, which lives in no-init RAM on a microcontroller, lives in the file
 * named by the environment variable DITMOS_HOST_STATE (4 bytes, little-endian);
 * without it every start is boot 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ditmos_board.h"
#include "ditmos_protocol.h"

#define DITMOS_HOST_RESET_EXIT 75

/* Optional, for tests of the hardware check (`ditmos selftest`): a cycle
 * counter driven by the monotonic clock.  DITMOS_HOST_CLOCK_HZ is the clock
 * HELLO states (0: no clock, no counter), DITMOS_HOST_CYCLE_HZ the rate the
 * counter really runs at (a board whose clock is not what it claims), and
 * DITMOS_HOST_CLOCK_STATUS the clock bring-up status HELLO reports. */
#ifndef DITMOS_HOST_CLOCK_HZ
#define DITMOS_HOST_CLOCK_HZ 0u
#endif
#ifndef DITMOS_HOST_CYCLE_HZ
#define DITMOS_HOST_CYCLE_HZ DITMOS_HOST_CLOCK_HZ
#endif
#ifndef DITMOS_HOST_CLOCK_STATUS
#define DITMOS_HOST_CLOCK_STATUS 0u
#endif

static struct timespec t0;
static uint32_t boot_counter = 1;

static uint32_t load_and_bump_boot_counter(void)
{
    const char *path = getenv("DITMOS_HOST_STATE");
    uint8_t b[4] = {0, 0, 0, 0};
    uint32_t count = 0;
    FILE *f;

    if (path == NULL || path[0] == '\0') return 1;
    f = fopen(path, "rb");
    if (f != NULL) {
        if (fread(b, 1, sizeof b, f) == sizeof b) {
            count = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
                    ((uint32_t)b[3] << 24);
        }
        fclose(f);
    }
    count++;
    (void)ditmos_put_u32(b, count);
    f = fopen(path, "wb");
    if (f != NULL) {
        (void)fwrite(b, 1, sizeof b, f);
        fclose(f);
    }
    return count;
}

void board_init(void)
{
    clock_gettime(CLOCK_MONOTONIC, &t0);
    boot_counter = load_and_bump_boot_counter();
}

int board_uart_getc(uint32_t timeout_ms)
{
    struct pollfd pfd;
    uint8_t byte;
    pfd.fd = STDIN_FILENO;
    pfd.events = POLLIN;
    pfd.revents = 0;
    int rc = poll(&pfd, 1, (int)timeout_ms);
    if (rc < 0) return errno == EINTR ? -1 : -2;
    if (rc == 0) return -1;
    ssize_t n = read(STDIN_FILENO, &byte, 1);
    if (n == 1) return byte;
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return -1;
    return -2; /* end of file or a dead link */
}

void board_uart_write(const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, data, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            exit(3); /* the link is gone: nothing left to talk to */
        }
        data += n;
        len -= (size_t)n;
    }
}

uint32_t board_millis(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
}

/* The cost counter: wall-clock nanoseconds since boot, modulo 2^32 (differences
 * are exact for anything shorter than 4.29 s), reported with cost_kind
 * NANOSECONDS.  A build that pretends to have a clock (DITMOS_HOST_CLOCK_HZ,
 * selftest tests) counts cycles at DITMOS_HOST_CYCLE_HZ instead and reports no
 * inference cost. */
uint32_t board_cycles(void)
{
    struct timespec t;
    uint64_t ns;
    clock_gettime(CLOCK_MONOTONIC, &t);
    ns = (uint64_t)(t.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t.tv_nsec - (uint64_t)t0.tv_nsec;
#if DITMOS_HOST_CLOCK_HZ
    return (uint32_t)(ns * (uint64_t)DITMOS_HOST_CYCLE_HZ / 1000000000u);
#else
    return (uint32_t)ns;
#endif
}

uint32_t board_core_clock_hz(void) { return DITMOS_HOST_CLOCK_HZ; }
uint8_t board_clock_status(void) { return DITMOS_HOST_CLOCK_STATUS; }
uint8_t board_cost_kind(void)
{
    return DITMOS_HOST_CLOCK_HZ ? DITMOS_COST_NONE : DITMOS_COST_NANOSECONDS;
}
const char *board_name(void) { return "host"; }
uint32_t board_boot_counter(void) { return boot_counter; }

void board_memory_usage(uint32_t *flash_used, uint32_t *ram_used)
{
    *flash_used = 0;
    *ram_used = 0;
}

void board_stack_usage(uint32_t *stack_size, uint32_t *high_water)
{
    *stack_size = 0;
    *high_water = 0;
}

void board_heartbeat(void) {}
void ditmos_mark(uint32_t id) { (void)id; }

void board_reset(void) { exit(DITMOS_HOST_RESET_EXIT); }
void board_exit(int code) { exit(code); }
