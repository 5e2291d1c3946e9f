/* QEMU TCG plugin: exact retired-instruction counts for ditmos firmware.
 *
 * Debian's QEMU 7.2 accepts -plugin but ships no qemu-plugin.h, so the few
 * API v1 declarations used are written out below.  Counting: one inline
 * 64-bit add of the block's instruction count per executed translation block
 * (the add runs at block entry, so a count read inside a block includes the
 * whole block; differences between two marks are exact and repeatable).
 *
 * Marks: API v1 cannot read guest registers (and memory callbacks did not
 * fire for the Cortex-M guest in QEMU 7.2), so the id travels as an address.
 * The guest's ditmos_mark(id) calls entry `id` of ditmos_mark_sled, a run of
 * 2-byte `bx lr` instructions; the plugin puts an execution callback on every
 * sled instruction with the id (pc - sled) / 2 as its user data, and each
 * execution appends `mark <id> <count>` to the log, flushed at once.  At exit
 * it appends `total <count>`.
 *
 * Arguments (addresses in hex or decimal, from the ELF symbol table):
 *   log=PATH,sled=ADDR,sled_size=BYTES
 * Build: gcc -shared -fPIC -O2 -o libditmos_insn.so ditmos_insn_plugin.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*exec_cb_t)(unsigned int vcpu, void *udata);
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *udata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, exec_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *udata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb, void *udata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t insns;
static uint64_t sled_lo, sled_hi;
static FILE *log_file;

static void on_mark(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    if (log_file) {
        fprintf(log_file, "mark %llu %llu\n", (unsigned long long)(uintptr_t)udata,
                (unsigned long long)insns);
        fflush(log_file);
    }
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns, n);
    for (size_t i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc >= sled_lo && pc < sled_hi) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)(uintptr_t)((pc - sled_lo) / 2u));
        }
    }
}

static void on_exit_cb(qemu_plugin_id_t id, void *udata)
{
    (void)id; (void)udata;
    if (log_file) {
        fprintf(log_file, "total %llu\n", (unsigned long long)insns);
        fclose(log_file);
        log_file = NULL;
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const void *info, int argc,
                                                               char **argv)
{
    const char *log_path = NULL;
    uint64_t sled_size = 0;
    (void)info;
    for (int i = 0; i < argc; ++i) {
        char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        *eq = '\0';
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "log")) log_path = v;
        else if (!strcmp(k, "sled")) sled_lo = strtoull(v, NULL, 0);
        else if (!strcmp(k, "sled_size")) sled_size = strtoull(v, NULL, 0);
    }
    sled_hi = sled_lo + sled_size;
    if (log_path) {
        log_file = fopen(log_path, "w");
        if (!log_file) return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
