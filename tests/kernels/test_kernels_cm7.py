"""The Cortex-M7 kernel set: identical bytes to the reference set, on the host
(portable fallbacks of the DSP intrinsics) and on the M7 ISA under QEMU
mps2-an500 (the real SXTB16/SXTAB16/SMLAD code), plus instruction budgets
measured with the QEMU instruction-count plugin on DiTMoS-shaped layers."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from kernel_lib import build_count_plugin, build_selftest, compile_only, run_qemu_m7

SELFTEST_RE = re.compile(r"selftest cases=(\d+) mismatches=(\d+) hash=([0-9a-f]+)")

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc and qemu-system-arm are installed by scripts/setup.sh",
)


@pytest.fixture(scope="module")
def host_result(tmp_path_factory):
    exe = build_selftest("host", tmp_path_factory.mktemp("selftest_host"))
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    m = SELFTEST_RE.search(r.stdout)
    assert m, r.stdout + r.stderr
    return r.returncode, m


@pytest.fixture(scope="module")
def m7_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("selftest_m7")
    elf = build_selftest("m7", out, bench=True)
    plugin = build_count_plugin(out)
    code, text, marks = run_qemu_m7(elf, plugin, out / "counts.txt")
    return code, text, marks


def test_cm7_equals_ref_on_host(host_result):
    code, m = host_result
    assert int(m.group(1)) >= 3000
    assert int(m.group(2)) == 0 and code == 0


@needs_arm
def test_cm7_equals_ref_on_cortex_m7_and_host(host_result, m7_bench):
    code, text, _ = m7_bench
    m = SELFTEST_RE.search(text)
    assert m, text
    assert int(m.group(2)) == 0 and code == 0, text
    # same outputs on the host and on the M7, for both sets
    assert m.group(3) == host_result[1].group(3)
    assert "bench mismatches=0" in text


@needs_arm
def test_cm7_instruction_budget(m7_bench):
    """DiTMoS hapt-shaped layers, generic cm7 kernels (the fallback for layers the
    packed variant does not take, see test_kernels_packed.py): measured 1.86
    instructions per MAC, 5.3x fewer than ref."""
    _, text, marks = m7_bench
    layers = re.findall(r"^bench (\w+) (\d+)$", text, re.M)
    assert layers and len(marks) == 3 * len(layers), text
    ref = cm7 = macs = 0
    for i, (_, n) in enumerate(layers):
        a, b, c = marks[3 * i : 3 * i + 3]
        ref += b - a
        cm7 += c - b
        macs += int(n)
    assert cm7 * 5 <= ref, (ref, cm7)
    assert cm7 <= 1.9 * macs, (cm7, macs, cm7 / macs)


@needs_arm
def test_cm7_without_assembly_loops_equals_ref_on_cortex_m7(tmp_path, host_result):
    """DITMOS_CM7_NO_ASM (and -O0 builds) use the C loops over the DSP intrinsics."""
    elf = build_selftest("m7", tmp_path, rounds=100, extra_cflags=("-DDITMOS_CM7_NO_ASM",))
    code, text, _ = run_qemu_m7(elf)
    m = SELFTEST_RE.search(text)
    assert m and int(m.group(2)) == 0 and code == 0, text


@needs_arm
@pytest.mark.parametrize(
    "flags", [["-O0"], ["-Og"], ["-Os"], ["-O3"], ["-O2", "-fno-omit-frame-pointer"]], ids=lambda f: " ".join(f)
)
def test_cm7_kernels_build_with_common_flags(tmp_path, flags):
    """The 13-14-register assembly loops must not break debug or -O3 builds."""
    compile_only("cm7", flags, tmp_path)
