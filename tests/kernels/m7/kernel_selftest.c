/*
 * Kernel self-test and micro-benchmark, built for the host and for the
 * Cortex-M7 (QEMU mps2-an500).  The reference set keeps its names, the cm7
 * set is compiled with every kernel renamed cm7_<op>_s8, so one binary runs
 * both.  Self-test: random cases for every kernel, ref vs cm7 byte for byte,
 * plus an FNV-1a hash of all outputs (host and M7 must print the same).
 * Bench (DITMOS_BENCH): DiTMoS-shaped layers, each run once per set between
 * calls to bench_mark(), whose executions the QEMU plugin logs.
 */
#include <stdint.h>
#include <string.h>

#include "ditmos_kernels.h"

#ifdef __arm__
#include "semihost.h"
#define OUT(s) sh_write0(s)
#else
#include <stdio.h>
#define OUT(s) fputs((s), stdout)
#endif

#define CM7_DECL(op, sig) void cm7_##op sig;
CM7_DECL(dtm_conv1d_s8, (const dtm_conv1d_s8_params_t *, const int8_t *const[], int8_t *))
CM7_DECL(dtm_depthwise_conv1d_s8, (const dtm_depthwise_conv1d_s8_params_t *, const int8_t *, int8_t *))
CM7_DECL(dtm_fully_connected_s8, (const dtm_fully_connected_s8_params_t *, const int8_t *, int8_t *))
CM7_DECL(dtm_max_pool1d_s8, (const dtm_pool1d_s8_params_t *, const int8_t *, int8_t *))
CM7_DECL(dtm_avg_pool1d_s8, (const dtm_pool1d_s8_params_t *, const int8_t *, int8_t *))
CM7_DECL(dtm_mean_s8, (const dtm_mean_s8_params_t *, const int8_t *, int8_t *))
CM7_DECL(dtm_add_s8, (const dtm_add_s8_params_t *, const int8_t *, const int8_t *, int8_t *))
CM7_DECL(dtm_requantize_s8, (const dtm_requantize_s8_params_t *, const int8_t *, int8_t *))
CM7_DECL(dtm_relu_s8, (const dtm_relu_s8_params_t *, const int8_t *, int8_t *))
CM7_DECL(dtm_softmax_s8, (const dtm_softmax_s8_params_t *, const int8_t *, int8_t *))
CM7_DECL(dtm_argmax_s8, (const dtm_argmax_s8_params_t *, const int8_t *, int32_t *))

#ifndef SELFTEST_ROUNDS
#define SELFTEST_ROUNDS 300
#endif

/* ---------------------------------------------------------------- utils */

static uint32_t rng_state = 0x12345678u;
static uint32_t rnd(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}
static int32_t rint_in(int32_t lo, int32_t hi) /* inclusive */
{
    return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1));
}
static void fill8(int8_t *p, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        p[i] = (int8_t)rnd();
    }
}

static uint32_t hash = 2166136261u;
static uint32_t cases, mismatches;
static void check(const void *a, const void *b, int32_t n, const char *what)
{
    const uint8_t *x = a;
    for (int32_t i = 0; i < n; ++i) {
        hash = (hash ^ x[i]) * 16777619u;
    }
    ++cases;
    if (memcmp(a, b, (size_t)n) != 0) {
        ++mismatches;
        OUT("mismatch in ");
        OUT(what);
        OUT("\n");
    }
}

static void out_u32(const char *label, uint32_t v, int hex)
{
    char buf[16];
    int i = 15;
    buf[i] = 0;
    do {
        const uint32_t d = hex ? v % 16u : v % 10u;
        buf[--i] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v = hex ? v / 16u : v / 10u;
    } while (v && i > 0);
    OUT(label);
    OUT(buf + i);
}

/* ---------------------------------------------------------------- buffers */

static int8_t in_a[4 * 1024], in_b[4 * 1024], in_c[4 * 1024], in_d[4 * 1024];
static int8_t wts[20 * 1024];
static int32_t bias[256], mult[256], shft[256];
static int8_t out_ref[8 * 1024], out_cm7[8 * 1024];

static void rand_quant(int32_t n, int32_t shift_lo, int32_t shift_hi)
{
    for (int32_t i = 0; i < n; ++i) {
        bias[i] = rint_in(-6000, 6000);
        mult[i] = (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu));
        shft[i] = rint_in(shift_lo, shift_hi);
    }
}

static void rand_act(int32_t *lo, int32_t *hi)
{
    *lo = rnd() & 1 ? -128 : rint_in(-128, 20);
    *hi = rnd() & 1 ? 127 : rint_in(*lo, 127);
}

/* ---------------------------------------------------------------- self-test */

static void test_conv(void)
{
    dtm_conv1d_s8_params_t p;
    memset(&p, 0, sizeof p);
    p.num_parts = rint_in(1, DITMOS_CONV_MAX_PARTS);
    int8_t *bufs[DITMOS_CONV_MAX_PARTS] = {in_a, in_b, in_c, in_d};
    const int8_t *ins[DITMOS_CONV_MAX_PARTS];
    int32_t cin = 0;
    p.in_len = rint_in(1, 40);
    for (int32_t q = 0; q < p.num_parts; ++q) {
        p.parts[q].channels = rint_in(1, 9);
        p.parts[q].input_offset = rint_in(-127, 128);
        cin += p.parts[q].channels;
        fill8(bufs[q], p.in_len * p.parts[q].channels);
        ins[q] = bufs[q];
    }
    p.kernel_size = rint_in(1, 12);
    p.stride = rint_in(1, 3);
    p.pad = rint_in(0, p.kernel_size - 1);
    int32_t span = p.in_len + p.pad + rint_in(0, p.kernel_size - 1) - p.kernel_size;
    p.out_len = span >= 0 ? span / p.stride + 1 : 1;
    p.out_channels = rint_in(1, 11);
    fill8(wts, p.out_channels * p.kernel_size * cin);
    rand_quant(p.out_channels, -12, 2);
    p.weights = wts;
    p.bias = rnd() & 3 ? bias : NULL;
    p.multiplier = mult;
    p.shift = shft;
    p.output_offset = rint_in(-128, 127);
    rand_act(&p.act_min, &p.act_max);
    const int32_t n = p.out_len * p.out_channels;
    dtm_conv1d_s8(&p, ins, out_ref);
    cm7_dtm_conv1d_s8(&p, ins, out_cm7);
    check(out_ref, out_cm7, n, "dtm_conv1d_s8");
}

static void test_depthwise(void)
{
    dtm_depthwise_conv1d_s8_params_t p;
    memset(&p, 0, sizeof p);
    p.in_len = rint_in(1, 30);
    p.in_channels = rint_in(1, 9);
    p.depth_multiplier = rint_in(1, 3);
    p.kernel_size = rint_in(1, 9);
    p.stride = rint_in(1, 3);
    p.pad = rint_in(0, p.kernel_size - 1);
    int32_t span = p.in_len + p.pad + rint_in(0, p.kernel_size - 1) - p.kernel_size;
    p.out_len = span >= 0 ? span / p.stride + 1 : 1;
    p.input_offset = rint_in(-127, 128);
    const int32_t oc = p.in_channels * p.depth_multiplier;
    fill8(in_a, p.in_len * p.in_channels);
    fill8(wts, p.kernel_size * oc);
    rand_quant(oc, -10, 2);
    p.weights = wts;
    p.bias = rnd() & 3 ? bias : NULL;
    p.multiplier = mult;
    p.shift = shft;
    p.output_offset = rint_in(-128, 127);
    rand_act(&p.act_min, &p.act_max);
    dtm_depthwise_conv1d_s8(&p, in_a, out_ref);
    cm7_dtm_depthwise_conv1d_s8(&p, in_a, out_cm7);
    check(out_ref, out_cm7, p.out_len * oc, "dtm_depthwise_conv1d_s8");
}

static void test_fc(void)
{
    dtm_fully_connected_s8_params_t p;
    memset(&p, 0, sizeof p);
    p.batches = rint_in(1, 3);
    p.in_features = rint_in(1, 200);
    p.out_features = rint_in(1, 13);
    p.input_offset = rint_in(-127, 128);
    fill8(in_a, p.batches * p.in_features);
    fill8(wts, p.in_features * p.out_features);
    rand_quant(p.out_features, -14, 2);
    p.weights = wts;
    p.bias = rnd() & 3 ? bias : NULL;
    p.per_channel = (int32_t)(rnd() & 1);
    p.multiplier = mult;
    p.shift = shft;
    p.output_offset = rint_in(-128, 127);
    rand_act(&p.act_min, &p.act_max);
    dtm_fully_connected_s8(&p, in_a, out_ref);
    cm7_dtm_fully_connected_s8(&p, in_a, out_cm7);
    check(out_ref, out_cm7, p.batches * p.out_features, "dtm_fully_connected_s8");
}

static void test_pools(void)
{
    dtm_pool1d_s8_params_t p;
    p.in_len = rint_in(1, 40);
    p.channels = rint_in(1, 12);
    p.pool_size = rint_in(1, 5);
    p.stride = rint_in(1, 3);
    p.pad = rint_in(0, p.pool_size - 1);
    int32_t span = p.in_len + p.pad + rint_in(0, p.pool_size - 1) - p.pool_size;
    p.out_len = span >= 0 ? span / p.stride + 1 : 1;
    rand_act(&p.act_min, &p.act_max);
    fill8(in_a, p.in_len * p.channels);
    dtm_max_pool1d_s8(&p, in_a, out_ref);
    cm7_dtm_max_pool1d_s8(&p, in_a, out_cm7);
    check(out_ref, out_cm7, p.out_len * p.channels, "dtm_max_pool1d_s8");
    dtm_avg_pool1d_s8(&p, in_a, out_ref);
    cm7_dtm_avg_pool1d_s8(&p, in_a, out_cm7);
    check(out_ref, out_cm7, p.out_len * p.channels, "dtm_avg_pool1d_s8");
    /* max-pool 2 without a clamp (the cm7 word paths), every channel count */
    p.in_len = rint_in(1, 40);
    p.channels = rint_in(1, 12);
    p.pool_size = 2;
    p.stride = rint_in(1, 2);
    p.pad = rint_in(0, 1);
    span = p.in_len + p.pad + rint_in(0, 1) - 2;
    p.out_len = span >= 0 ? span / p.stride + 1 : 1;
    p.act_min = -128;
    p.act_max = 127;
    fill8(in_a, p.in_len * p.channels);
    dtm_max_pool1d_s8(&p, in_a, out_ref);
    cm7_dtm_max_pool1d_s8(&p, in_a, out_cm7);
    check(out_ref, out_cm7, p.out_len * p.channels, "dtm_max_pool1d_s8 (pool 2)");
}

static void test_elementwise(void)
{
    const int32_t n = rint_in(1, 300);
    fill8(in_a, n);
    fill8(in_b, n);
    dtm_mean_s8_params_t mp = {rint_in(1, 300), rint_in(1, 12), rint_in(-128, 127), rint_in(-128, 127),
                           (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu)), rint_in(-6, 3)};
    fill8(in_c, mp.in_len * mp.channels);
    dtm_mean_s8(&mp, in_c, out_ref);
    cm7_dtm_mean_s8(&mp, in_c, out_cm7);
    check(out_ref, out_cm7, mp.channels, "dtm_mean_s8");

    dtm_add_s8_params_t ap = {n, 20, rint_in(-127, 128),
                          (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu)), rint_in(-4, 0),
                          rint_in(-127, 128), (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu)),
                          rint_in(-4, 0), rint_in(-128, 127),
                          (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu)), rint_in(-22, -16),
                          -128, 127};
    rand_act(&ap.act_min, &ap.act_max);
    dtm_add_s8(&ap, in_a, in_b, out_ref);
    cm7_dtm_add_s8(&ap, in_a, in_b, out_cm7);
    check(out_ref, out_cm7, n, "dtm_add_s8");

    dtm_requantize_s8_params_t rp = {n, rint_in(-128, 127), rint_in(-128, 127),
                                 (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu)), rint_in(-8, 4)};
    dtm_requantize_s8(&rp, in_a, out_ref);
    cm7_dtm_requantize_s8(&rp, in_a, out_cm7);
    check(out_ref, out_cm7, n, "dtm_requantize_s8");

    dtm_relu_s8_params_t lp = {n, rint_in(-128, 127), rint_in(-128, 127),
                           (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu)), rint_in(-8, 4),
                           -128, 127};
    rand_act(&lp.act_min, &lp.act_max);
    dtm_relu_s8(&lp, in_a, out_ref);
    cm7_dtm_relu_s8(&lp, in_a, out_cm7);
    check(out_ref, out_cm7, n, "dtm_relu_s8");

    const int32_t left = rint_in(20, 28);
    dtm_softmax_s8_params_t sp = {rint_in(1, 4), rint_in(1, 40),
                              (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu)), left, 0};
    /* diff_min = -floor(31 * 2^26 / 2^left) */
    sp.diff_min = -(int32_t)(((int64_t)31 << 26) >> left);
    dtm_softmax_s8(&sp, in_a, out_ref);
    cm7_dtm_softmax_s8(&sp, in_a, out_cm7);
    check(out_ref, out_cm7, sp.rows * sp.depth, "dtm_softmax_s8");

    dtm_argmax_s8_params_t gp = {rint_in(1, 4), rint_in(1, 20)};
    int32_t ia[4], ib[4];
    dtm_argmax_s8(&gp, in_a, ia);
    cm7_dtm_argmax_s8(&gp, in_a, ib);
    check(ia, ib, (int32_t)(gp.rows * sizeof(int32_t)), "dtm_argmax_s8");
}

/* ---------------------------------------------------------------- bench */
#ifdef DITMOS_BENCH

/* The firmware's instruction-count marker (firmware/boards/mps2_an500/board.c)
 * with one id: bench_mark() calls a one-instruction function whose execution
 * firmware/tools/ditmos_insn_plugin.c logs as `mark 0 <instructions so far>`. */
__attribute__((naked, used, aligned(4))) void bench_mark_sled(void)
{
    __asm volatile("bx lr");
}

__attribute__((noinline)) void bench_mark(void)
{
    bench_mark_sled();
}

static void bench_line(const char *name, uint32_t macs)
{
    OUT("bench ");
    OUT(name);
    out_u32(" ", macs, 0);
    OUT("\n");
}

typedef struct {
    const char *name;
    int32_t T, K, cout, parts, cpart;
} conv_shape_t;

static void bench_conv(const conv_shape_t *s)
{
    dtm_conv1d_s8_params_t p;
    memset(&p, 0, sizeof p);
    const int8_t *ins[2] = {in_a, in_b};
    p.num_parts = s->parts;
    for (int32_t q = 0; q < s->parts; ++q) {
        p.parts[q].channels = s->cpart;
        p.parts[q].input_offset = 128 - q * 7;
    }
    p.in_len = s->T;
    p.out_len = s->T - s->K + 1; /* VALID, stride 1, as the presets use */
    p.kernel_size = s->K;
    p.stride = 1;
    p.pad = 0;
    p.out_channels = s->cout;
    rand_quant(s->cout, -9, -6);
    p.weights = wts;
    p.bias = bias;
    p.multiplier = mult;
    p.shift = shft;
    p.output_offset = -128;
    p.act_min = -128;
    p.act_max = 127;
    fill8(in_a, s->T * s->cpart);
    fill8(in_b, s->T * s->cpart);
    fill8(wts, s->cout * s->K * s->cpart * s->parts);
    bench_line(s->name, (uint32_t)(p.out_len * s->cout * s->K * s->cpart * s->parts));
    bench_mark();
    dtm_conv1d_s8(&p, ins, out_ref);
    bench_mark();
    cm7_dtm_conv1d_s8(&p, ins, out_cm7);
    bench_mark();
    check(out_ref, out_cm7, p.out_len * s->cout, s->name);
}

static void bench_fc(const char *name, int32_t n, int32_t o)
{
    dtm_fully_connected_s8_params_t p;
    memset(&p, 0, sizeof p);
    p.batches = 1;
    p.in_features = n;
    p.out_features = o;
    p.input_offset = 128;
    rand_quant(o, -9, -6);
    p.weights = wts;
    p.bias = bias;
    p.per_channel = 1;
    p.multiplier = mult;
    p.shift = shft;
    p.output_offset = 3;
    p.act_min = -128;
    p.act_max = 127;
    fill8(in_a, n);
    fill8(wts, n * o);
    bench_line(name, (uint32_t)(n * o));
    bench_mark();
    dtm_fully_connected_s8(&p, in_a, out_ref);
    bench_mark();
    cm7_dtm_fully_connected_s8(&p, in_a, out_cm7);
    bench_mark();
    check(out_ref, out_cm7, o, name);
}

static void bench_pool(const char *name, int32_t T, int32_t C)
{
    dtm_pool1d_s8_params_t p = {T, C, T / 2, 2, 2, 0, -128, 127};
    fill8(in_a, T * C);
    bench_line(name, 0);
    bench_mark();
    dtm_max_pool1d_s8(&p, in_a, out_ref);
    bench_mark();
    cm7_dtm_max_pool1d_s8(&p, in_a, out_cm7);
    bench_mark();
    check(out_ref, out_cm7, (T / 2) * C, name);
}

static void run_bench(void)
{
    /* DiTMoS hapt-preset shapes: 128 x 6 input, selector blocks 8/8/4 channels
     * with kernels 15/9/5 (valid conv, max-pool 2), classifier blocks 2 and 3
     * read [own ; selector] features, FC 40 -> 64 -> 6. */
    static const conv_shape_t convs[] = {
        {"sel_conv1", 128, 15, 8, 1, 6}, {"sel_conv2", 57, 9, 8, 1, 8},
        {"sel_conv3", 24, 5, 4, 1, 8},   {"cls_conv1", 128, 15, 8, 1, 6},
        {"cls_conv2", 57, 9, 8, 2, 8},   {"cls_conv3", 24, 5, 4, 2, 8},
    };
    for (unsigned i = 0; i < sizeof convs / sizeof convs[0]; ++i) {
        bench_conv(&convs[i]);
    }
    bench_pool("pool_114x8", 114, 8);
    bench_fc("fc_40x64", 40, 64);
    bench_fc("fc_64x6", 64, 6);
}

#endif /* DITMOS_BENCH */

int main(void)
{
    for (int i = 0; i < SELFTEST_ROUNDS; ++i) {
        test_conv();
        test_fc();
        test_depthwise();
        test_pools();
        test_elementwise();
    }
    out_u32("selftest cases=", cases, 0);
    out_u32(" mismatches=", mismatches, 0);
    out_u32(" hash=", hash, 1);
    OUT("\n");
#ifdef DITMOS_BENCH
    run_bench();
    out_u32("bench mismatches=", mismatches, 0);
    OUT("\n");
#endif
    return mismatches != 0;
}
