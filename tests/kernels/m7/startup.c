/* Minimal bare-metal start for QEMU mps2-an500 (Cortex-M7) used by the
 * kernel tests: vector table, .bss zeroing, FPU enable, semihosting I/O. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __bss_start__, __bss_end__, __stack_top__;
int main(void);

void Reset_Handler(void);
static void fault_handler(void)
{
    sh_write0("kernel test: fault\n");
    sh_exit(3);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack_top__), Reset_Handler, fault_handler, fault_handler,
    fault_handler, fault_handler, fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0,
    fault_handler, fault_handler,
};

void Reset_Handler(void)
{
    for (uint32_t *p = &__bss_start__; p < &__bss_end__; ++p) {
        *p = 0;
    }
    /* CPACR: full access to CP10/CP11 (FPU) */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm__ volatile("dsb\n isb" ::: "memory");
    sh_exit(main());
}
