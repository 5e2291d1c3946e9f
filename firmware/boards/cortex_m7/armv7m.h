/* Cortex-M7 core registers used by the ditmos boards.
 *
 * Addresses and bits from the ARMv7-M Architecture Reference Manual (DDI0403E)
 * and ST's PM0253 (STM32F7 / Cortex-M7 programming manual); section numbers
 * below are PM0253's.  Written for this project; no CMSIS.
 */
#ifndef DITMOS_ARMV7M_H
#define DITMOS_ARMV7M_H

#include <stdint.h>

#ifndef REG32 /* a host test may map registers onto a model (tests/firmware/clock_model.c) */
#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#endif

/* PM0253 4.4 System control block. */
#define SCB_VTOR REG32(0xE000ED08u)  /* 4.4.4 vector table offset */
#define SCB_AIRCR REG32(0xE000ED0Cu) /* 4.4.5 application interrupt and reset control */
#define SCB_AIRCR_VECTKEY (0x05FAu << 16)
#define SCB_AIRCR_SYSRESETREQ (1u << 2)
#define SCB_CCR REG32(0xE000ED14u) /* 4.4.7 configuration and control */
#define SCB_CCR_DC (1u << 16)      /* data cache enable */
#define SCB_CCR_IC (1u << 17)      /* instruction cache enable */
#define SCB_CCSIDR REG32(0xE000ED80u) /* 4.4.15 cache size ID */
#define SCB_CSSELR REG32(0xE000ED84u) /* 4.4.16 cache size selection */
#define SCB_CPACR REG32(0xE000ED88u)  /* 4.6.1 coprocessor access control (FPU) */
#define SCB_CPACR_CP10_CP11_FULL (0xFu << 20)
/* PM0253 4.8 cache maintenance operations. */
#define SCB_ICIALLU REG32(0xE000EF50u) /* invalidate all I-cache to PoU */
#define SCB_DCISW REG32(0xE000EF60u)   /* invalidate D-cache by set/way */

/* PM0253 4.5 SysTick timer. */
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE (1u << 2) /* processor clock */

/* PM0253 4.3 NVIC: interrupt set-enable registers. */
#define NVIC_ISER(n) REG32(0xE000E100u + 4u * (n))

/* ARMv7-M ARM C1.6.5 DEMCR and C1.8 DWT (PM0253 has no DWT chapter). */
#define DEMCR REG32(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL REG32(0xE0001000u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CYCCNT REG32(0xE0001004u)
#define DWT_LAR REG32(0xE0001FB0u) /* Cortex-M7 TRM: lock access, key 0xC5ACCE55 */
#define DWT_LAR_KEY 0xC5ACCE55u

static inline void dsb(void) { __asm volatile("dsb 0xF" ::: "memory"); }
static inline void isb(void) { __asm volatile("isb 0xF" ::: "memory"); }
static inline void wfi(void) { __asm volatile("wfi"); }

/* Shared Cortex-M7 services (cortex_m7.c). */
typedef void (*isr_t)(void);
void Reset_Handler(void) __attribute__((noreturn));
void cortex_start(void) __attribute__((noreturn)); /* C part of the reset handler */
void Default_Handler(void);
void SysTick_Handler(void);
void cortex_systick_start(uint32_t core_hz);  /* 1 kHz tick */
void cortex_enable_caches(void);
void cortex_enable_cycle_counter(void);
void cortex_rx_push(uint8_t byte);            /* from a UART receive interrupt */
void board_fault(void) __attribute__((noreturn)); /* per board: what a fault does */

#endif /* DITMOS_ARMV7M_H */
