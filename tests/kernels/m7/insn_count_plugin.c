/*
 * QEMU TCG plugin for the kernel tests: counts retired guest instructions
 * and snapshots the count every time the translation block at address
 * `mark` executes (the test binary calls a no-inline marker function between
 * kernels).  Writes the snapshots, one per line, to `out` at exit.
 * QEMU's Debian package ships no qemu-plugin.h: the few declarations of
 * plugin API version 1 used here are written out below.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t insns;
static uint64_t mark_addr = UINT64_MAX;
static char out_path[1024];
static uint64_t *snaps;
static size_t n_snaps, cap_snaps;

static void on_mark(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    if (n_snaps == cap_snaps) {
        cap_snaps = cap_snaps ? 2 * cap_snaps : 256;
        snaps = realloc(snaps, cap_snaps * sizeof *snaps);
    }
    snaps[n_snaps++] = insns;
}

/* Optional profile (arg profile=1): executed instructions per translation block. */
#define PROFILE_SLOTS 4096
static int profile;
static struct {
    uint64_t vaddr, n_insns, execs;
} prof[PROFILE_SLOTS];
static size_t n_prof;

static void on_tb_exec(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    prof[(uintptr_t)udata].execs++;
}

static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    if (profile && n_prof < PROFILE_SLOTS) {
        prof[n_prof].vaddr = qemu_plugin_tb_vaddr(tb);
        prof[n_prof].n_insns = qemu_plugin_tb_n_insns(tb);
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                             (void *)(uintptr_t)n_prof);
        n_prof++;
    }
    if (qemu_plugin_tb_vaddr(tb) == mark_addr) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_plugin_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (f == NULL) {
        return;
    }
    fprintf(f, "total %" PRIu64 "\n", insns);
    for (size_t i = 0; i < n_snaps; ++i) {
        fprintf(f, "mark %" PRIu64 "\n", snaps[i]);
    }
    for (size_t i = 0; i < n_prof; ++i) {
        if (prof[i].execs) {
            fprintf(f, "tb 0x%" PRIx64 " %" PRIu64 " %" PRIu64 "\n", prof[i].vaddr,
                    prof[i].n_insns, prof[i].execs);
        }
    }
    if (f != stderr) {
        fclose(f);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "mark=", 5) == 0) {
            mark_addr = strtoull(argv[i] + 5, NULL, 0) & ~UINT64_C(1);
        } else if (strcmp(argv[i], "profile=1") == 0) {
            profile = 1;
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
    return 0;
}
