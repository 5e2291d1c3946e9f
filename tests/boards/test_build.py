"""Firmware builds: both Arm boards compile with -Werror; the Nucleo ELF's
vector table, section placement and sizes; fit checks before compiling;
the PlatformIO project parses (tests/boards/test_platformio.py checks its flags)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from ditmos.boards.build import build_project, read_model_manifest
from ditmos.boards.elf import Elf
from ditmos.boards.registry import get_board
from ditmos.errors import DitmosError

FLASH = (0x08000000, 0x08000000 + 2 * 1024 * 1024)
SRAM = (0x20000000, 0x20000000 + 512 * 1024)
DTCM = (0x20000000, 0x20000000 + 128 * 1024)


def inside(addr: int, size: int, region: tuple[int, int]) -> bool:
    return region[0] <= addr and addr + size <= region[1]


def test_nucleo_vector_table(nucleo_build):
    elf = Elf(nucleo_build / "firmware.elf")
    vt = elf.section(".isr_vector")
    assert vt.addr == FLASH[0]
    words = struct.unpack("<126I", elf.read(FLASH[0], 4 * 126))
    sp, reset = words[0], words[1]
    assert SRAM[0] < sp <= SRAM[1] and sp % 8 == 0
    assert sp == elf.symbol("_estack").value
    assert reset & 1 == 1 and FLASH[0] <= reset < FLASH[1]
    assert reset == elf.symbol("Reset_Handler").value | 1
    assert elf.entry == reset
    # USART3 is IRQ 39 (RM0410 Table 40): entry 16 + 39.
    assert words[16 + 39] == elf.symbol("USART3_IRQHandler").value | 1
    assert words[15] == elf.symbol("SysTick_Handler").value | 1
    assert vt.size == 4 * (16 + 110)


def test_nucleo_sections_placement_and_limits(nucleo_build):
    elf = Elf(nucleo_build / "firmware.elf")
    for name in (".isr_vector", ".text", ".weights", ".rodata"):
        s = elf.section(name)
        assert s is not None and inside(s.addr, s.size, FLASH), name
    for name in (".stack", ".arena", ".data", ".bss", ".noinit"):
        s = elf.section(name)
        assert s is not None and inside(s.addr, s.size, DTCM), name  # small model: all DTCM
    assert elf.size(".weights") >= 280  # the fixture's weight arrays (2*24 + 2*4*24 + 40 B)
    stack = get_board("nucleo_f767zi").stack_size  # sized in boards.json (stack_note)
    assert elf.size(".arena") >= 1024 and elf.size(".stack") == stack
    # The initialised-data image sits in flash right after the constants.
    manifest = json.loads((nucleo_build / "manifest.json").read_text())
    mem = manifest["memory"]
    assert mem["flash"]["total"] <= mem["flash"]["limit"] == 2 * 1024 * 1024
    assert mem["ram"]["total"] <= mem["ram"]["limit"] == 512 * 1024
    assert mem["flash"]["model_weights"] == elf.size(".weights")
    assert mem["ram"]["arena"] == elf.size(".arena")
    binary = (nucleo_build / "firmware.bin").read_bytes()
    assert binary[:8] == elf.read(FLASH[0], 8)
    used = elf.symbol("__ditmos_flash_used").value
    assert len(binary) == used
    assert manifest["board"] == "nucleo_f767zi" and manifest["protocol_version"] == 1
    assert manifest["model_hash"] == "5eed0000f17e5eed" + "0" * 48 and manifest["cost_kind"] == 0


def test_mps2_build_has_marker_and_vectors(mps2_build):
    elf = Elf(mps2_build / "firmware.elf")
    sp, reset = struct.unpack("<II", elf.read(0, 8))
    assert 0x20000000 < sp <= 0x20400000 and reset & 1
    manifest = json.loads((mps2_build / "manifest.json").read_text())
    sled = elf.symbol("ditmos_mark_sled")
    assert manifest["marker"] == {"sled": sled.value & ~1, "sled_size": 512}
    assert manifest["num_layers"] == 2 and manifest["cost_kind"] == 1


def _edit_manifest(model: Path, **changes) -> None:
    path = model / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _model_with_arena(src: Path, dest: Path, arena: int) -> Path:
    shutil.copytree(src, dest)
    h = dest / "model.h"
    h.write_text(h.read_text().replace("#define DITMOS_ARENA_SIZE 1024", f"#define DITMOS_ARENA_SIZE {arena}"))
    _edit_manifest(dest, arena_bytes=arena)
    assert read_model_manifest(dest).arena_size == arena
    return dest


def test_large_arena_moves_out_of_dtcm(fixture_model_dir, tmp_path):
    model = _model_with_arena(fixture_model_dir, tmp_path / "model", 200 * 1024)
    out = build_project("nucleo_f767zi", model, tmp_path / "build")
    elf = Elf(out / "firmware.elf")
    assert inside(elf.section(".stack").addr, get_board("nucleo_f767zi").stack_size, DTCM)
    arena = elf.section(".arena")
    assert arena.size >= 200 * 1024 and inside(arena.addr, arena.size, (0x20020000, SRAM[1]))


def test_model_too_big_for_ram_fails_before_compiling(fixture_model_dir, tmp_path):
    model = _model_with_arena(fixture_model_dir, tmp_path / "model", 600 * 1024)
    with pytest.raises(DitmosError, match="does not fit the RAM of nucleo_f767zi"):
        build_project("nucleo_f767zi", model, tmp_path / "build")
    assert not (tmp_path / "build").exists()  # nothing rendered, nothing compiled


def test_weights_too_big_for_flash_fail_before_compiling(fixture_model_dir, tmp_path):
    with pytest.raises(DitmosError, match="does not fit the flash of nucleo_f767zi"):
        build_project("nucleo_f767zi", fixture_model_dir, tmp_path / "b", weights_bytes=2 * 1024 * 1024)
    assert not (tmp_path / "b").exists()


def test_weights_counted_before_compiling_match_the_elf(fixture_model_dir, nucleo_build):
    assert (
        read_model_manifest(fixture_model_dir).weights_bytes
        == Elf(nucleo_build / "firmware.elf").size(".weights")
        == 280
    )


def test_oversized_weights_fail_before_compiling(fixture_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(fixture_model_dir, model)
    _edit_manifest(model, weights_bytes=2_400_000)
    with pytest.raises(DitmosError, match="does not fit the flash of nucleo_f767zi"):
        build_project("nucleo_f767zi", model, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_model_directory_without_a_codegen_manifest_is_refused(fixture_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(fixture_model_dir, model)
    _edit_manifest(model, format="something-else/1")
    with pytest.raises(DitmosError, match="is not 'ditmos-codegen/1'"):
        build_project("host", model, tmp_path / "b")
    (model / "manifest.json").unlink()
    with pytest.raises(DitmosError, match="has no manifest.json"):
        build_project("host", model, tmp_path / "b")


def test_input_larger_than_a_frame_is_refused(fixture_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(fixture_model_dir, model)
    h = model / "model.h"
    h.write_text(h.read_text().replace("#define DITMOS_INPUT_T 8", "#define DITMOS_INPUT_T 700"))
    _edit_manifest(model, input_shape=[700, 3])
    with pytest.raises(DitmosError, match="payload limit"):
        build_project("mps2_an500", model, tmp_path / "b")


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(DitmosError, match="has no model.h"):
        build_project("host", tmp_path, tmp_path / "b")


def test_unknown_board():
    with pytest.raises(DitmosError, match="unknown board 'uno'"):
        get_board("uno")


def test_warnings_are_errors(fixture_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(fixture_model_dir, model)
    c = model / "model.c"
    c.write_text(c.read_text() + "\nstatic int unused_helper(void) { return 1; }\n")
    with pytest.raises(DitmosError, match="unused_helper"):
        build_project("mps2_an500", model, tmp_path / "b")


def _pio() -> str:
    exe = Path(sys.executable).with_name("pio")
    return str(exe) if exe.exists() else (shutil.which("pio") or "")


def test_platformio_ini_parses(nucleo_build):
    if not _pio():
        pytest.fail("PlatformIO (`pio`) is missing: install the test extra")
    proc = subprocess.run(
        [_pio(), "project", "config", "--json-output", "-d", str(nucleo_build)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    config = dict(json.loads(proc.stdout))
    env = dict(config["env:nucleo_f767zi"])
    assert env["board"] == "nucleo_f767zi" and env["platform"] == "ststm32"
    assert env["upload_protocol"] == "stlink"
    assert env["board_build.ldscript"] == "linker.ld"
    assert env["extra_scripts"] == ["pre:ditmos_flags.py", "post:ditmos_link.py"]
    for script in ("ditmos_flags.py", "ditmos_link.py"):
        compile((nucleo_build / script).read_text(), script, "exec")  # valid Python
    flags = env["build_flags"]
    assert "-Werror" not in flags and any(f.startswith("-DDITMOS_UART_BAUD") for f in flags)
    assert not (nucleo_build / "renode.resc").exists()  # no untested emulator script


def test_reset_handler_enables_the_fpu_in_assembly_before_any_c(nucleo_build):
    """VTOR and CPACR are written by hand-written instructions; the first
    compiled code (cortex_start) runs after the FPU is on."""
    dis = subprocess.run(
        ["arm-none-eabi-objdump", "-d", "--disassemble=Reset_Handler", str(nucleo_build / "firmware.elf")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    insns = [
        ln.split("\t")[2].split()[0]
        for ln in dis.splitlines()
        if re.match(r"^\s+[0-9a-f]+:\t", ln) and len(ln.split("\t")) > 2
    ]
    branch = next(i for i, m in enumerate(insns) if m.startswith("b"))
    body = insns[:branch]
    assert body == ["ldr", "ldr", "str", "ldr", "ldr", "orr.w", "str", "dsb", "isb"], insns
    assert "<cortex_start>" in dis
    assert not any(m.startswith("v") for m in body)  # no floating-point instruction
    assert ".word\t0xe000ed88" in dis and ".word\t0xe000ed08" in dis  # CPACR, VTOR


def test_nucleo_builds_with_the_clock_fallback_forced(fixture_model_dir, tmp_path):
    out = build_project(
        "nucleo_f767zi", fixture_model_dir, tmp_path / "b", extra_defines={"DITMOS_CLOCK_FORCE_TIMEOUT": "0x02u"}
    )
    assert "-DDITMOS_CLOCK_FORCE_TIMEOUT=0x02u" in (out / "Makefile").read_text()
    with pytest.raises(DitmosError, match="bad firmware define"):
        build_project("host", fixture_model_dir, tmp_path / "c", extra_defines={"CC": "x"})
