/* Start-up and services shared by the Cortex-M7 boards: reset handler, data
 * and bss initialisation, stack painting, the no-init boot counter, SysTick,
 * caches, the DWT cycle counter and the interrupt-fed receive ring.
 *
 * The memory layout comes from the linker script that `ditmos build` renders
 * (templates/linker.ld.j2) from ditmos/boards/boards.json.
 */
#include "armv7m.h"
#include "ditmos_board.h"

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _sarena[], _earena[];
extern uint32_t _sstack[], _estack[];
extern const uint32_t __isr_vector[]; /* start of .isr_vector (linker script) */
extern uint8_t __ditmos_flash_used[], __ditmos_ram_used[]; /* absolute symbols */

int main(void);

#define STACK_PAINT 0xA5A5A5A5u
#define STACK_PAINT_MARGIN 64u /* bytes below the live stack pointer left alone */
#define BOOT_MAGIC 0xD17B007Cu

/* Kept across resets: the linker puts .noinit in RAM without initialising it. */
static struct {
    uint32_t magic;
    uint32_t count;
} boot_record __attribute__((section(".noinit")));

static volatile uint32_t ms_ticks;

#define RX_RING 512u
static volatile uint8_t rx_ring[RX_RING];
static volatile uint16_t rx_head, rx_tail;

/* Reset: VTOR and the FPU first, in assembly, so that no compiler can place a
 * floating-point instruction (a register save, a memcpy of a double) before
 * CPACR enables the FPU; then C. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    /* The STM32F7 boots through its ITCM alias of the flash (VTOR = the boot
     * address); VTOR gets the table's own address. */
    __asm volatile(
        "ldr r0, =0xE000ED08\n\t"   /* SCB_VTOR */
        "ldr r1, =__isr_vector\n\t"
        "str r1, [r0]\n\t"
        "ldr r0, =0xE000ED88\n\t"   /* SCB_CPACR: CP10, CP11 full access */
        "ldr r1, [r0]\n\t"
        "orr r1, r1, #0x00F00000\n\t"
        "str r1, [r0]\n\t"
        "dsb 0xF\n\t"
        "isb 0xF\n\t"
        "b cortex_start\n\t"
        ".ltorg");
}

__attribute__((used, noreturn)) void cortex_start(void)
{
    uint32_t *src, *dst, *sp;

    for (src = _sidata, dst = _sdata; dst < _edata;) *dst++ = *src++;
    for (dst = _sbss; dst < _ebss;) *dst++ = 0;
    for (dst = _sarena; dst < _earena;) *dst++ = 0;

    __asm volatile("mov %0, sp" : "=r"(sp));
    for (dst = _sstack; dst < sp - STACK_PAINT_MARGIN / 4u;) *dst++ = STACK_PAINT;

    if (boot_record.magic != BOOT_MAGIC) {
        boot_record.magic = BOOT_MAGIC;
        boot_record.count = 0;
    }
    boot_record.count++;

    (void)main();
    board_exit(0);
}

void Default_Handler(void) { board_fault(); }

void SysTick_Handler(void) { ms_ticks++; }

void cortex_systick_start(uint32_t core_hz)
{
    SYST_RVR = core_hz / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_CLKSOURCE | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
}

void cortex_enable_caches(void)
{
    /* PM0253 4.8.6: invalidate, then enable. */
    dsb();
    isb();
    SCB_ICIALLU = 0;
    dsb();
    isb();
    SCB_CCR |= SCB_CCR_IC;
    dsb();
    isb();

    SCB_CSSELR = 0; /* level 1 data cache */
    dsb();
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    for (uint32_t set = 0; set < sets; ++set) {
        for (uint32_t way = 0; way < ways; ++way) {
            SCB_DCISW = (way << 30) | (set << 5); /* 4 ways, 32-byte lines on the M7 */
        }
    }
    dsb();
    SCB_CCR |= SCB_CCR_DC;
    dsb();
    isb();
}

void cortex_enable_cycle_counter(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = DWT_LAR_KEY;
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
}

void cortex_rx_push(uint8_t byte)
{
    uint16_t next = (uint16_t)((rx_head + 1u) % RX_RING);
    if (next != rx_tail) { /* full: drop (the host waits for answers, so it cannot happen) */
        rx_ring[rx_head] = byte;
        rx_head = next;
    }
}

int board_uart_getc(uint32_t timeout_ms)
{
    uint32_t start = ms_ticks;
    while (rx_head == rx_tail) {
        if (ms_ticks - start >= timeout_ms) return -1;
        wfi(); /* woken by the receive interrupt or the 1 ms tick */
    }
    uint8_t byte = rx_ring[rx_tail];
    rx_tail = (uint16_t)((rx_tail + 1u) % RX_RING);
    return byte;
}

uint32_t board_millis(void) { return ms_ticks; }

uint32_t board_boot_counter(void) { return boot_record.count; }

void board_memory_usage(uint32_t *flash_used, uint32_t *ram_used)
{
    *flash_used = (uint32_t)(uintptr_t)__ditmos_flash_used;
    *ram_used = (uint32_t)(uintptr_t)__ditmos_ram_used;
}

void board_stack_usage(uint32_t *stack_size, uint32_t *high_water)
{
    const uint32_t *p = _sstack;
    while (p < _estack && *p == STACK_PAINT) ++p;
    *stack_size = (uint32_t)((uintptr_t)_estack - (uintptr_t)_sstack);
    *high_water = (uint32_t)((uintptr_t)_estack - (uintptr_t)p);
}

void board_reset(void)
{
    dsb();
    SCB_AIRCR = SCB_AIRCR_VECTKEY | SCB_AIRCR_SYSRESETREQ;
    dsb();
    for (;;) {
    }
}
