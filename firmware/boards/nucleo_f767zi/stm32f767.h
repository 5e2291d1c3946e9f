/* STM32F767ZI peripheral registers used by the Nucleo-F767ZI board.
 *
 * Written for this project from RM0410 (STM32F76xxx/STM32F77xxx reference
 * manual, Rev 4); each block cites its section.  Only what the board uses.
 */
#ifndef DITMOS_STM32F767_H
#define DITMOS_STM32F767_H

#include "armv7m.h"

/* RM0410 2.2.2 Memory map and register boundary addresses (Table 1). */
#define FLASH_R_BASE 0x40023C00u
#define RCC_BASE 0x40023800u
#define PWR_BASE 0x40007000u
#define GPIOB_BASE 0x40020400u
#define GPIOD_BASE 0x40020C00u
#define USART3_BASE 0x40004800u

/* RM0410 3.7.1 Flash access control register (FLASH_ACR). */
#define FLASH_ACR REG32(FLASH_R_BASE + 0x00u)
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ARTEN (1u << 9)
/* RM0410 3.3.2 Table 7: 2.7-3.6 V, 210 < HCLK <= 216 MHz needs 7 wait states. */
#define FLASH_LATENCY_216MHZ_3V3 7u

/* RM0410 4.4.1 PWR power control register (PWR_CR1). */
#define PWR_CR1 REG32(PWR_BASE + 0x00u)
#define PWR_CR1_VOS_SCALE1 (3u << 14)
#define PWR_CR1_ODEN (1u << 16)
#define PWR_CR1_ODSWEN (1u << 17)
/* RM0410 4.4.2 PWR power control/status register (PWR_CSR1). */
#define PWR_CSR1 REG32(PWR_BASE + 0x04u)
#define PWR_CSR1_ODRDY (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)

/* RM0410 5.3.1 RCC clock control register (RCC_CR). */
#define RCC_CR REG32(RCC_BASE + 0x00u)
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_HSEBYP (1u << 18)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
/* RM0410 5.3.2 RCC PLL configuration register (RCC_PLLCFGR). */
#define RCC_PLLCFGR REG32(RCC_BASE + 0x04u)
#define RCC_PLLCFGR_M(m) ((uint32_t)(m) << 0)        /* PLLM[5:0], VCO input = src / M */
#define RCC_PLLCFGR_N(n) ((uint32_t)(n) << 6)        /* PLLN[8:0], VCO = input * N */
#define RCC_PLLCFGR_P_DIV2 (0u << 16)                /* PLLP[1:0] = 00: SYSCLK = VCO / 2 */
#define RCC_PLLCFGR_SRC_HSE (1u << 22)
#define RCC_PLLCFGR_Q(q) ((uint32_t)(q) << 24)       /* PLLQ[3:0], 48 MHz domain */
#define RCC_PLLCFGR_R(r) ((uint32_t)(r) << 28)       /* PLLR[2:0] (DSI), keep its reset value */
/* RM0410 5.3.3 RCC clock configuration register (RCC_CFGR). */
#define RCC_CFGR REG32(RCC_BASE + 0x08u)
#define RCC_CFGR_SW_MASK (3u << 0)
#define RCC_CFGR_SW_HSI (0u << 0)
#define RCC_CFGR_SW_PLL (2u << 0)
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_HSI (0u << 2)
#define RCC_CFGR_SWS_HSE (1u << 2)
#define RCC_CFGR_SWS_PLL (2u << 2)
#define RCC_CFGR_HPRE_DIV1 (0u << 4)   /* HPRE[3:0]: 0xxx = /1, 1000.. = /2../512 */
#define RCC_CFGR_PPRE1_DIV1 (0u << 10) /* PPRE1[2:0]: 0xx = /1, 1xx = /2 << xx */
#define RCC_CFGR_PPRE1_DIV4 (5u << 10) /* APB1 <= 54 MHz */
#define RCC_CFGR_PPRE2_DIV1 (0u << 13)
#define RCC_CFGR_PPRE2_DIV2 (4u << 13) /* APB2 <= 108 MHz */
/* RM0410 5.3.10 RCC AHB1 peripheral clock enable register (RCC_AHB1ENR). */
#define RCC_AHB1ENR REG32(RCC_BASE + 0x30u)
#define RCC_AHB1ENR_GPIOBEN (1u << 1)
#define RCC_AHB1ENR_GPIODEN (1u << 3)
/* RM0410 5.3.13 RCC APB1 peripheral clock enable register (RCC_APB1ENR). */
#define RCC_APB1ENR REG32(RCC_BASE + 0x40u)
#define RCC_APB1ENR_USART3EN (1u << 18)
#define RCC_APB1ENR_PWREN (1u << 28)

/* RM0410 6.4 GPIO registers. */
#define GPIO_MODER(base) REG32((base) + 0x00u)   /* 6.4.1 */
#define GPIO_OSPEEDR(base) REG32((base) + 0x08u) /* 6.4.3 */
#define GPIO_ODR(base) REG32((base) + 0x14u)     /* 6.4.6 */
#define GPIO_AFRH(base) REG32((base) + 0x24u)    /* 6.4.10 */
#define GPIO_MODE_OUTPUT 1u
#define GPIO_MODE_AF 2u
#define GPIO_AF7_USART 7u

/* RM0410 34.8 USART registers. */
#define USART_CR1(base) REG32((base) + 0x00u) /* 34.8.1 */
#define USART_CR1_UE (1u << 0)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR3(base) REG32((base) + 0x08u) /* 34.8.3 */
#define USART_CR3_OVRDIS (1u << 12)
#define USART_BRR(base) REG32((base) + 0x0Cu) /* 34.8.4, oversampling by 16 */
#define USART_ISR(base) REG32((base) + 0x1Cu) /* 34.8.8 */
#define USART_ISR_ORE (1u << 3)
#define USART_ISR_RXNE (1u << 5)
#define USART_ISR_TC (1u << 6)
#define USART_ISR_TXE (1u << 7)
#define USART_ICR(base) REG32((base) + 0x20u) /* 34.8.9 */
#define USART_ICR_ERRORS 0xFu                 /* PECF | FECF | NCF | ORECF */
#define USART_RDR(base) REG32((base) + 0x24u) /* 34.8.10 */
#define USART_TDR(base) REG32((base) + 0x28u) /* 34.8.11 */

/* RM0410 10.1.2 Table 40: vector table of the STM32F76xxx. */
#define STM32F7_IRQ_COUNT 110u
#define USART3_IRQn 39u

#endif /* DITMOS_STM32F767_H */
