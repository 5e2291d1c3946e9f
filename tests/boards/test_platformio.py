"""The PlatformIO project of a Nucleo build compiles the firmware the Makefile
compiled: same flags at compile, assemble and link, and (built here with the
Debian cross compiler standing in for PlatformIO's download) the same sections,
symbols and float ABI.

PlatformIO's ststm32 platform cannot be downloaded here, so this test replays
what `pio run` does with the flags, in PlatformIO's order, on a real SCons
environment with PlatformIO's own flag functions (ProcessFlags,
ProcessUnFlags from the installed platformio package; SCons' parser decides
where each build_flags entry goes):

1. the `pre:` extra scripts;
2. the platform's framework-less build script (platform-ststm32,
   builder/frameworks/_bare.py) and the board's build.extra_flags
   (boards/nucleo_f767zi.json), copied below as data;
3. build_flags (ProcessFlags);
4. build_unflags (ProcessUnFlags);
5. the linker script (``-T``, prepended to the link flags) and the project's
   include and source directories;
6. the `post:` extra scripts.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ditmos.boards.build import PIO_OMITTED_FLAGS
from ditmos.boards.elf import Elf

try:
    import SCons.Environment  # noqa: F401 (PlatformIO's build engine, in the test extra)
except ImportError:  # pragma: no cover
    pytest.fail("SCons is missing: install the test extra (pip install -e '.[test]')", pytrace=False)

# platform-ststm32 builder/frameworks/_bare.py (framework-less builds), with
# nucleo_f767zi.json's build.cpu = cortex-m7, f_cpu = 216000000L, variant = NUCLEO_F767ZI.
PLATFORM_BARE = {
    "ASFLAGS": ["-x", "assembler-with-cpp"],
    "CCFLAGS": ["-Os", "-ffunction-sections", "-fdata-sections", "-Wall", "-mthumb", "-mcpu=cortex-m7"],
    "CPPDEFINES": [("F_CPU", "216000000L"), "NUCLEO_F767ZI"],
    "LINKFLAGS": ["-Os", "-Wl,--gc-sections,--relax", "-mthumb", "-mcpu=cortex-m7"],
    "LIBS": ["c", "gcc", "m", "stdc++"],
}
BOARD_EXTRA_FLAGS = "-DSTM32F767xx"
TARGET = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]
EF_ARM_ABI_FLOAT_HARD = 0x400


def _pio() -> str:
    exe = Path(sys.executable).with_name("pio")
    return str(exe) if exe.exists() else (shutil.which("pio") or "")


def _project_config(project: Path) -> dict:
    proc = subprocess.run(
        [_pio(), "project", "config", "--json-output", "-d", str(project)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return {section: dict(opts) for section, opts in json.loads(proc.stdout)}


def _run_script(path: Path, env) -> None:
    code = compile(path.read_text(), str(path), "exec")
    exec(code, {"Import": lambda *names: None, "env": env, "__file__": str(path)})


def replay_platformio(project: Path) -> dict:
    """The compile, assemble and link flags `pio run` would use for ``project``."""
    from platformio.builder.tools import piobuild
    from SCons.Environment import Environment

    config = _project_config(project)
    opts = config["env:nucleo_f767zi"]
    assert opts["platform"] == "ststm32" and opts["board"] == "nucleo_f767zi"
    env = Environment(tools=[], CCFLAGS=[], CFLAGS=[], ASFLAGS=[], LINKFLAGS=[], CPPDEFINES=[], CPPPATH=[], LIBS=[])
    for method in (piobuild.ParseFlagsExtended, piobuild.ProcessFlags, piobuild.ProcessUnFlags):
        env.AddMethod(method)  # PlatformIO's own flag handling, on a real SCons environment
    scripts = opts.get("extra_scripts", [])
    for s in scripts:  # 1
        if s.startswith("pre:"):
            _run_script(project / s[4:], env)
    env.Append(**{k: list(v) for k, v in PLATFORM_BARE.items()})  # 2
    env.Append(ASFLAGS=list(env["CCFLAGS"]))
    env.ProcessFlags(BOARD_EXTRA_FLAGS)
    env.ProcessFlags(opts.get("build_flags", []))  # 3
    env.ProcessUnFlags(opts.get("build_unflags", []))  # 4
    env.Prepend(LINKFLAGS=["-T", opts["board_build.ldscript"]])  # 5
    env.Append(CPPPATH=[config["platformio"]["include_dir"], config["platformio"]["src_dir"]])
    for s in scripts:  # 6
        if s.startswith("post:"):
            _run_script(project / s[5:], env)

    def define(d):
        return f"-D{d[0]}={d[1]}" if isinstance(d, (tuple, list)) else f"-D{d}"

    def include(p):
        return "-I" + str((project / p).resolve())

    compile_flags = [*env["CFLAGS"], *env["CCFLAGS"], *map(define, env["CPPDEFINES"]), *map(include, env["CPPPATH"])]
    return {
        "compile": [str(f) for f in compile_flags],
        "assemble": [str(f) for f in env["ASFLAGS"]],
        "link": [str(f) for f in env["LINKFLAGS"]],
        "libs": ["-Wl,--start-group", *(f"-l{lib}" for lib in env["LIBS"]), "-Wl,--end-group"],
        "size_regexps": (env.get("SIZEPROGREGEXP"), env.get("SIZEDATAREGEXP")),
        "options": opts,
    }


def makefile_flags(build: Path) -> tuple[list[str], list[str]]:
    text = build.joinpath("Makefile").read_text()
    cflags = re.search(r"^CFLAGS\s*:=(.*)$", text, re.M).group(1).split()
    ldflags = re.search(r"^LDFLAGS\s*:=(.*)$", text, re.M).group(1).split()
    return cflags, ldflags


def _last(flags, prefix):
    return [f for f in flags if f.startswith(prefix)][-1]


@pytest.fixture(scope="module")
def replayed(nucleo_build):
    if not _pio():
        pytest.fail("PlatformIO (`pio`) is missing: install the test extra")
    return replay_platformio(nucleo_build)


def test_compile_flags_match_the_makefile(nucleo_build, replayed):
    cflags, _ = makefile_flags(nucleo_build)
    got = replayed["compile"]
    missing = [f for f in cflags if f not in PIO_OMITTED_FLAGS and not f.startswith("-I") and f not in got]
    assert not missing, f"Makefile flags PlatformIO would not pass: {missing}"
    for f in TARGET:
        assert f in got
    assert _last(got, "-O") == _last(cflags, "-O") == "-O2"  # the platform's -Os is gone
    assert "-Werror" in cflags and "-Werror" not in got
    assert [f for f in got if f.startswith("-mfloat-abi")] == ["-mfloat-abi=hard"]
    # The Makefile's include directories, resolved.
    for inc in ("include", "src/model"):
        assert "-I" + str((nucleo_build / inc).resolve()) in got


def test_assemble_and_link_flags_carry_the_target_and_our_start_up(nucleo_build, replayed):
    _, ldflags = makefile_flags(nucleo_build)
    for f in TARGET:
        assert f in replayed["assemble"] and f in replayed["link"], f
    link = replayed["link"]
    assert link[:2] == ["-T", "linker.ld"]
    missing = [f for f in ldflags if f not in PIO_OMITTED_FLAGS and f not in link]
    assert not missing, f"Makefile link flags PlatformIO would not pass: {missing}"
    assert "-nostartfiles" in link and "--specs=nano.specs" in link


def test_platformio_build_equals_the_makefile_build(nucleo_build, replayed, tmp_path):
    """Compile and link with the replayed flags (Debian's arm-none-eabi-gcc in
    place of PlatformIO's): the ELF has the Makefile ELF's sections, section
    sizes, global symbols and hard-float ABI."""
    cc = "arm-none-eabi-gcc"
    objs = []
    # In the Makefile's order: link order decides how merged strings are laid out.
    order = (
        re.search(r"^SRCS\s*:=((?:.*\\\n)*.*)$", (nucleo_build / "Makefile").read_text(), re.M)
        .group(1)
        .replace("\\", " ")
        .split()
    )
    for src in (nucleo_build / s for s in order):
        obj = tmp_path / (src.stem + ".o")
        cmd = [cc, "-o", str(obj), "-c", *replayed["compile"], str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=nucleo_build)
        assert proc.returncode == 0, shlex.join(cmd) + "\n" + proc.stderr
        objs.append(str(obj))
    elf_path = tmp_path / "firmware.elf"
    cmd = [cc, "-o", str(elf_path), *replayed["link"], *objs, *replayed["libs"]]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=nucleo_build)
    assert proc.returncode == 0, shlex.join(cmd) + "\n" + proc.stderr

    pio, ref = Elf(elf_path), Elf(nucleo_build / "firmware.elf")
    e_flags = [int.from_bytes(e.data[36:40], "little") for e in (pio, ref)]
    assert e_flags[0] & EF_ARM_ABI_FLOAT_HARD and e_flags[1] & EF_ARM_ABI_FLOAT_HARD
    sections = {s.name: (s.addr, s.size) for s in pio.sections if s.alloc and s.size}
    expected = {s.name: (s.addr, s.size) for s in ref.sections if s.alloc and s.size}
    assert sections == expected

    def functions(e):
        return {n for n in e.symbols if not n.startswith("$") and "." not in n}

    assert functions(pio) == functions(ref)
    assert pio.symbol("Reset_Handler").value == ref.symbol("Reset_Handler").value


def test_size_report_counts_every_section(nucleo_build, replayed):
    """PlatformIO sums, over `size -A -d` lines, the numbers its two regexps
    capture; with our post-script those sums are the manifest's totals."""
    flash_re, ram_re = replayed["size_regexps"]
    out = subprocess.run(
        ["arm-none-eabi-size", "-A", "-d", str(nucleo_build / "firmware.elf")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def total(pattern):
        return sum(int(v) for line in out.splitlines() if (m := re.search(pattern, line.strip())) for v in m.groups())

    memory = json.loads((nucleo_build / "manifest.json").read_text())["memory"]
    assert total(flash_re) == memory["flash"]["total"]
    assert total(ram_re) == memory["ram"]["total"]
    assert memory["flash"]["model_weights"] > 0 and memory["ram"]["arena"] > 0
