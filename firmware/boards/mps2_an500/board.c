/* ARM MPS2 AN500 (Cortex-M7) as emulated by QEMU's `mps2-an500` machine:
 * CMSDK APB UART0, SysTick from the 25 MHz system clock, semihosting exit,
 * instruction counting through the project's TCG plugin (no cycle counter:
 * QEMU does not model DWT CYCCNT).
 *
 * Register facts from ARM DDI0479 (Cortex-M System Design Kit TRM, 4.3 UART)
 * and AN500 (MPS2 Cortex-M7 FPGA image: memory map and interrupt map).
 */
#include "armv7m.h"
#include "ditmos_board.h"
#include "ditmos_protocol.h"

#ifndef DITMOS_UART_BAUD
#define DITMOS_UART_BAUD 115200u
#endif

#define SYSCLK_HZ 25000000u

/* DDI0479 4.3.2 APB UART registers. */
#define UART0_BASE 0x40004000u
#define UART_DATA REG32(UART0_BASE + 0x00u)
#define UART_STATE REG32(UART0_BASE + 0x04u)
#define UART_STATE_TX_FULL (1u << 0)
#define UART_STATE_RX_FULL (1u << 1)
#define UART_CTRL REG32(UART0_BASE + 0x08u)
#define UART_CTRL_TX_EN (1u << 0)
#define UART_CTRL_RX_EN (1u << 1)
#define UART_CTRL_RX_INT_EN (1u << 3)
#define UART_INTCLEAR REG32(UART0_BASE + 0x0Cu)
#define UART_INT_RX (1u << 1)
#define UART_BAUDDIV REG32(UART0_BASE + 0x10u)
/* AN500 interrupt map: UART0 receive is IRQ 0. */
#define UART0_RX_IRQn 0u
#define MPS2_IRQ_COUNT 32u

/* Semihosting (ARM IHI 0033: SYS_EXIT_EXTENDED, reason ADP_Stopped_ApplicationExit). */
#define SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define FAULT_EXIT_CODE 3

static void UART0_RX_IRQHandler(void)
{
    /* Clear first, then drain: a byte that lands after the drain raises the
     * interrupt again.  (Draining first loses that byte's interrupt, and the
     * UART then holds it forever with no interrupt pending.) */
    UART_INTCLEAR = UART_INT_RX;
    while (UART_STATE & UART_STATE_RX_FULL) cortex_rx_push((uint8_t)UART_DATA);
}

void board_init(void)
{
    UART_BAUDDIV = SYSCLK_HZ / DITMOS_UART_BAUD;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISER(0) = 1u << UART0_RX_IRQn;
    cortex_systick_start(SYSCLK_HZ);
    __asm volatile("cpsie i" ::: "memory");
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (UART_STATE & UART_STATE_TX_FULL) {
        }
        UART_DATA = data[i];
    }
}

uint32_t board_cycles(void) { return 0; }
uint32_t board_core_clock_hz(void) { return SYSCLK_HZ; }
uint8_t board_clock_status(void) { return 0; } /* a fixed clock: nothing to bring up */
uint8_t board_cost_kind(void) { return DITMOS_COST_INSTRUCTIONS; }
const char *board_name(void) { return "mps2_an500"; }
void board_heartbeat(void) {}

/* The instruction-count marker.  QEMU's plugin API v1 cannot read registers
 * (and its memory callbacks do not fire for this guest in QEMU 7.2), so the id
 * travels as an address: ditmos_mark(id) calls entry `id` of a sled of 256
 * one-instruction functions (`bx lr`, 2 bytes each).  The plugin
 * (firmware/tools/ditmos_insn_plugin.c) puts an execution callback on each
 * sled instruction and logs `mark <(pc - sled) / 2> <instructions so far>`. */
#define MARK_IDS 256u
__attribute__((naked, used, aligned(4))) void ditmos_mark_sled(void)
{
    __asm volatile(".rept 256\n\tbx lr\n\t.endr");
}

/* A measured region (inference, input pipeline) runs with interrupts masked:
 * QEMU's SysTick follows the host's clock, so a 1 ms tick (or a retransmitted
 * frame's bytes) landing inside a region would add its handler's instructions
 * to that sample's count at random.  Masked, the interrupt stays pending and
 * is taken right after the region's end mark, outside the count; the UART
 * holds the byte (QEMU stops feeding it until the data register is read). */
__attribute__((noinline, used)) void ditmos_mark(uint32_t id)
{
    if (id < MARK_IDS) {
        void (*entry)(void) = (void (*)(void))((uintptr_t)ditmos_mark_sled + 2u * id);
        if (id == DITMOS_MARK_INFER_BEGIN || id == DITMOS_MARK_PREPARE_BEGIN)
            __asm volatile("cpsid i" ::: "memory");
        entry();
        if (id == DITMOS_MARK_INFER_END || id == DITMOS_MARK_PREPARE_END)
            __asm volatile("cpsie i" ::: "memory");
    }
}

void board_exit(int code)
{
    volatile uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    register uint32_t r0 __asm("r0") = SYS_EXIT_EXTENDED;
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}

/* In the emulator a fault ends the run with a distinct exit code, so a test
 * sees it instead of a silent reboot loop. */
void board_fault(void) { board_exit(FAULT_EXIT_CODE); }

extern uint32_t _estack[];
__attribute__((section(".isr_vector"), used)) const struct {
    void *initial_sp;
    isr_t core[15];
    isr_t irq[MPS2_IRQ_COUNT];
} vector_table = {
    _estack,
    {Reset_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
     Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler,
     SysTick_Handler},
    {[UART0_RX_IRQn] = UART0_RX_IRQHandler, [1 ... MPS2_IRQ_COUNT - 1] = Default_Handler},
};
