/* The Nucleo's clock bring-up (firmware/boards/nucleo_f767zi/stm32f767_clock.c)
 * compiled for the host against a model of the registers it touches.
 *
 * Every register access goes through model_reg(), which first updates the
 * read-only status bits the way the chip would (ready flags follow their
 * enable bits, SWS follows SW) unless the scenario says that flag never comes.
 * An access to any other address aborts.  Prints one JSON object.
 *
 * usage: clock_model hse pll od odsw flash switch   (each 0 or 1: does it work)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static volatile uint32_t *model_reg(uint32_t addr);
#define REG32(addr) (*model_reg((uint32_t)(addr)))

#include "stm32f767_clock.c"

enum { CR, PLLCFGR, CFGR, AHB1ENR, APB1ENR, PWRCR1, PWRCSR1, ACR, NREGS };
static const uint32_t addrs[NREGS] = {
    RCC_BASE + 0x00u, RCC_BASE + 0x04u, RCC_BASE + 0x08u, RCC_BASE + 0x30u,
    RCC_BASE + 0x40u, PWR_BASE + 0x00u, PWR_BASE + 0x04u, FLASH_R_BASE + 0x00u};
static volatile uint32_t regs[NREGS];
static uint32_t sws;              /* the switch status the chip reports */
static int works[6];              /* hse, pll, od, odsw, flash, switch */
static unsigned long accesses;

static uint32_t prev_cr, prev_pllcfgr = 0x24003010u, prev_pwr;

/* RM0410 sequencing rules, checked on every access against the state at the
 * previous access (so a single write that breaks one is caught). */
static void check_rules(void)
{
    const char *broken = NULL;
    uint32_t cr = regs[CR];
    if ((prev_cr & RCC_CR_HSEON) && ((prev_cr ^ cr) & RCC_CR_HSEBYP))
        broken = "HSEBYP changed while HSE was on (5.3.1)";
    if ((prev_cr & RCC_CR_PLLON) && regs[PLLCFGR] != prev_pllcfgr)
        broken = "PLLCFGR written while the PLL was on (5.3.2)";
    if ((prev_cr & RCC_CR_PLLON) && !(cr & RCC_CR_PLLON) && sws == 2u)
        broken = "PLL turned off while it clocked the system (5.3.1)";
    if ((prev_cr & RCC_CR_HSEON) && !(cr & RCC_CR_HSEON) && sws == 1u)
        broken = "HSE turned off while it clocked the system (5.3.1)";
    if (broken) {
        printf("{\"error\": \"%s\"}\n", broken);
        exit(2);
    }
    prev_cr = cr;
    prev_pllcfgr = regs[PLLCFGR];
}

static volatile uint32_t *model_reg(uint32_t addr)
{
    int r = -1;
    check_rules();
    for (int i = 0; i < NREGS; ++i) {
        if (addrs[i] == addr) r = i;
    }
    if (r < 0) {
        printf("{\"error\": \"unexpected register 0x%08x\"}\n", (unsigned)addr);
        exit(2);
    }
    ++accesses;
    uint32_t cr = regs[CR];
    cr = (cr & ~RCC_CR_HSIRDY) | ((cr & RCC_CR_HSION) ? RCC_CR_HSIRDY : 0u);
    cr = (cr & ~RCC_CR_HSERDY) | ((works[0] && (cr & RCC_CR_HSEON)) ? RCC_CR_HSERDY : 0u);
    cr = (cr & ~RCC_CR_PLLRDY) | ((works[1] && (cr & RCC_CR_PLLON)) ? RCC_CR_PLLRDY : 0u);
    regs[CR] = cr;
    uint32_t pwr = regs[PWRCR1], csr = 0;
    if (works[2] && (pwr & PWR_CR1_ODEN)) csr |= PWR_CSR1_ODRDY;
    if (works[3] && (csr & PWR_CSR1_ODRDY) && (pwr & PWR_CR1_ODSWEN)) csr |= PWR_CSR1_ODSWRDY;
    regs[PWRCSR1] = csr;
    if (!works[4]) regs[ACR] &= ~FLASH_ACR_LATENCY_MASK; /* the write does not stick */
    uint32_t sw = regs[CFGR] & RCC_CFGR_SW_MASK;
    if (sw == 0u || (works[5] && sw == 2u && (cr & RCC_CR_PLLRDY))) {
        if (sw == 2u && sws != 2u) { /* entering 216 MHz: RM0410 3.3.2, 4.1.4, 5.2 */
            const char *broken = NULL;
            uint32_t cfgr = regs[CFGR];
            if ((regs[ACR] & FLASH_ACR_LATENCY_MASK) < 7u) broken = "fewer than 7 wait states";
            if ((pwr & PWR_CR1_VOS_SCALE1) != PWR_CR1_VOS_SCALE1) broken = "not voltage scale 1";
            if (!(csr & PWR_CSR1_ODSWRDY)) broken = "over-drive not active";
            if (((cfgr >> 10) & 7u) < 5u) broken = "APB1 above 54 MHz";
            if (((cfgr >> 13) & 7u) < 4u) broken = "APB2 above 108 MHz";
            if (broken) {
                printf("{\"error\": \"switched to 216 MHz with %s\"}\n", broken);
                exit(2);
            }
        }
        sws = sw;
    }
    if (sws == 2u && !(pwr & PWR_CR1_ODSWEN) && (prev_pwr & PWR_CR1_ODSWEN)) {
        printf("{\"error\": \"over-drive switched off while at 216 MHz\"}\n");
        exit(2);
    }
    prev_pwr = pwr;
    regs[CFGR] = (regs[CFGR] & ~RCC_CFGR_SWS_MASK) | (sws << 2);
    return &regs[r];
}

int main(int argc, char **argv)
{
    if (argc != 7) return 2;
    for (int i = 0; i < 6; ++i) works[i] = atoi(argv[i + 1]);
    regs[CR] = RCC_CR_HSION | RCC_CR_HSIRDY; /* reset values (RM0410 5.3) */
    regs[PLLCFGR] = 0x24003010u;
    prev_cr = regs[CR];
    f7_clocks_t c = f7_clock_init();
    check_rules(); /* the last write too */
    unsigned long init_accesses = accesses;
    f7_clocks_t now = f7_clock_read();
    printf("{\"core_hz\": %u, \"apb1_hz\": %u, \"status\": %u, \"brr\": %u, "
           "\"read_core_hz\": %u, \"read_apb1_hz\": %u, \"cfgr\": %u, \"cr\": %u, "
           "\"pwr_cr1\": %u, \"pllcfgr\": %u, \"accesses\": %lu}\n",
           (unsigned)c.core_hz, (unsigned)c.apb1_hz, (unsigned)c.status,
           (unsigned)f7_usart_brr(c.apb1_hz, 115200u), (unsigned)now.core_hz,
           (unsigned)now.apb1_hz, (unsigned)regs[CFGR], (unsigned)regs[CR],
           (unsigned)regs[PWRCR1], (unsigned)regs[PLLCFGR], init_accesses);
    return 0;
}
