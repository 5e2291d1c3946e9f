/* dtm_conv1d_packed_s8 (Cortex-M7): dtm_conv1d_s8 / dtm_fully_connected_s8 over one
 * constant stream re-laid out offline (layout in ditmos_kernels.h, packer in
 * ditmos/codegen/variants.py).  Same bytes as the reference kernels.
 *
 * Register blocking: four output channels x one time step per tile.  Each
 * input word is loaded once and sign-extended once (SXTB16, SXTB16 ROR 8)
 * and feeds eight SMLADs; the eight int16 weight pairs it meets arrive
 * ready-made with two LDMs: 13 instructions per 16 MACs.  When the output
 * channels leave a remainder of 1 or 2 after the groups of four, that
 * remainder is one two-channel group (one LDM, four SMLADs: 8 instructions
 * per 8 MACs) instead of a four-channel group of mostly zero channels.  Bias (input
 * offsets folded in) and the requantisation constants sit in the same stream
 * around each group's weights, so a tile is one pass over one pointer; the
 * requantisation is SMMLAR + sign fix + shift + SSAT per output.  Uneven
 * window lengths overlap their first word (zero weights there), so every
 * word goes through the same unrolled loop; windows reaching into SAME
 * padding are copied into a small buffer filled with the zero point. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__ARM_FEATURE_DSP)
/* the tile uses every general register: never reserve r7 */
#pragma GCC optimize("omit-frame-pointer")
#endif
#include <string.h>

#include "ditmos_kernels.h"
#include "ditmos_cm7_dot.h"

#define PK_UNROLL 16

/* 1 when the channels left after the groups of 4 (1 or 2) form one
 * two-channel group; channel counts leaving 3 pad a last group of 4. */
static int32_t pk_pair_tail(int32_t O)
{
    return (O & 3) == 1 || (O & 3) == 2;
}

/* Groups of 4 output channels (the last one padded when O % 4 == 3). */
static int32_t pk_groups4(int32_t O)
{
    return pk_pair_tail(O) ? O / 4 : (O + 3) / 4;
}

/* Words of one group of `width` channels in the stream: 2 bias[width], per
 * window word 2 x width pairs, requant[width][3]. */
static int32_t pk_group_words(const dtm_conv1d_packed_s8_params_t *p, int32_t width)
{
    int32_t words = 0;
    for (int32_t q = 0; q < p->num_parts; ++q) {
        words += (p->kernel_size * p->channels[q] + 3) / 4;
    }
    return width + 2 * width * words + 3 * width;
}

#if CM7_USE_ASM
/* the SMLADs of one input word (halves in r4, r5): four channels, weights
 * by two LDMs, or two channels, weights by one LDM */
#define PK_MAC4                                                                  \
    "ldm r12!, {r8, r9, r10, r11}\n\t"                                          \
    "smlad r0, r4, r8, r0\n\t"                                                  \
    "smlad r1, r4, r9, r1\n\t"                                                  \
    "smlad r2, r4, r10, r2\n\t"                                                 \
    "smlad r3, r4, r11, r3\n\t"                                                 \
    "ldm r12!, {r8, r9, r10, r11}\n\t"                                          \
    "smlad r0, r5, r8, r0\n\t"                                                  \
    "smlad r1, r5, r9, r1\n\t"                                                  \
    "smlad r2, r5, r10, r2\n\t"                                                 \
    "smlad r3, r5, r11, r3\n\t"
#define PK_MAC2                                                                  \
    "ldm r12!, {r8, r9, r10, r11}\n\t"                                          \
    "smlad r0, r4, r8, r0\n\t"                                                  \
    "smlad r1, r4, r9, r1\n\t"                                                  \
    "smlad r0, r5, r10, r0\n\t"                                                 \
    "smlad r1, r5, r11, r1\n\t"
#define PK_WORD(MAC)                                                             \
    "ldr r5, [r6], #4\n\t"                                                      \
    "sxtb16 r4, r5\n\t"                                                         \
    "sxtb16 r5, r5, ror #8\n\t" MAC
/* two outputs: accumulators A, B; constants {hb, multiplier, e} of both
 * channels in one LDM */
#define PK_REQUANT2(A, B)                                                        \
    "ldm r12!, {r4, r5, r8, r9, r10, r11}\n\t"                                  \
    "smmlar r4, " A ", r5, r4\n\t"                                              \
    "smmlar r9, " B ", r10, r9\n\t"                                             \
    "add r4, r4, " A ", asr #31\n\t"                                            \
    "add r9, r9, " B ", asr #31\n\t"                                            \
    "asr r4, r4, r8\n\t"                                                        \
    "asr r9, r9, r11\n\t"                                                       \
    "ssat r4, #8, r4\n\t"                                                       \
    "ssat r9, #8, r9\n\t"                                                       \
    "strb r4, [r6], #1\n\t"                                                     \
    "strb r9, [r6], #1\n\t"
#define PK_E(n) "2" #n "f+1"
#define PK_F(n) "4" #n "f+1"

/*
 * `steps` time steps x `groups` groups of 4 (or 2) channels, all in assembly.
 * run[] (32-bit words): per part {head step, window, window end, entry
 * block}, then the final record f0..f7 = {0, output, groups left, bytes
 * from f3 back to run[0], groups, steps left, output skip per step, stream},
 * then the per-step window advance of each part.  Registers: r0-r3
 * accumulators, r4/r5 input halves, r6 input, r7 run record, r8-r11
 * weights, r12 stream, lr window end.  PK_RUN_ASM(name, MAC, BIAS, REQUANT)
 * defines the pass for one group width.
 */
#define PK_RUN_ASM(NAME, MAC, BIAS, REQUANT)                                                         \
static void NAME(uint32_t *run, const int32_t *stream)                                               \
{                                                                                                    \
    register uint32_t *d __asm__("r7") = run;                                                        \
    register const int32_t *s __asm__("r12") = stream;                                               \
    __asm__ volatile(                                                                                \
        /* prologue: each part's entry block index -> its address (Thumb bit) */                     \
        "mov r5, r7\n\t"                                                                             \
        "adr r6, 3f\n\t"                                                                             \
        "60:\n\t"                                                                                    \
        "ldr r4, [r5]\n\t"                                                                           \
        "cbz r4, 0f\n\t"                                                                             \
        "ldr r4, [r5, #12]\n\t"                                                                      \
        "ldr r4, [r6, r4, lsl #2]\n\t"                                                               \
        "str r4, [r5, #12]\n\t"                                                                      \
        "adds r5, r5, #16\n\t"                                                                       \
        "b 60b\n\t"                                                                                  \
        ".p2align 2\n\t"                                                                             \
        "3:\n\t"                                                                                     \
        ".word " PK_E(0) "," PK_E(1) "," PK_E(2) "," PK_E(3) "\n\t"                                  \
        ".word " PK_E(4) "," PK_E(5) "," PK_E(6) "," PK_E(7) "\n\t"                                  \
        ".word " PK_F(0) "," PK_F(1) "," PK_F(2) "," PK_F(3) "\n\t"                                  \
        ".word " PK_F(4) "," PK_F(5) "," PK_F(6) "," PK_F(7) ", 49f+1\n\t"                           \
        /* next group of the same time step */                                                       \
        "5:\n\t"                                                                                     \
        "stmdb r7, {r6, lr}\n\t"           /* f1 = output, f2 = groups left */                       \
        "ldr r4, [r7]\n\t"                                                                           \
        "sub r7, r7, r4\n\t"               /* back to part 0 */                                      \
        "0:\n\t"                                                                                     \
        BIAS                                                                                         \
        "ldm r7!, {r4, r6, lr}\n\t"        /* first part: step, window, end */                       \
        "1:\n\t"                                                                                     \
        /* head word at byte 0; the next word starts at byte `step` */                               \
        "ldr r5, [r6]\n\t"                                                                           \
        "add r6, r6, r4\n\t"                                                                         \
        "sxtb16 r4, r5\n\t"                                                                          \
        "sxtb16 r5, r5, ror #8\n\t" MAC                                                              \
        /* the other words, PK_UNROLL per iteration, entered so that the                             \
         * count works out (entry PK_UNROLL: no other words) */                                      \
        "ldr pc, [r7], #4\n\t"            /* entry address (see the prologue) */                     \
        "20:\n\t" PK_WORD(MAC) "21:\n\t" PK_WORD(MAC) "22:\n\t" PK_WORD(MAC) "23:\n\t" PK_WORD(MAC)  \
        "24:\n\t" PK_WORD(MAC) "25:\n\t" PK_WORD(MAC) "26:\n\t" PK_WORD(MAC) "27:\n\t" PK_WORD(MAC)  \
        "40:\n\t" PK_WORD(MAC) "41:\n\t" PK_WORD(MAC) "42:\n\t" PK_WORD(MAC) "43:\n\t" PK_WORD(MAC)  \
        "44:\n\t" PK_WORD(MAC) "45:\n\t" PK_WORD(MAC) "46:\n\t" PK_WORD(MAC) "47:\n\t" PK_WORD(MAC)  \
        "cmp r6, lr\n\t"                                                                             \
        "bne 20b\n\t"                                                                                \
        "49:\n\t"                                                                                    \
        "ldm r7!, {r4, r6, lr}\n\t"        /* next part, or the final record */                      \
        "cmp r4, #0\n\t"                                                                             \
        "bne 1b\n\t"                                                                                 \
        /* final record: r6 = output, lr = groups left; requant constants follow */                  \
        REQUANT                                                                                      \
        "subs lr, lr, #1\n\t"                                                                        \
        "bne 5b\n\t"                                                                                 \
        /* time step done; r7 = &f3 */                                                               \
        "ldr r4, [r7, #8]\n\t"                                                                       \
        "subs r4, r4, #1\n\t"                                                                        \
        "beq 9f\n\t"                                                                                 \
        "str r4, [r7, #8]\n\t"             /* steps left */                                          \
        "ldr r4, [r7, #12]\n\t"                                                                      \
        "add r6, r6, r4\n\t"               /* next output row */                                     \
        "ldr lr, [r7, #4]\n\t"                                                                       \
        "stmdb r7, {r6, lr}\n\t"           /* f1 = output, f2 = groups */                            \
        "ldr r12, [r7, #16]\n\t"           /* stream from the start */                               \
        "add r5, r7, #20\n\t"              /* window advances */                                     \
        "ldr r4, [r7]\n\t"                                                                           \
        "sub r7, r7, r4\n\t"                                                                         \
        "mov r8, r7\n\t"                                                                             \
        "7:\n\t"                                                                                     \
        "ldr r4, [r5], #4\n\t"                                                                       \
        "ldrd r9, r10, [r8, #4]\n\t"                                                                 \
        "add r9, r9, r4\n\t"                                                                         \
        "add r10, r10, r4\n\t"                                                                       \
        "strd r9, r10, [r8, #4]\n\t"                                                                 \
        "ldr r4, [r8, #16]!\n\t"                                                                     \
        "cmp r4, #0\n\t"                                                                             \
        "bne 7b\n\t"                                                                                 \
        "b 0b\n\t"                                                                                   \
        "9:\n\t"                                                                                     \
        : "+r"(d), "+r"(s)                                                                           \
        :                                                                                            \
        : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "lr", "cc",            \
          "memory");                                                                                 \
}

PK_RUN_ASM(pk_run_asm4, PK_MAC4, "ldm r12!, {r0, r1, r2, r3}\n\t",
           PK_REQUANT2("r0", "r1") PK_REQUANT2("r2", "r3"))
PK_RUN_ASM(pk_run_asm2, PK_MAC2, "ldm r12!, {r0, r1}\n\t", PK_REQUANT2("r0", "r1"))
/* Two channels x two time steps (t, t + 1) per tile, for the two-channel
 * group: each int16 weight pair is loaded once (one LDM per input word) and
 * feeds both steps, the second step's word is read at the window plus the
 * step advance (lr), and the per-step bookkeeping runs once per two steps:
 * 15 instructions per 16 MACs.  run[] (32-bit words): per part {head step,
 * window, window end, entry block, step advance}, then the final record
 * f0..f5 = {0, output, out_channels - 2, step pairs left, bytes from f0
 * back to run[0], stream}.  Registers: r0/r1 step t, r2/r3 step t + 1,
 * r4/r5 input halves, r6 input, r7 run record, r8-r11 weights, r12 stream,
 * lr step advance. */
#define PK_WORD22                                                                \
    "ldr r5, [r6, lr]\n\t"                                                      \
    "ldm r12!, {r8, r9, r10, r11}\n\t"                                          \
    "sxtb16 r4, r5\n\t"                                                         \
    "sxtb16 r5, r5, ror #8\n\t"                                                 \
    "smlad r2, r4, r8, r2\n\t"                                                  \
    "smlad r3, r4, r9, r3\n\t"                                                  \
    "smlad r2, r5, r10, r2\n\t"                                                 \
    "smlad r3, r5, r11, r3\n\t"                                                 \
    "ldr r5, [r6], #4\n\t"                                                      \
    "sxtb16 r4, r5\n\t"                                                         \
    "sxtb16 r5, r5, ror #8\n\t"                                                 \
    "smlad r0, r4, r8, r0\n\t"                                                  \
    "smlad r1, r4, r9, r1\n\t"                                                  \
    "smlad r0, r5, r10, r0\n\t"                                                 \
    "smlad r1, r5, r11, r1\n\t"

static void pk_pair2_asm(uint32_t *run, const int32_t *stream)
{
    register uint32_t *d __asm__("r7") = run;
    register const int32_t *s __asm__("r12") = stream;
    __asm__ volatile(
        /* prologue: each part's entry block index -> its address (Thumb bit) */
        "mov r5, r7\n\t"
        "adr r6, 3f\n\t"
        "60:\n\t"
        "ldr r4, [r5]\n\t"
        "cbz r4, 0f\n\t"
        "ldr r4, [r5, #12]\n\t"
        "ldr r4, [r6, r4, lsl #2]\n\t"
        "str r4, [r5, #12]\n\t"
        "adds r5, r5, #20\n\t"
        "b 60b\n\t"
        ".p2align 2\n\t"
        "3:\n\t"
        ".word " PK_E(0) "," PK_E(1) "," PK_E(2) "," PK_E(3) "\n\t"
        ".word " PK_E(4) "," PK_E(5) "," PK_E(6) "," PK_E(7) "\n\t"
        ".word " PK_F(0) "," PK_F(1) "," PK_F(2) "," PK_F(3) "\n\t"
        ".word " PK_F(4) "," PK_F(5) "," PK_F(6) "," PK_F(7) ", 49f+1\n\t"
        /* a pair of time steps: both start from the bias */
        "0:\n\t"
        "ldm r12!, {r0, r1}\n\t"
        "mov r2, r0\n\t"
        "mov r3, r1\n\t"
        "1:\n\t"
        /* a part: head words of both steps, then the other words */
        "ldr r6, [r7, #4]\n\t"
        "ldr lr, [r7, #16]\n\t"
        "ldm r12!, {r8, r9, r10, r11}\n\t"
        "ldr r5, [r6]\n\t"
        "sxtb16 r4, r5\n\t"
        "sxtb16 r5, r5, ror #8\n\t"
        "smlad r0, r4, r8, r0\n\t"
        "smlad r1, r4, r9, r1\n\t"
        "smlad r0, r5, r10, r0\n\t"
        "smlad r1, r5, r11, r1\n\t"
        "ldr r5, [r6, lr]\n\t"
        "sxtb16 r4, r5\n\t"
        "sxtb16 r5, r5, ror #8\n\t"
        "smlad r2, r4, r8, r2\n\t"
        "smlad r3, r4, r9, r3\n\t"
        "smlad r2, r5, r10, r2\n\t"
        "smlad r3, r5, r11, r3\n\t"
        "ldr r4, [r7], #12\n\t"          /* head step; r7 -> entry */
        "add r6, r6, r4\n\t"
        "ldr pc, [r7], #8\n\t"           /* entry; r7 -> the next record */
        "20:\n\t" PK_WORD22 "21:\n\t" PK_WORD22 "22:\n\t" PK_WORD22 "23:\n\t" PK_WORD22
        "24:\n\t" PK_WORD22 "25:\n\t" PK_WORD22 "26:\n\t" PK_WORD22 "27:\n\t" PK_WORD22
        "40:\n\t" PK_WORD22 "41:\n\t" PK_WORD22 "42:\n\t" PK_WORD22 "43:\n\t" PK_WORD22
        "44:\n\t" PK_WORD22 "45:\n\t" PK_WORD22 "46:\n\t" PK_WORD22 "47:\n\t" PK_WORD22
        "ldr r4, [r7, #-12]\n\t"         /* this part's window end */
        "cmp r6, r4\n\t"
        "bne 20b\n\t"
        "49:\n\t"
        "ldr r4, [r7]\n\t"               /* next part, or the final record */
        "cmp r4, #0\n\t"
        "bne 1b\n\t"
        /* final record: outputs of step t at f1, of step t + 1 one row on */
        "ldr r6, [r7, #4]\n\t"
        PK_REQUANT2("r0", "r1")
        "sub r12, r12, #24\n\t"          /* the same constants again */
        "ldr r4, [r7, #8]\n\t"
        "add r6, r6, r4\n\t"
        PK_REQUANT2("r2", "r3")
        "ldr r4, [r7, #8]\n\t"
        "add r6, r6, r4\n\t"
        "str r6, [r7, #4]\n\t"           /* output of the next pair */
        "ldr r4, [r7, #12]\n\t"
        "subs r4, r4, #1\n\t"
        "beq 9f\n\t"
        "str r4, [r7, #12]\n\t"          /* pairs left */
        "ldr r12, [r7, #20]\n\t"         /* stream from the start */
        "ldr r4, [r7, #16]\n\t"
        "sub r7, r7, r4\n\t"             /* back to part 0 */
        "mov r8, r7\n\t"
        "7:\n\t"                         /* windows and ends two steps on */
        "ldr r4, [r8, #16]\n\t"
        "ldrd r9, r10, [r8, #4]\n\t"
        "add r9, r9, r4, lsl #1\n\t"
        "add r10, r10, r4, lsl #1\n\t"
        "strd r9, r10, [r8, #4]\n\t"
        "ldr r4, [r8, #20]!\n\t"
        "cmp r4, #0\n\t"
        "bne 7b\n\t"
        "b 0b\n\t"
        "9:\n\t"
        : "+r"(d), "+r"(s)
        :
        : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "lr", "cc",
          "memory");
}
#undef PK_WORD22

/* `pairs` pairs of time steps of the two-channel group (output y, the
 * channels' first byte in each row). */
static void pk_run_pair2(const dtm_conv1d_packed_s8_params_t *p, const int8_t *const win[],
                         const int32_t adv[], int8_t *y, int32_t pairs, const int32_t *stream)
{
    uint32_t run[5 * DITMOS_CONV_MAX_PARTS + 6];
    const int32_t np = p->num_parts;
    uint32_t *r = run;
    for (int32_t q = 0; q < np; ++q, r += 5) {
        const int32_t more = (p->kernel_size * p->channels[q] - p->head[q]) / 4;
        r[0] = (uint32_t)p->head[q];
        r[1] = (uint32_t)(uintptr_t)win[q];
        r[2] = (uint32_t)(uintptr_t)(win[q] + p->kernel_size * p->channels[q]);
        r[3] = (uint32_t)(more == 0 ? PK_UNROLL : (PK_UNROLL - more % PK_UNROLL) % PK_UNROLL);
        r[4] = (uint32_t)adv[q];
    }
    r[0] = 0;
    r[1] = (uint32_t)(uintptr_t)y;
    r[2] = (uint32_t)(p->out_channels - 2);
    r[3] = (uint32_t)pairs;
    r[4] = (uint32_t)(4 * 5 * np);
    r[5] = (uint32_t)(uintptr_t)stream;
    pk_pair2_asm(run, stream);
}
#undef PK_WORD
#undef PK_MAC4
#undef PK_MAC2
#undef PK_RUN_ASM
#undef PK_REQUANT2
#undef PK_E
#undef PK_F

/* steps x groups tiles of `width` (4 or 2) channels from windows win[]
 * (advancing adv[] per step). */
static void pk_run(const dtm_conv1d_packed_s8_params_t *p, const int8_t *const win[],
                   const int32_t adv[], int8_t *y, int32_t steps, int32_t groups,
                   int32_t y_skip, const int32_t *stream, int32_t width)
{
    uint32_t run[5 * DITMOS_CONV_MAX_PARTS + 8];
    const int32_t np = p->num_parts;
    uint32_t *r = run;
    for (int32_t q = 0; q < np; ++q, r += 4) {
        const int32_t more = (p->kernel_size * p->channels[q] - p->head[q]) / 4;
        r[0] = (uint32_t)p->head[q];
        r[1] = (uint32_t)(uintptr_t)win[q];
        r[2] = (uint32_t)(uintptr_t)(win[q] + p->kernel_size * p->channels[q]);
        r[3] = (uint32_t)(more == 0 ? PK_UNROLL : (PK_UNROLL - more % PK_UNROLL) % PK_UNROLL);
    }
    r[0] = 0;
    r[1] = (uint32_t)(uintptr_t)y;
    r[2] = (uint32_t)groups;
    r[3] = (uint32_t)(4 * (4 * np + 3));
    r[4] = (uint32_t)groups;
    r[5] = (uint32_t)steps;
    r[6] = (uint32_t)y_skip;
    r[7] = (uint32_t)(uintptr_t)stream;
    for (int32_t q = 0; q < np; ++q) {
        r[8 + q] = (uint32_t)adv[q];
    }
    if (width == 4) {
        pk_run_asm4(run, stream);
    } else {
        pk_run_asm2(run, stream);
    }
}
#else
static inline void pk_word(uint32_t xv, const int32_t *w, int32_t acc[4], int32_t width)
{
    const uint32_t lo = cm7_sxtb16(xv), hi = cm7_sxtb16_ror8(xv);
    for (int32_t j = 0; j < width; ++j) {
        acc[j] = cm7_smlad(lo, (uint32_t)w[j], acc[j]);
        acc[j] = cm7_smlad(hi, (uint32_t)w[width + j], acc[j]);
    }
}

/* SMMLAR: a + (x * m + 2^31) >> 32 */
static inline int32_t pk_smmlar(int32_t x, int32_t m, int32_t a)
{
    const int64_t v = (int64_t)((uint64_t)(uint32_t)a << 32) + (int64_t)x * m +
                      (INT64_C(1) << 31);
    return (int32_t)(v >> 32);
}

static void pk_run(const dtm_conv1d_packed_s8_params_t *p, const int8_t *const win[],
                   const int32_t adv[], int8_t *y, int32_t steps, int32_t groups,
                   int32_t y_skip, const int32_t *stream, int32_t width)
{
    const int32_t np = p->num_parts;
    for (int32_t t = 0; t < steps; ++t, y += y_skip) {
        const int32_t *s = stream;
        for (int32_t g = 0; g < groups; ++g) {
            int32_t acc[4] = {0, 0, 0, 0};
            for (int32_t j = 0; j < width; ++j) {
                acc[j] = s[j];
            }
            s += width;
            for (int32_t q = 0; q < np; ++q) {
                const int8_t *x = win[q] + t * adv[q];
                const int8_t *end = x + p->kernel_size * p->channels[q];
                pk_word(cm7_read4(x), s, acc, width);
                s += 2 * width;
                for (x += p->head[q]; x < end; x += 4) {
                    pk_word(cm7_read4(x), s, acc, width);
                    s += 2 * width;
                }
            }
            for (int32_t j = 0; j < width; ++j, s += 3) {
                const int32_t v =
                    (pk_smmlar(acc[j], s[1], s[0]) + (acc[j] < 0 ? -1 : 0)) >> s[2];
                *y++ = (int8_t)cm7_ssat8(v);
            }
        }
    }
}
#endif

/* Clamp bytes already saturated to [-128, 127] to [act_min, act_max]. */
static void pk_clamp(const dtm_conv1d_packed_s8_params_t *p, int8_t *y, int32_t n)
{
    for (int32_t j = 0; j < n; ++j) {
        const int32_t v = y[j] < p->act_min ? p->act_min : y[j];
        y[j] = (int8_t)(v > p->act_max ? p->act_max : v);
    }
}

/* One time step without writing past its output row (a padded last group
 * goes through a small buffer). */
static void pk_step(const dtm_conv1d_packed_s8_params_t *p, const int8_t *const win[],
                    const int32_t adv[], int8_t *y)
{
    const int32_t O = p->out_channels, full = O / DITMOS_PACKED_GROUP;
    const int32_t gw4 = pk_group_words(p, DITMOS_PACKED_GROUP);
    if (full > 0) {
        pk_run(p, win, adv, y, 1, full, 0, p->stream, DITMOS_PACKED_GROUP);
    }
    if (O % DITMOS_PACKED_GROUP != 0) {
        const int32_t width = pk_pair_tail(O) ? 2 : DITMOS_PACKED_GROUP;
        int8_t tail[DITMOS_PACKED_GROUP];
        pk_run(p, win, adv, tail, 1, 1, 0, p->stream + full * gw4, width);
        memcpy(y + full * DITMOS_PACKED_GROUP, tail, (size_t)(O % DITMOS_PACKED_GROUP));
    }
}

/* An output whose window reaches into the padding: the windows are copied,
 * each part padded with its zero point (so the offset-folded bias stays
 * right), into a buffer that only this function's frame holds. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void pk_edge_step(const dtm_conv1d_packed_s8_params_t *p, const int8_t *const inputs[],
                         const int32_t adv[], int32_t origin, int8_t *y)
{
    int8_t buf[DITMOS_PACKED_EDGE_BYTES];
    const int8_t *win[DITMOS_CONV_MAX_PARTS];
    int8_t *dst = buf;
    for (int32_t q = 0; q < p->num_parts; ++q) {
        const int32_t C = p->channels[q];
        win[q] = dst;
        for (int32_t k = 0; k < p->kernel_size; ++k, dst += C) {
            const int32_t pos = origin + k;
            if (pos >= 0 && pos < p->in_len) {
                memcpy(dst, inputs[q] + pos * C, (size_t)C);
            } else {
                memset(dst, p->zero_point[q], (size_t)C);
            }
        }
    }
    pk_step(p, win, adv, y);
}

void dtm_conv1d_packed_s8(const dtm_conv1d_packed_s8_params_t *params,
                      const int8_t *const inputs[], int8_t *output)
{
    const dtm_conv1d_packed_s8_params_t *p = params;
    const int32_t K = p->kernel_size, S = p->stride, O = p->out_channels, np = p->num_parts;
    const int32_t groups = pk_groups4(O), pair = pk_pair_tail(O);
    const int32_t padded = groups * DITMOS_PACKED_GROUP + 2 * pair;
    const int32_t *const pair_stream = p->stream + groups * pk_group_words(p, DITMOS_PACKED_GROUP);
    int32_t adv[DITMOS_CONV_MAX_PARTS];
    const int8_t *win[DITMOS_CONV_MAX_PARTS];
    for (int32_t q = 0; q < np; ++q) {
        adv[q] = S * p->channels[q];
    }
    /* interior steps [t_lo, t_hi): t*S - pad >= 0 and t*S - pad + K <= in_len */
    int32_t t_lo = (p->pad + S - 1) / S;
    int32_t t_hi = p->in_len - K + p->pad >= 0 ? (p->in_len - K + p->pad) / S + 1 : 0;
    t_hi = t_hi > p->out_len ? p->out_len : t_hi;
    t_lo = t_lo > t_hi ? t_hi : t_lo;
    /* a padded last group spills padded - O bytes into the next row, which
     * is computed (rewritten) later: one pass runs every interior step whose
     * spill stays inside the output.  The two-channel group runs first, so
     * the groups of 4 rewrite whatever it spilled into their channels. */
    const int32_t spill_rows = (padded - O + O - 1) / O;
    const int32_t run_hi = t_hi < p->out_len - spill_rows ? t_hi : p->out_len - spill_rows;
    for (int32_t t = 0; t < p->out_len; ++t) {
        const int32_t origin = t * S - p->pad;
        int8_t *y = output + t * O;
        if (t == t_lo && run_hi > t_lo) {
            for (int32_t q = 0; q < np; ++q) {
                win[q] = inputs[q] + origin * p->channels[q];
            }
            if (pair) {
                int8_t *const y2 = y + groups * DITMOS_PACKED_GROUP;
                int32_t done = 0;
#if CM7_USE_ASM
                done = (run_hi - t_lo) & ~1;
                if (done > 0) {
                    pk_run_pair2(p, win, adv, y2, done / 2, pair_stream);
                }
#endif
                if (done < run_hi - t_lo) {
                    const int8_t *rest[DITMOS_CONV_MAX_PARTS];
                    for (int32_t q = 0; q < np; ++q) {
                        rest[q] = win[q] + done * adv[q];
                    }
                    pk_run(p, rest, adv, y2 + done * O, run_hi - t_lo - done, 1, O - 2, pair_stream, 2);
                }
            }
            if (groups > 0) {
                pk_run(p, win, adv, y, run_hi - t_lo, groups, O - groups * DITMOS_PACKED_GROUP,
                       p->stream, DITMOS_PACKED_GROUP);
            }
            t = run_hi - 1;
        } else if (t >= t_lo && t < t_hi) {
            for (int32_t q = 0; q < np; ++q) {
                win[q] = inputs[q] + origin * p->channels[q];
            }
            pk_step(p, win, adv, y);
        } else {
            pk_edge_step(p, inputs, adv, origin, y);
        }
    }
    if (p->act_min > INT8_MIN || p->act_max < INT8_MAX) { /* SSAT gave [-128, 127] */
        pk_clamp(p, output, p->out_len * O);
    }
}
