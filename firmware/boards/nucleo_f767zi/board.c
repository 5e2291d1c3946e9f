/* Nucleo-F767ZI (STM32F767ZI, Cortex-M7): 216 MHz from the ST-LINK's 8 MHz
 * clock (HSE bypass) through the PLL with over-drive, caches and FPU on,
 * USART3 on PD8/PD9 (the ST-LINK virtual COM port), DWT cycle counter,
 * heartbeat on LD1 (PB0); LD3 (PB14) lights on a fault.
 */
#include "ditmos_board.h"
#include "ditmos_protocol.h"
#include "stm32f767.h"

#ifndef DITMOS_UART_BAUD
#define DITMOS_UART_BAUD 115200u
#endif

#define HSE_HZ 8000000u
#define HSI_HZ 16000000u
#define CORE_HZ 216000000u
#define APB1_HZ (CORE_HZ / 4u)
#define READY_SPINS 1000000u /* bounded waits: a missing clock never hangs the boot */

#define LED_GREEN 0u  /* PB0, LD1 */
#define LED_BLUE 7u   /* PB7, LD2 */
#define LED_RED 14u   /* PB14, LD3 */

static uint32_t core_hz = HSI_HZ;

static int wait_set(volatile uint32_t *reg, uint32_t mask)
{
    for (uint32_t i = 0; i < READY_SPINS; ++i) {
        if ((*reg & mask) == mask) return 1;
    }
    return 0;
}

/* RM0410 5.2 clocks; 4.1.4 over-drive sequence; 3.3.2 wait states. */
static void clock_init(void)
{
    uint32_t source = RCC_PLLCFGR_SRC_HSE, pllm = HSE_HZ / 2000000u;

    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR;
    PWR_CR1 |= PWR_CR1_VOS_SCALE1;

    RCC_CR |= RCC_CR_HSEBYP;
    RCC_CR |= RCC_CR_HSEON;
    if (!wait_set(&RCC_CR, RCC_CR_HSERDY)) { /* no ST-LINK clock: run from HSI instead */
        RCC_CR &= ~(RCC_CR_HSEON | RCC_CR_HSEBYP);
        source = 0;
        pllm = HSI_HZ / 2000000u;
    }
    /* 2 MHz VCO input, VCO 432 MHz, SYSCLK = VCO / 2 = 216 MHz, 48 MHz = VCO / 9. */
    RCC_PLLCFGR = source | RCC_PLLCFGR_M(pllm) | RCC_PLLCFGR_N(216u) | RCC_PLLCFGR_P_DIV2 |
                  RCC_PLLCFGR_Q(9u) | RCC_PLLCFGR_R(2u);
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY)) return; /* stay on HSI 16 MHz */

    PWR_CR1 |= PWR_CR1_ODEN;
    (void)wait_set(&PWR_CSR1, PWR_CSR1_ODRDY);
    PWR_CR1 |= PWR_CR1_ODSWEN;
    (void)wait_set(&PWR_CSR1, PWR_CSR1_ODSWRDY);

    FLASH_ACR = FLASH_LATENCY_216MHZ_3V3 | FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN;
    if ((FLASH_ACR & FLASH_ACR_LATENCY_MASK) != FLASH_LATENCY_216MHZ_3V3) return;

    RCC_CFGR = RCC_CFGR_HPRE_DIV1 | RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2;
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_PLL;
    if (wait_set(&RCC_CFGR, RCC_CFGR_SWS_PLL)) core_hz = CORE_HZ;
}

static void gpio_init(void)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOBEN | RCC_AHB1ENR_GPIODEN;
    (void)RCC_AHB1ENR;
    /* LEDs: push-pull outputs. */
    GPIO_MODER(GPIOB_BASE) = (GPIO_MODER(GPIOB_BASE) &
                              ~((3u << (2u * LED_GREEN)) | (3u << (2u * LED_BLUE)) |
                                (3u << (2u * LED_RED)))) |
                             (GPIO_MODE_OUTPUT << (2u * LED_GREEN)) |
                             (GPIO_MODE_OUTPUT << (2u * LED_BLUE)) |
                             (GPIO_MODE_OUTPUT << (2u * LED_RED));
    /* PD8 = USART3_TX, PD9 = USART3_RX, alternate function 7, high speed. */
    GPIO_MODER(GPIOD_BASE) = (GPIO_MODER(GPIOD_BASE) & ~(0xFu << 16)) |
                             (GPIO_MODE_AF << 16) | (GPIO_MODE_AF << 18);
    GPIO_OSPEEDR(GPIOD_BASE) |= 0xFu << 16;
    GPIO_AFRH(GPIOD_BASE) = (GPIO_AFRH(GPIOD_BASE) & ~0xFFu) | (GPIO_AF7_USART << 0) |
                            (GPIO_AF7_USART << 4);
}

static void uart_init(void)
{
    uint32_t pclk1 = core_hz == CORE_HZ ? APB1_HZ : core_hz;
    RCC_APB1ENR |= RCC_APB1ENR_USART3EN;
    (void)RCC_APB1ENR;
    USART_CR1(USART3_BASE) = 0;
    USART_BRR(USART3_BASE) = (pclk1 + DITMOS_UART_BAUD / 2u) / DITMOS_UART_BAUD;
    USART_CR3(USART3_BASE) = USART_CR3_OVRDIS;
    USART_CR1(USART3_BASE) = USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE | USART_CR1_UE;
    NVIC_ISER(USART3_IRQn / 32u) = 1u << (USART3_IRQn % 32u);
}

static void USART3_IRQHandler(void)
{
    uint32_t isr = USART_ISR(USART3_BASE);
    if (isr & USART_ISR_RXNE) cortex_rx_push((uint8_t)USART_RDR(USART3_BASE));
    USART_ICR(USART3_BASE) = USART_ICR_ERRORS;
}

void board_init(void)
{
    clock_init();
    cortex_enable_caches();
    cortex_enable_cycle_counter();
    gpio_init();
    uart_init();
    cortex_systick_start(core_hz);
    __asm volatile("cpsie i" ::: "memory");
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        while (!(USART_ISR(USART3_BASE) & USART_ISR_TXE)) {
        }
        USART_TDR(USART3_BASE) = data[i];
    }
    while (!(USART_ISR(USART3_BASE) & USART_ISR_TC)) {
    }
}

uint32_t board_cycles(void) { return DWT_CYCCNT; }
uint32_t board_core_clock_hz(void) { return core_hz; }
uint8_t board_cost_kind(void) { return DITMOS_COST_CYCLES; }
const char *board_name(void) { return "nucleo_f767zi"; }
void board_heartbeat(void) { GPIO_ODR(GPIOB_BASE) ^= 1u << LED_GREEN; }
void ditmos_mark(uint32_t id) { (void)id; }

void board_exit(int code)
{
    (void)code; /* nowhere to exit to on hardware: start again */
    board_reset();
}

void board_fault(void)
{
    GPIO_ODR(GPIOB_BASE) |= 1u << LED_RED;
    board_reset();
}

/* The vector table: initial stack pointer, 15 core exceptions, 110 IRQs
 * (RM0410 10.1.2 Table 40; PM0253 2.3.4 for the core part). */
extern uint32_t _estack[];
__attribute__((section(".isr_vector"), used)) const struct {
    void *initial_sp;
    isr_t core[15];
    isr_t irq[STM32F7_IRQ_COUNT];
} vector_table = {
    _estack,
    {Reset_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
     Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler,
     SysTick_Handler},
    {[0 ... USART3_IRQn - 1] = Default_Handler, [USART3_IRQn] = USART3_IRQHandler,
     [USART3_IRQn + 1 ... STM32F7_IRQ_COUNT - 1] = Default_Handler},
};
