"""Render a self-contained firmware project for a board and compile it.

``build_project`` takes a directory holding a model that implements the
generated-model C API (docs/artefacts.md section 4: model.h, model.c,
weights.c) and produces BUILD_DIR (docs/artefacts.md section 5).
``build_firmware`` is the product entry point: it runs ``ditmos.codegen``
on an int8 directory first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ditmos import __version__
from ditmos.boards.elf import Elf
from ditmos.boards.registry import COST_KINDS, Board, get_board
from ditmos.codegen import MANIFEST_FORMAT as CODEGEN_FORMAT
from ditmos.errors import DitmosError
from ditmos.harness.protocol import MAX_PAYLOAD, PROTOCOL_VERSION
from ditmos.jsonio import read_json
from ditmos.paths import firmware_dir, templates_dir

# Static RAM of the runtime besides the model (frame buffers, receive ring,
# session): measured ~4.7 KB; the budget keeps room for growth.
RUNTIME_RAM_BUDGET = 12 * 1024
# Code besides the model's weights (runtime, kernels, libc pieces).
CODE_FLASH_BUDGET = 96 * 1024
WARN_FLAGS = ["-Wall", "-Wextra", "-Werror"]
COMMON_CFLAGS = ["-std=c99", "-O2", "-g", "-ffunction-sections", "-fdata-sections", "-fno-common"]
ARM_LDFLAGS = [
    "-T",
    "linker.ld",
    "-nostartfiles",
    "--specs=nano.specs",
    "-Wl,--gc-sections",
    "-Wl,-Map=firmware.map",
    "-Wl,--no-warn-rwx-segments",
]
MODEL_FILES = ("model.h", "model.c", "weights.c", "manifest.json")
FIRMWARE_PREFIX = "ditmos_"  # the runtime (firmware/runtime) calls ditmos_infer()


@dataclass(frozen=True)
class ModelInfo:
    """The facts ``build`` needs about a model, from its codegen manifest."""

    input_t: int
    input_c: int
    num_classes: int
    num_classifiers: int
    arena_size: int
    num_layers: int
    model_hash: str  # the int8 manifest's model_hash (64 hex digits)
    weights_bytes: int  # bytes of the constant tables in weights.c

    @property
    def input_size(self) -> int:
        return self.input_t * self.input_c


def read_model_manifest(model_dir: Path) -> ModelInfo:
    """Read ``model_dir/manifest.json``, the code generator's manifest
    (docs/artefacts.md section 4): the only thing ``build`` reads about a model
    before compiling it."""
    path = Path(model_dir) / "manifest.json"
    m = read_json(path, "run `ditmos build --run RUN_DIR` to generate the model")
    if m.get("format") != CODEGEN_FORMAT:
        raise DitmosError(f"{path}: format {m.get('format')!r} is not {CODEGEN_FORMAT!r}")
    if m.get("prefix", FIRMWARE_PREFIX) != FIRMWARE_PREFIX:
        raise DitmosError(
            f"{path}: the model was generated with the symbol prefix "
            f"{m['prefix']!r}; the firmware runtime calls the default "
            f"{FIRMWARE_PREFIX!r} (ditmos_infer)"
        )
    try:
        T, C = (int(v) for v in m["input_shape"])
        return ModelInfo(
            input_t=T,
            input_c=C,
            num_classes=int(m["num_classes"]),
            num_classifiers=int(m["K"]),
            arena_size=int(m["arena_bytes"]),
            num_layers=int(m["num_layers"]),
            model_hash=str(m["model_hash"]),
            weights_bytes=int(m["weights_bytes"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DitmosError(f"{path} lacks or garbles the key {err} (docs/artefacts.md section 4)") from None


def _toolchain(board: Board) -> tuple[str, str]:
    if board.is_arm:
        cc, objcopy = "arm-none-eabi-gcc", "arm-none-eabi-objcopy"
        if shutil.which(cc) is None:
            raise DitmosError(
                f"the cross compiler {cc} is not installed; on Debian/Ubuntu run "
                "`apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi` "
                "(or scripts/setup.sh)"
            )
        return cc, objcopy
    if shutil.which("gcc") is None:
        raise DitmosError("the host board needs gcc; install it (`apt-get install gcc`)")
    return "gcc", ""


def _placement(board: Board, info: ModelInfo) -> tuple[str, str]:
    """(data_region, arena_region): everything in the first RAM region (DTCM on
    the Nucleo) when it fits, else the arena in the largest other region."""
    first = board.ram[0]
    rest = board.stack_size + RUNTIME_RAM_BUDGET
    if info.arena_size + rest <= first.length:
        return first.name, first.name
    others = sorted(board.ram[1:], key=lambda r: -r.length)
    if rest <= first.length and others and info.arena_size <= others[0].length:
        return first.name, others[0].name
    raise DitmosError(
        f"the model does not fit the RAM of {board.name}: arena {info.arena_size} B + stack "
        f"{board.stack_size} B + runtime ~{RUNTIME_RAM_BUDGET} B, largest layout holds "
        f"{max(r.length for r in board.ram)} B per region ({board.ram_total} B in total)"
    )


def check_fit(board: Board, info: ModelInfo, weights_bytes: int | None = None) -> None:
    """Fail with a clear message, before compiling, if the model cannot fit."""
    if info.input_size > MAX_PAYLOAD:
        raise DitmosError(
            f"the model input ({info.input_t}x{info.input_c} = {info.input_size} bytes) exceeds "
            f"the protocol's {MAX_PAYLOAD}-byte payload limit (docs/protocol.md)"
        )
    if not board.is_arm:
        return
    _placement(board, info)
    if weights_bytes is not None and weights_bytes + CODE_FLASH_BUDGET > board.flash.length:
        raise DitmosError(
            f"the model does not fit the flash of {board.name}: weights {weights_bytes} B + "
            f"code ~{CODE_FLASH_BUDGET} B > {board.flash.length} B"
        )


def _render(name: str, dest: Path, **values) -> None:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    dest.write_text(env.get_template(name).render(version=__version__, **values))


def _copy(src: Path, dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    shutil.copyfile(src, dest)
    return dest


def render_project(
    board: Board,
    model_dir: Path,
    out_dir: Path,
    info: ModelInfo,
    *,
    kernel_sources=(),
    profile: bool = False,
    baud: int | None = None,
    extra_defines=(),
) -> list[str]:
    """Write src/, include/, linker.ld, Makefile, platformio.ini and the example
    application (example/) into out_dir; returns the C sources (relative to out_dir)."""
    fw = firmware_dir()
    cc, objcopy = _toolchain(board)
    for sub in ("src", "include"):
        if (out_dir / sub).exists():
            shutil.rmtree(out_dir / sub)
    sources: list[Path] = []
    for f in sorted(model_dir.iterdir()):
        if f.suffix in (".c", ".h"):
            dest = _copy(f, out_dir / "src" / "model")
            if f.suffix == ".c":
                sources.append(dest)
    for f in sorted((fw / "runtime").glob("*.c")):
        sources.append(_copy(f, out_dir / "src" / "runtime"))
    for rel in board.sources:
        sources.append(_copy(fw / rel, out_dir / "src" / "board"))
    for f in sorted((fw / "include").glob("*.h")):
        _copy(f, out_dir / "include")
    for d in board.include_dirs:
        for f in sorted((fw / d).glob("*.h")):
            _copy(f, out_dir / "include")
    header_dirs = set()
    for k in kernel_sources:
        k = Path(k)
        header_dirs.add(k.parent)
        if k.suffix == ".c":
            sources.append(_copy(k, out_dir / "src" / "kernels"))
    for d in sorted(header_dirs):  # private kernel headers live beside the kernels
        for f in sorted(d.glob("*.h")):
            _copy(f, out_dir / "include")
    if (model_dir / "prepare.h").is_file():  # the user's starting point: example/main.c
        from ditmos.codegen.example import write_example

        write_example(out_dir / "example", model_dir)
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DitmosError(f"two firmware sources share the file name(s) {', '.join(dupes)}; object files would collide")

    defines = [
        f"-DDITMOS_BOARD_{board.name.upper()}=1",
        f"-DDITMOS_UART_BAUD={baud or board.uart.get('baud', 115200)}u",
    ]
    if profile:
        defines.append("-DDITMOS_PROFILE=1")
    if (model_dir / "prepare.h").is_file():  # the RAW request runs the input pipeline
        defines.append("-DDITMOS_HAS_PREPARE=1")
    for name, value in dict(extra_defines).items():
        if not re.fullmatch(r"DITMOS_[A-Z0-9_]+", name) or not re.fullmatch(r"[0-9A-Za-z_]+", str(value)):
            raise DitmosError(f"bad firmware define {name}={value!r}")
        defines.append(f"-D{name}={value}")
    cflags = [*board.cflags, *COMMON_CFLAGS, *WARN_FLAGS, *defines, "-Iinclude", "-Isrc/model"]
    ldflags = ARM_LDFLAGS if board.is_arm else []
    rel_sources = [str(s.relative_to(out_dir)) for s in sources]
    common = dict(board=board.name, model_hash=info.model_hash, kind=board.kind)
    _render(
        "Makefile.j2",
        out_dir / "Makefile",
        cc=cc,
        objcopy=objcopy,
        cflags=cflags,
        ldflags=ldflags,
        sources=rel_sources,
        **common,
    )
    if board.is_arm:
        data_region, arena_region = _placement(board, info)
        _render(
            "linker.ld.j2",
            out_dir / "linker.ld",
            flash=board.flash,
            ram=board.ram,
            stack_size=board.stack_size,
            data_region=data_region,
            arena_region=arena_region,
            **common,
        )
    pio = board.extra.get("platformio")
    if pio:
        write_platformio_project(
            out_dir, board, info=info, defines=defines, baud=baud or board.uart.get("baud", 115200)
        )
    return rel_sources


# Sections of templates/linker.ld.j2 by where they live (flash image, RAM).
FLASH_SECTIONS = (".isr_vector", ".text", ".weights", ".rodata", ".ARM.exidx", ".data")
RAM_SECTIONS = (".stack", ".arena", ".data", ".bss", ".noinit")
# Makefile flags the PlatformIO project leaves out, and why:
#  -Werror: PlatformIO's default toolchain is another GCC (7.2.1) than the one
#           we test with; a warning only it emits must not break a user's build;
#  -Wl,--no-warn-rwx-segments: binutils >= 2.39 only (silences a warning);
#  -Wl,-Map=firmware.map: a by-product of the Makefile build, no effect on the ELF.
PIO_OMITTED_FLAGS = ("-Werror", "-Wl,--no-warn-rwx-segments", "-Wl,-Map=firmware.map")
PIO_PRE_SCRIPT = "ditmos_flags.py"
PIO_POST_SCRIPT = "ditmos_link.py"


def _size_regexp(sections) -> str:
    names = "|".join(re.escape(s) for s in sections)
    return rf"^(?:{names})\s+(\d+).*"


def write_platformio_project(out_dir: Path, board: Board, *, info: ModelInfo, defines: list[str], baud: int) -> None:
    """platformio.ini and its two extra scripts, building the Makefile's firmware.

    Compile-only flags (language, optimisation, warnings, defines, includes) go
    to build_flags, which PlatformIO applies after its platform's own -Os;
    target flags (-mcpu, -mthumb, -mfpu, -mfloat-abi) go to compile, assemble
    and link through the pre-script, and the link-only flags (no start files,
    newlib-nano, section garbage collection) to the link.
    """
    target = list(board.cflags)
    compile_flags = [f for f in [*COMMON_CFLAGS, *WARN_FLAGS, *defines, "-Isrc/model"] if f not in PIO_OMITTED_FLAGS]
    link_flags = [f for f in ARM_LDFLAGS if f not in PIO_OMITTED_FLAGS and f not in ("-T", "linker.ld")]
    common = dict(board=board.name, model_hash=info.model_hash)
    _render(
        "platformio.ini.j2",
        out_dir / "platformio.ini",
        pio=board.extra["platformio"],
        baud=baud,
        compile_flags=compile_flags,
        pre_script=PIO_PRE_SCRIPT,
        post_script=PIO_POST_SCRIPT,
        **common,
    )
    _render(
        "platformio_flags.py.j2",
        out_dir / PIO_PRE_SCRIPT,
        target_flags=repr(target),
        link_flags=repr(link_flags),
        **common,
    )
    _render(
        "platformio_post.py.j2",
        out_dir / PIO_POST_SCRIPT,
        flash_regexp=_size_regexp(FLASH_SECTIONS),
        ram_regexp=_size_regexp(RAM_SECTIONS),
        **common,
    )


def _make(out_dir: Path, *targets: str) -> None:
    cmd = ["make", "-C", str(out_dir), "-j2", "--no-print-directory", *targets]
    if shutil.which("make") is None:
        raise DitmosError("`make` is not installed; install it (`apt-get install make`)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [
            ln
            for ln in (proc.stdout + proc.stderr).strip().splitlines()
            if not ln.startswith(("arm-none-eabi-gcc ", "gcc ", "mkdir "))
        ]
        tail = "\n".join(lines[-25:])
        raise DitmosError(f"compiling the firmware in {out_dir} failed:\n{tail}")


def _object_sizes(out_dir: Path, name: str) -> dict[str, int]:
    path = out_dir / "obj" / name
    if not path.exists():
        return {}
    sizes = {"flash": 0, "ram": 0}
    for s in Elf(path).sections:
        if s.alloc and s.size:
            key = "ram" if s.nobits else "flash"
            sizes[key] += s.size
            if s.flags & 0x1 and not s.nobits:  # initialised data: flash copy and RAM
                sizes["ram"] += s.size
    return sizes


# Objects of the input pipeline (prepare.c and the front end) and of the RAW
# request's buffers (the raw input, its int8 window, the front end's scratch).
PIPELINE_OBJECTS = ("prepare.o", "ditmos_mfcc.o")
RAW_OBJECTS = ("ditmos_raw.o",)
_MAP_ENTRY = re.compile(r"^ (\.[\w.$-]+|COMMON)?\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S+\.o)\s*$")
_MAP_NAME = re.compile(r"^ (\.[\w.$-]+|COMMON)\s*$")


def _part_of(section: str) -> str | None:
    if section.startswith(".text"):
        return "code"
    if section.startswith(".rodata"):
        return "constants"
    if section.startswith(".data"):
        return "data"
    if section.startswith(".bss") or section == "COMMON":
        return "bss"
    return None


def _add_part(sizes: dict, part: str | None, size: int) -> None:
    if part == "code" or part == "constants":
        sizes[part] += size
    elif part == "data":  # initial values in flash, the variables in RAM
        sizes["constants"] += size
        sizes["ram"] += size
    elif part == "bss":
        sizes["ram"] += size


def linked_object_sizes(map_text: str, objects) -> dict[str, int]:
    """Code, constants and RAM bytes the linker placed from ``objects`` (file
    names), read from a GNU ld map file (what --gc-sections kept)."""
    sizes = {"code": 0, "constants": 0, "ram": 0}
    _, sep, body = map_text.partition("Linker script and memory map")
    if not sep:
        raise DitmosError("the linker map has no memory map section")
    pending = None
    for line in body.splitlines():
        m = _MAP_NAME.match(line)
        if m:
            pending = m.group(1)
            continue
        m = _MAP_ENTRY.match(line)
        if m:
            name = m.group(1) or pending
            pending = None
            if name and Path(m.group(4)).name in objects:
                _add_part(sizes, _part_of(name), int(m.group(3), 16))
        elif line.strip():
            pending = None
    return sizes


def object_part_sizes(out_dir: Path, objects) -> dict[str, int]:
    """The same from the compiled objects (host board: no linker map)."""
    sizes = {"code": 0, "constants": 0, "ram": 0}
    for name in objects:
        path = out_dir / "obj" / name
        if path.exists():
            for sec in Elf(path).sections:
                if sec.alloc and sec.size:
                    _add_part(sizes, _part_of(sec.name), sec.size)
    return sizes


def pipeline_memory(board: Board, out_dir: Path, elf: Elf | None = None) -> dict | None:
    """The input pipeline's share of the firmware (None without prepare.c)."""
    if not (out_dir / "obj" / "prepare.o").exists():
        return None
    if board.is_arm:
        text = (out_dir / "firmware.map").read_text(errors="replace")
        pipe, raw = linked_object_sizes(text, PIPELINE_OBJECTS), linked_object_sizes(text, RAW_OBJECTS)
        source = "linker map (firmware.map)"
    else:
        pipe, raw = object_part_sizes(out_dir, PIPELINE_OBJECTS), object_part_sizes(out_dir, RAW_OBJECTS)
        source = "compiled objects (before linking)"
    if elf is not None:  # the RAW request's buffers one by one (static symbols of ditmos_raw.c)
        for key, sym in (("raw_input", "raw_buf"), ("window", "raw_window"), ("scratch", "raw_scratch")):
            raw[key] = elf.symbols[sym].size if sym in elf.symbols else 0
    return {**pipe, "raw_request": raw, "source": source}


def memory_table(board: Board, elf: Elf, out_dir: Path, info: ModelInfo) -> dict:
    """Flash and RAM use per part, from the linked ELF (arm) or objects (host)."""
    if board.is_arm:
        flash = {
            "code": elf.size(".isr_vector") + elf.size(".text") + elf.size(".ARM.exidx"),
            "model_weights": elf.size(".weights"),
            "constants": elf.size(".rodata"),
            "data_init": elf.size(".data"),
        }
        ram = {
            "arena": elf.size(".arena"),
            "stack": elf.size(".stack"),
            "data_bss": elf.size(".data") + elf.size(".bss") + elf.size(".noinit"),
        }
        sections = {s.name: {"address": s.addr, "size": s.size} for s in elf.sections if s.alloc and s.size}
        flash_limit, ram_limit = board.flash.length, board.ram_total
    else:
        weights = _object_sizes(out_dir, "weights.o").get("flash", 0)
        flash = {
            "code": elf.size(".text"),
            "model_weights": weights,
            "constants": max(elf.size(".rodata") - weights, 0),
            "data_init": elf.size(".data"),
        }
        ram = {"arena": info.arena_size, "stack": 0, "data_bss": elf.size(".data") + elf.size(".bss")}
        sections, flash_limit, ram_limit = {}, None, None
    table = {
        "flash": {**flash, "total": sum(flash.values()), "limit": flash_limit},
        "ram": {**ram, "total": sum(ram.values()), "limit": ram_limit},
        "sections": sections,
    }
    pipe = pipeline_memory(board, out_dir, elf)
    if pipe is not None:
        table["input_pipeline"] = pipe
    return table


def format_memory_table(board_name: str, memory: dict) -> str:
    """A plain-text table of ``memory_table``'s result."""
    lines = [f"memory use on {board_name}:", f"  {'part':<16}{'bytes':>10}{'share':>9}"]
    for region in ("flash", "ram"):
        m = memory[region]
        limit = m.get("limit")
        lines.append(f"  {region.upper()}" + (f" (of {limit} B)" if limit else ""))
        for key, v in m.items():
            if key in ("total", "limit"):
                continue
            share = f"{100 * v / limit:8.2f}%" if limit else ""
            lines.append(f"    {key.replace('_', ' '):<14}{v:>10}{share}")
        share = f"{100 * m['total'] / limit:8.2f}%" if limit else ""
        lines.append(f"    {'total':<14}{m['total']:>10}{share}")
    pipe = memory.get("input_pipeline")
    if pipe:
        raw = pipe["raw_request"]
        lines.append("  INPUT PIPELINE (prepare.c, front end; included above)")
        for key in ("code", "constants", "ram"):
            lines.append(f"    {key:<14}{pipe[key]:>10}")
        lines.append(
            f"    {'RAW buffers':<14}{raw['ram']:>10}  RAM: raw input "
            f"{raw.get('raw_input', '?')}, window {raw.get('window', '?')}, front-end "
            f"scratch {raw.get('scratch', '?')} (+{raw['code']} B code)"
        )
    return "\n".join(lines)


def _check_objects(board: Board, out_dir: Path, info: ModelInfo) -> None:
    """Second fit check, on the compiled objects, before linking."""
    if not board.is_arm:
        return
    flash = sum(_object_sizes(out_dir, p.name).get("flash", 0) for p in sorted((out_dir / "obj").glob("*.o")))
    if flash > board.flash.length:
        raise DitmosError(
            f"the firmware does not fit the flash of {board.name}: its objects hold {flash} B "
            f"of code and constants, the flash has {board.flash.length} B"
        )
    ram_model = _object_sizes(out_dir, "model.o").get("ram", 0)
    check_fit(board, ModelInfo(**{**info.__dict__, "arena_size": max(info.arena_size, ram_model)}))


KNOWN_ANSWER_SEED = 0x5E1F7E57
KNOWN_ANSWERS = 8


def known_answers(model_dir: Path, info: ModelInfo, kernel_sources, work_dir: Path) -> list[dict] | None:
    """A few fixed pseudo-random inputs and the model's answers to them,
    computed on the host with the reference kernels
    (firmware/tools/ditmos_known_answer.c); None without a host C compiler.
    `ditmos selftest` checks that the device gives the same answers."""
    import numpy as np

    if shutil.which("gcc") is None:
        return None
    from ditmos.codegen import kernel_sources as ref_sources

    kernels = ref_sources("ref") if kernel_sources else []
    if kernel_sources:
        # cm7-only variants (register-blocked conv, LUT requantize) have no
        # reference twin; their portable C path is bit-exact with it.
        kdir = firmware_dir() / "kernels"
        kernels += [p for p in sorted((kdir / "cm7").glob("*.c")) if not (kdir / "ref" / p.name).is_file()]
    exe = work_dir / "known_answer"
    cmd = [
        "gcc",
        "-std=c99",
        "-O1",
        "-o",
        str(exe),
        str(firmware_dir() / "tools" / "ditmos_known_answer.c"),
        *map(str, sorted(model_dir.glob("*.c"))),
        *map(str, kernels),
        f"-I{model_dir}",
        f"-I{firmware_dir() / 'include'}",
        f"-I{firmware_dir() / 'kernels' / 'cm7'}",
        "-lm",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DitmosError(f"compiling the model for the host (known answers) failed:\n{proc.stderr.strip()[-2000:]}")
    rng = np.random.default_rng(KNOWN_ANSWER_SEED)
    inputs = [rng.integers(-128, 128, info.input_size, dtype=np.int8).tobytes().hex() for _ in range(KNOWN_ANSWERS)]
    run = subprocess.run([str(exe), *inputs], capture_output=True, text=True, timeout=60)
    exe.unlink(missing_ok=True)
    lines = run.stdout.splitlines()
    if run.returncode != 0 or len(lines) != len(inputs):
        raise DitmosError(f"the host build of the model failed on the known inputs (exit {run.returncode})")
    answers = []
    for x, line in zip(inputs, lines):
        values = [int(v) for v in line.split()]
        answers.append({"input": x, "predicted": values[0], "route": values[1], "scores": values[2:]})
    return answers


def build_project(
    board: str | Board,
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    kernels: str | None = None,
    kernel_sources=(),
    profile: bool = False,
    baud: int | None = None,
    weights_bytes: int | None = None,
    extra_manifest: dict | None = None,
    extra_defines=(),
    stack_size: int | None = None,
) -> Path:
    """Render and compile the firmware for ``board`` from a model directory.

    Returns ``out_dir``, which then holds firmware.elf (and firmware.bin for
    arm boards) and manifest.json.  ``extra_defines`` ({"DITMOS_NAME": value})
    sets firmware build switches such as DITMOS_CLOCK_FORCE_TIMEOUT (Nucleo) or
    the host board's DITMOS_HOST_CLOCK_HZ.  ``stack_size`` (bytes) overrides the
    board's stack reservation (boards.json ``stack_size``).  Raises DitmosError
    before compiling when the model cannot fit the board.
    """
    board = with_stack_size(get_board(board) if isinstance(board, str) else board, stack_size)
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    for name in MODEL_FILES:
        if not (model_dir / name).is_file():
            raise DitmosError(
                f"the model directory {model_dir} has no {name} "
                "(expected generated model.h, model.c, weights.c, manifest.json)"
            )
    info = read_model_manifest(model_dir)
    check_fit(board, info, info.weights_bytes if weights_bytes is None else weights_bytes)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("firmware.elf", "firmware.bin", "manifest.json"):
        (out_dir / stale).unlink(missing_ok=True)
    if (out_dir / "obj").exists():
        shutil.rmtree(out_dir / "obj")
    sources = render_project(
        board,
        model_dir,
        out_dir,
        info,
        kernel_sources=kernel_sources,
        profile=profile,
        baud=baud,
        extra_defines=extra_defines,
    )
    _make(out_dir, *[f"obj/{Path(s).stem}.o" for s in sources])
    _check_objects(board, out_dir, info)
    _make(out_dir)

    elf_path = out_dir / "firmware.elf"
    elf = Elf(elf_path)
    memory = memory_table(board, elf, out_dir, info)
    manifest = {
        "format": "ditmos-build/1",
        "board": board.name,
        "model_hash": info.model_hash,
        "kernels": kernels,
        "profile": profile,
        "protocol_version": PROTOCOL_VERSION,
        "cost_kind": COST_KINDS[board.cost_kind],
        "core_clock_hz": board.core_clock_hz,
        "baud": baud or board.uart.get("baud"),
        "input_shape": [info.input_t, info.input_c],
        "num_classes": info.num_classes,
        "num_layers": info.num_layers if profile else 0,
        "memory": memory,
        "elf": "firmware.elf",
        "elf_sha256": hashlib.sha256(elf_path.read_bytes()).hexdigest(),
        **({"bin_sha256": hashlib.sha256((out_dir / "firmware.bin").read_bytes()).hexdigest()} if board.is_arm else {}),
        "ditmos_version": __version__,
    }
    if "ditmos_mark_sled" in elf.symbols:
        sled = elf.symbol("ditmos_mark_sled")
        manifest["marker"] = {"sled": sled.value & ~1, "sled_size": sled.size}
    manifest["known_answers"] = known_answers(model_dir, info, kernel_sources, out_dir)
    if extra_manifest:
        manifest.update(extra_manifest)
    tmp = out_dir / ".manifest.json.tmp"  # written last and renamed: marks the build complete
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out_dir / "manifest.json")
    return out_dir


def with_stack_size(board: Board, stack_size: int | None) -> Board:
    """``board`` with its stack reservation replaced (arm boards; multiple of 8)."""
    if stack_size is None:
        return board
    if not board.is_arm:
        raise DitmosError(f"--stack-size applies to Arm boards; {board.name} runs on the host's own stack")
    if stack_size < 256 or stack_size % 8:
        raise DitmosError(f"the stack size must be a multiple of 8 bytes and at least 256, got {stack_size}")
    return dataclasses.replace(board, stack_size=int(stack_size))


def build_firmware(
    board: str,
    int8_dir: str | Path,
    out_dir: str | Path,
    *,
    kernels: str | None = None,
    profile: bool = False,
    strategy: str = "slicing",
    baud: int | None = None,
    stack_size: int | None = None,
) -> Path:
    """Generate C for an int8 directory (ditmos.codegen) and build it for a board."""
    from ditmos import codegen

    b = with_stack_size(get_board(board), stack_size)
    kernels = kernels or b.default_kernels
    if kernels not in codegen.KERNEL_SETS:
        raise DitmosError(f"unknown kernels '{kernels}'; choose 'ref' or 'cm7'")
    if kernels == "cm7" and not b.is_arm:
        raise DitmosError(f"the cm7 kernels need an Arm board; {board} builds with 'ref'")
    int8_dir, out_dir = Path(int8_dir), Path(out_dir)
    if not (int8_dir / "manifest.json").is_file():
        raise DitmosError(
            f"{int8_dir} is not an int8 directory (no manifest.json); run `ditmos quantize RUN_DIR` first"
        )
    model_dir = out_dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    codegen.generate(int8_dir, model_dir, kernels=kernels, strategy=strategy, profile=profile)
    return build_project(
        b,
        model_dir,
        out_dir,
        kernels=kernels,
        kernel_sources=codegen.kernel_sources(kernels),
        profile=profile,
        baud=baud,
        extra_manifest={"int8_dir": str(int8_dir.resolve()), "strategy": strategy},
    )
