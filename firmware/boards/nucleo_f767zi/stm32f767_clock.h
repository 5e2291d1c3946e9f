/* STM32F767 clock bring-up with bounded waits and a known fallback.
 *
 * Pure register code (stm32f767.h), no board I/O, so that it also compiles on
 * the host against a register model (tests/firmware/clock_model.c), where the
 * ready flags can be made to never come.
 */
#ifndef DITMOS_STM32F767_CLOCK_H
#define DITMOS_STM32F767_CLOCK_H

#include <stdint.h>

/* Bring-up status bits (HELLO_OK clock_status, docs/protocol.md). */
#define F7_CLOCK_HSE_TIMEOUT 0x01u       /* no 8 MHz from the ST-LINK: PLL fed by HSI */
#define F7_CLOCK_PLL_TIMEOUT 0x02u       /* the PLL never locked */
#define F7_CLOCK_OVERDRIVE_TIMEOUT 0x04u /* over-drive ready/switch never came */
#define F7_CLOCK_FLASH_LATENCY 0x08u     /* the flash wait states did not read back */
#define F7_CLOCK_SWITCH_TIMEOUT 0x10u    /* the system clock never switched to the PLL */
#define F7_CLOCK_ON_HSI 0x80u            /* fallback taken: running from HSI (16 MHz) */

/* Upper bound of every ready-flag wait, in polling iterations: at least
 * ~0.2 s at the 16 MHz the chip starts with (ST's HAL allows 100 ms for HSE,
 * 2 ms for the PLL, 1 s for over-drive; the flags come within microseconds). */
#define F7_CLOCK_SPINS 1000000u

typedef struct {
    uint32_t core_hz; /* SYSCLK = HCLK, read back from the clock tree */
    uint32_t apb1_hz; /* USART3's kernel clock (PCLK1) */
    uint8_t status;   /* F7_CLOCK_* bits; 0 = 216 MHz from HSE as designed */
} f7_clocks_t;

/* 216 MHz from HSE bypass (or from HSI when HSE is missing) through the PLL
 * with over-drive; on any timeout, back to HSI at 16 MHz with APB1 undivided. */
f7_clocks_t f7_clock_init(void);

/* The clocks the registers say the chip runs at now. */
f7_clocks_t f7_clock_read(void);

/* USART BRR for oversampling by 16, rounded to nearest. */
uint32_t f7_usart_brr(uint32_t pclk_hz, uint32_t baud);

#endif /* DITMOS_STM32F767_CLOCK_H */
