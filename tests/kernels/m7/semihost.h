/* Arm semihosting calls (BKPT 0xAB) for the kernel test binaries. */
#ifndef KERNEL_TEST_SEMIHOST_H
#define KERNEL_TEST_SEMIHOST_H

#include <stdint.h>

static inline uint32_t sh_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static inline void sh_write0(const char *s)
{
    sh_call(0x04, s); /* SYS_WRITE0 */
}

__attribute__((noreturn)) static inline void sh_exit(int code)
{
    const uint32_t block[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit */
    sh_call(0x20, block);                                  /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

#endif
