/* Nucleo-F767ZI (STM32F767ZI, Cortex-M7): 216 MHz from the ST-LINK's 8 MHz
 * clock (HSE bypass) through the PLL with over-drive (stm32f767_clock.c: every
 * wait bounded, HSI 16 MHz on failure), caches and FPU on, USART3 on PD8/PD9
 * (the ST-LINK virtual COM port) at the baud rate for the clock actually
 * reached, DWT cycle counter, heartbeat on LD1 (PB0); LD2 (PB7, blue) lights
 * when the clock bring-up fell short, LD3 (PB14) on a fault.
 */
#include "ditmos_board.h"
#include "ditmos_protocol.h"
#include "stm32f767.h"
#include "stm32f767_clock.h"

#ifndef DITMOS_UART_BAUD
#define DITMOS_UART_BAUD 115200u
#endif

/* Bound of a wait for the UART transmitter (polling iterations): one byte at
 * 1200 baud, the slowest `--baud`, takes 8.3 ms, a fraction of this bound even
 * at 216 MHz; a transmitter that never drains cannot hang the firmware. */
#define UART_SPINS 2000000u

#define LED_GREEN 0u  /* PB0, LD1 */
#define LED_BLUE 7u   /* PB7, LD2 */
#define LED_RED 14u   /* PB14, LD3 */

static f7_clocks_t clocks;

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
    RCC_APB1ENR |= RCC_APB1ENR_USART3EN;
    (void)RCC_APB1ENR;
    USART_CR1(USART3_BASE) = 0;
    USART_BRR(USART3_BASE) = f7_usart_brr(clocks.apb1_hz, DITMOS_UART_BAUD);
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
    clocks = f7_clock_init();
    cortex_enable_caches();
    cortex_enable_cycle_counter();
    gpio_init();
    if (clocks.status) GPIO_ODR(GPIOB_BASE) |= 1u << LED_BLUE;
    uart_init();
    cortex_systick_start(clocks.core_hz);
    __asm volatile("cpsie i" ::: "memory");
}

static int uart_wait(uint32_t flag)
{
    for (uint32_t i = 0; i < UART_SPINS; ++i) {
        if (USART_ISR(USART3_BASE) & flag) return 1;
    }
    return 0;
}

void board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        if (!uart_wait(USART_ISR_TXE)) return; /* a stuck transmitter: drop, never hang */
        USART_TDR(USART3_BASE) = data[i];
    }
    (void)uart_wait(USART_ISR_TC);
}

uint32_t board_cycles(void) { return DWT_CYCCNT; }
uint32_t board_core_clock_hz(void) { return clocks.core_hz; }
uint8_t board_clock_status(void) { return clocks.status; }
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
