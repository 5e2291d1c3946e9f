/* STM32F767 clock bring-up (RM0410 5.2 clock tree, 4.1.4 over-drive
 * sequence, 3.3.2 flash wait states); see stm32f767_clock.h.
 *
 * Build with -DDITMOS_CLOCK_FORCE_TIMEOUT=<F7_CLOCK_* bits> to make those
 * waits time out at once (exercises the fallback on a real board).
 */
#include "stm32f767_clock.h"

#include "stm32f767.h"

#ifndef DITMOS_CLOCK_FORCE_TIMEOUT
#define DITMOS_CLOCK_FORCE_TIMEOUT 0u
#endif

#define HSE_HZ 8000000u
#define HSI_HZ 16000000u
#define VCO_IN_HZ 2000000u

/* Wait until (reg & mask) == want; 0 on timeout.  `what` is the status bit
 * a timeout stands for (forced timeouts skip the wait). */
static int wait_for(volatile uint32_t *reg, uint32_t mask, uint32_t want, uint8_t what)
{
    if (DITMOS_CLOCK_FORCE_TIMEOUT & what) return 0;
    for (uint32_t i = 0; i < F7_CLOCK_SPINS; ++i) {
        if ((*reg & mask) == want) return 1;
    }
    return 0;
}

static uint32_t apb_divisor(uint32_t ppre) /* RM0410 5.3.3 PPRE1/PPRE2 encoding */
{
    return (ppre & 4u) ? 2u << (ppre & 3u) : 1u;
}

static uint32_t ahb_divisor(uint32_t hpre) /* RM0410 5.3.3 HPRE encoding */
{
    static const uint16_t div[8] = {2u, 4u, 8u, 16u, 64u, 128u, 256u, 512u};
    return (hpre & 8u) ? div[hpre & 7u] : 1u;
}

f7_clocks_t f7_clock_read(void)
{
    f7_clocks_t c;
    uint32_t cfgr = RCC_CFGR, sws = cfgr & RCC_CFGR_SWS_MASK, sysclk;

    if (sws == RCC_CFGR_SWS_PLL) {
        uint32_t pll = RCC_PLLCFGR;
        uint32_t src = (pll & RCC_PLLCFGR_SRC_HSE) ? HSE_HZ : HSI_HZ;
        uint32_t m = pll & 0x3Fu, n = (pll >> 6) & 0x1FFu, p = 2u * (((pll >> 16) & 3u) + 1u);
        sysclk = m ? (src / m) * n / p : 0u;
    } else if (sws == RCC_CFGR_SWS_HSE) {
        sysclk = HSE_HZ;
    } else {
        sysclk = HSI_HZ;
    }
    c.core_hz = sysclk / ahb_divisor((cfgr >> 4) & 0xFu);
    c.apb1_hz = c.core_hz / apb_divisor((cfgr >> 10) & 7u);
    c.status = 0;
    return c;
}

/* HSEBYP may only change while HSE is off (RM0410 5.3.1): two writes. */
static void hse_off(void)
{
    RCC_CR &= ~RCC_CR_HSEON;
    RCC_CR &= ~RCC_CR_HSEBYP;
}

/* Back to the reset clock: HSI, no prescalers, PLL/over-drive/HSE off.  The
 * flash wait states stay (more than 16 MHz needs is always safe). */
static void run_from_hsi(void)
{
    RCC_CR |= RCC_CR_HSION;
    (void)wait_for(&RCC_CR, RCC_CR_HSIRDY, RCC_CR_HSIRDY, 0u); /* on since reset */
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_HSI;
    (void)wait_for(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_HSI, 0u);
    RCC_CFGR = RCC_CFGR_SW_HSI | RCC_CFGR_HPRE_DIV1 | RCC_CFGR_PPRE1_DIV1 | RCC_CFGR_PPRE2_DIV1;
    RCC_CR &= ~RCC_CR_PLLON;
    /* Over-drive off in the reverse order of turning it on (switch, then regulator). */
    PWR_CR1 &= ~PWR_CR1_ODSWEN;
    (void)wait_for(&PWR_CSR1, PWR_CSR1_ODSWRDY, 0u, 0u);
    PWR_CR1 &= ~PWR_CR1_ODEN;
    (void)wait_for(&PWR_CSR1, PWR_CSR1_ODRDY, 0u, 0u);
    hse_off();
}

f7_clocks_t f7_clock_init(void)
{
    uint8_t status = 0;
    uint32_t source = RCC_PLLCFGR_SRC_HSE, pllm = HSE_HZ / VCO_IN_HZ;
    f7_clocks_t c;

    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR;
    PWR_CR1 |= PWR_CR1_VOS_SCALE1;

    RCC_CR |= RCC_CR_HSEBYP;
    RCC_CR |= RCC_CR_HSEON;
    if (!wait_for(&RCC_CR, RCC_CR_HSERDY, RCC_CR_HSERDY, F7_CLOCK_HSE_TIMEOUT)) {
        hse_off(); /* no ST-LINK clock: PLL from HSI */
        status |= F7_CLOCK_HSE_TIMEOUT;
        source = 0u;
        pllm = HSI_HZ / VCO_IN_HZ;
    }
    /* 2 MHz VCO input, VCO 432 MHz, SYSCLK = VCO / 2 = 216 MHz, 48 MHz = VCO / 9. */
    RCC_PLLCFGR = source | RCC_PLLCFGR_M(pllm) | RCC_PLLCFGR_N(216u) | RCC_PLLCFGR_P_DIV2 |
                  RCC_PLLCFGR_Q(9u) | RCC_PLLCFGR_R(2u);
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_for(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY, F7_CLOCK_PLL_TIMEOUT)) {
        status |= F7_CLOCK_PLL_TIMEOUT;
    }
    if (!status || status == F7_CLOCK_HSE_TIMEOUT) {
        PWR_CR1 |= PWR_CR1_ODEN;
        if (!wait_for(&PWR_CSR1, PWR_CSR1_ODRDY, PWR_CSR1_ODRDY, F7_CLOCK_OVERDRIVE_TIMEOUT)) {
            status |= F7_CLOCK_OVERDRIVE_TIMEOUT;
        } else {
            PWR_CR1 |= PWR_CR1_ODSWEN;
            if (!wait_for(&PWR_CSR1, PWR_CSR1_ODSWRDY, PWR_CSR1_ODSWRDY,
                          F7_CLOCK_OVERDRIVE_TIMEOUT)) {
                status |= F7_CLOCK_OVERDRIVE_TIMEOUT;
            }
        }
    }
    if (!(status & ~F7_CLOCK_HSE_TIMEOUT)) {
        FLASH_ACR = FLASH_LATENCY_216MHZ_3V3 | FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN;
        if ((FLASH_ACR & FLASH_ACR_LATENCY_MASK) != FLASH_LATENCY_216MHZ_3V3 ||
            (DITMOS_CLOCK_FORCE_TIMEOUT & F7_CLOCK_FLASH_LATENCY)) {
            status |= F7_CLOCK_FLASH_LATENCY;
        }
    }
    if (!(status & ~F7_CLOCK_HSE_TIMEOUT)) {
        RCC_CFGR = RCC_CFGR_HPRE_DIV1 | RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2;
        RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_PLL;
        if (!wait_for(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL,
                      F7_CLOCK_SWITCH_TIMEOUT)) {
            status |= F7_CLOCK_SWITCH_TIMEOUT;
        }
    }
    if (status & ~F7_CLOCK_HSE_TIMEOUT) {
        run_from_hsi();
        status |= F7_CLOCK_ON_HSI;
    }
    c = f7_clock_read();
    c.status = status;
    return c;
}

uint32_t f7_usart_brr(uint32_t pclk_hz, uint32_t baud)
{
    return (pclk_hz + baud / 2u) / baud;
}
