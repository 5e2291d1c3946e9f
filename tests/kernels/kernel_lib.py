"""Host builds of the int8 kernel sets and ctypes bindings mirroring ditmos_kernels.h.

A kernel *set* is the list of C files a build compiles: every
``firmware/kernels/ref/<op>_s8.c``, with ``firmware/kernels/cm7/<op>_s8.c``
taking its place in the cm7 set when it exists (firmware/kernels/README.md).
The host set (``firmware/kernels/host/``, AVX2, for fast integer smoothing on
a PC) is tested the same way on an x86-64 host with AVX2, and only there.
"""

from __future__ import annotations

import ctypes as C
import subprocess
from pathlib import Path

import numpy as np

from ditmos.codegen.lowering import CONV_MAX_PARTS

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
INCLUDE = FIRMWARE / "include"
KERNELS = FIRMWARE / "kernels"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]
HOST_CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", "-mavx2"]


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


KERNEL_SETS = ("ref", "cm7", "host") if _has_avx2() else ("ref", "cm7")
MAX_PARTS = CONV_MAX_PARTS  # DITMOS_CONV_MAX_PARTS, read from ditmos_kernels.h


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{r.stdout}{r.stderr}")


def kernel_sources(kernel_set: str) -> list[Path]:
    """The C files of one kernel set, ref files replaced by their cm7 twins."""
    if kernel_set not in KERNEL_SETS:
        raise ValueError(f"unknown kernel set {kernel_set!r}")
    sources = {p.name: p for p in sorted((KERNELS / "ref").glob("*_s8.c"))}
    if kernel_set == "cm7":
        for p in sorted((KERNELS / "cm7").glob("*_s8.c")):
            sources[p.name] = p
    if kernel_set == "host":
        for p in sorted((KERNELS / "host").glob("*.c")):
            sources[p.name] = p
    return [sources[name] for name in sorted(sources)]


def build_shared(kernel_set: str, out_dir: Path) -> Path:
    out = Path(out_dir) / f"libditmos_kernels_{kernel_set}.so"
    cmd = [
        "gcc",
        *(HOST_CFLAGS if kernel_set == "host" else CFLAGS),
        "-fPIC",
        "-shared",
        f"-I{INCLUDE}",
        f"-I{KERNELS / kernel_set}",
        *map(str, kernel_sources(kernel_set)),
        "-o",
        str(out),
    ]
    _run(cmd)
    return out


I8P = C.POINTER(C.c_int8)
I32P = C.POINTER(C.c_int32)


class ConvPart(C.Structure):
    _fields_ = [("channels", C.c_int32), ("input_offset", C.c_int32)]


class ConvParams(C.Structure):
    _fields_ = [
        ("num_parts", C.c_int32),
        ("parts", ConvPart * MAX_PARTS),
        ("in_len", C.c_int32),
        ("out_len", C.c_int32),
        ("out_channels", C.c_int32),
        ("kernel_size", C.c_int32),
        ("stride", C.c_int32),
        ("pad", C.c_int32),
        ("weights", I8P),
        ("bias", I32P),
        ("multiplier", I32P),
        ("shift", I32P),
        ("output_offset", C.c_int32),
        ("act_min", C.c_int32),
        ("act_max", C.c_int32),
    ]


class PackedParams(C.Structure):
    _fields_ = [
        ("num_parts", C.c_int32),
        ("channels", C.c_int32 * MAX_PARTS),
        ("head", C.c_int32 * MAX_PARTS),
        ("zero_point", C.c_int32 * MAX_PARTS),
        *[
            (n, C.c_int32)
            for n in ("in_len", "out_len", "out_channels", "kernel_size", "stride", "pad", "act_min", "act_max")
        ],
        ("stream", I32P),
    ]


class LutParams(C.Structure):
    _fields_ = [("size", C.c_int32), ("table", I8P)]


class DepthwiseParams(C.Structure):
    _fields_ = [
        ("in_len", C.c_int32),
        ("in_channels", C.c_int32),
        ("depth_multiplier", C.c_int32),
        ("out_len", C.c_int32),
        ("kernel_size", C.c_int32),
        ("stride", C.c_int32),
        ("pad", C.c_int32),
        ("input_offset", C.c_int32),
        ("weights", I8P),
        ("bias", I32P),
        ("multiplier", I32P),
        ("shift", I32P),
        ("output_offset", C.c_int32),
        ("act_min", C.c_int32),
        ("act_max", C.c_int32),
    ]


class FcParams(C.Structure):
    _fields_ = [
        ("batches", C.c_int32),
        ("in_features", C.c_int32),
        ("out_features", C.c_int32),
        ("input_offset", C.c_int32),
        ("weights", I8P),
        ("bias", I32P),
        ("per_channel", C.c_int32),
        ("multiplier", I32P),
        ("shift", I32P),
        ("output_offset", C.c_int32),
        ("act_min", C.c_int32),
        ("act_max", C.c_int32),
    ]


class PoolParams(C.Structure):
    _fields_ = [
        (n, C.c_int32) for n in ("in_len", "channels", "out_len", "pool_size", "stride", "pad", "act_min", "act_max")
    ]


class MeanParams(C.Structure):
    _fields_ = [
        (n, C.c_int32) for n in ("in_len", "channels", "input_zero_point", "output_zero_point", "multiplier", "shift")
    ]


class AddParams(C.Structure):
    _fields_ = [
        (n, C.c_int32)
        for n in (
            "size",
            "left_shift",
            "input1_offset",
            "input1_multiplier",
            "input1_shift",
            "input2_offset",
            "input2_multiplier",
            "input2_shift",
            "output_offset",
            "output_multiplier",
            "output_shift",
            "act_min",
            "act_max",
        )
    ]


class RequantizeParams(C.Structure):
    _fields_ = [(n, C.c_int32) for n in ("size", "input_zero_point", "output_zero_point", "multiplier", "shift")]


class SoftmaxParams(C.Structure):
    _fields_ = [(n, C.c_int32) for n in ("rows", "depth", "input_multiplier", "input_left_shift", "diff_min")]


class ArgmaxParams(C.Structure):
    _fields_ = [("rows", C.c_int32), ("depth", C.c_int32)]


def _i8(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.int8))


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.int32))


def _p8(a: np.ndarray):
    return a.ctypes.data_as(I8P)


def _p32(a: np.ndarray | None):
    return a.ctypes.data_as(I32P) if a is not None else None


class Kernels:
    """Python calls into one compiled kernel set; arrays in, int8 arrays out."""

    def __init__(self, so_path: Path):
        self.lib = C.CDLL(str(so_path))
        sigs = {
            "dtm_conv1d_s8": [C.POINTER(ConvParams), C.POINTER(I8P), I8P],
            "dtm_depthwise_conv1d_s8": [C.POINTER(DepthwiseParams), I8P, I8P],
            "dtm_fully_connected_s8": [C.POINTER(FcParams), I8P, I8P],
            "dtm_max_pool1d_s8": [C.POINTER(PoolParams), I8P, I8P],
            "dtm_avg_pool1d_s8": [C.POINTER(PoolParams), I8P, I8P],
            "dtm_mean_s8": [C.POINTER(MeanParams), I8P, I8P],
            "dtm_add_s8": [C.POINTER(AddParams), I8P, I8P, I8P],
            "dtm_requantize_s8": [C.POINTER(RequantizeParams), I8P, I8P],
            "dtm_softmax_s8": [C.POINTER(SoftmaxParams), I8P, I8P],
            "dtm_argmax_s8": [C.POINTER(ArgmaxParams), I8P, I32P],
        }
        for name, args in sigs.items():
            fn = getattr(self.lib, name)
            fn.argtypes = args
            fn.restype = None
        # the register-blocked variant exists in the cm7 set only
        self.has_packed = hasattr(self.lib, "dtm_conv1d_packed_s8")
        if hasattr(self.lib, "dtm_requantize_lut_s8"):
            self.lib.dtm_requantize_lut_s8.argtypes = [C.POINTER(LutParams), I8P, I8P]
            self.lib.dtm_requantize_lut_s8.restype = None
        if self.has_packed:
            self.lib.dtm_conv1d_packed_s8.argtypes = [C.POINTER(PackedParams), C.POINTER(I8P), I8P]
            self.lib.dtm_conv1d_packed_s8.restype = None

    def requantize_lut(self, x, table):
        x, t = _i8(x), _i8(table)
        p = LutParams(size=x.size, table=_p8(t))
        out = np.zeros_like(x)
        self.lib.dtm_requantize_lut_s8(C.byref(p), _p8(x), _p8(out))
        return out

    def packed(self, call, xs):
        """Run a dtm_conv1d_packed_s8 Call (ditmos.codegen.variants) on inputs xs."""
        f = call.fields
        arr = {k: _i32(a.values) for k, a in call.arrays.items()}
        p = PackedParams(
            num_parts=f["num_parts"],
            in_len=f["in_len"],
            out_len=f["out_len"],
            out_channels=f["out_channels"],
            kernel_size=f["kernel_size"],
            stride=f["stride"],
            pad=f["pad"],
            act_min=f["act_min"],
            act_max=f["act_max"],
            stream=_p32(arr["stream"]),
        )
        for i in range(MAX_PARTS):
            p.channels[i], p.head[i], p.zero_point[i] = (f["channels"][i], f["head"][i], f["zero_point"][i])
        xs = [_i8(x) for x in xs]
        ptrs = (I8P * len(xs))(*[_p8(x) for x in xs])
        out = np.zeros((f["out_len"], f["out_channels"]), dtype=np.int8)
        self.lib.dtm_conv1d_packed_s8(C.byref(p), ptrs, _p8(out))
        return out

    def conv1d(
        self,
        parts,
        weights,
        bias,
        multiplier,
        shift,
        *,
        kernel_size,
        stride,
        pad,
        out_len,
        output_offset,
        act_min=-128,
        act_max=127,
    ):
        """parts: list of (x [T][C_p] int8, input_offset); weights part-major [O][sum K*C_p]."""
        xs = [_i8(x) for x, _ in parts]
        in_len = xs[0].shape[0]
        w = _i8(weights)
        out_ch = w.shape[0]
        b = _i32(bias) if bias is not None else None
        m, s = _i32(multiplier), _i32(shift)
        p = ConvParams(
            num_parts=len(xs),
            in_len=in_len,
            out_len=out_len,
            out_channels=out_ch,
            kernel_size=kernel_size,
            stride=stride,
            pad=pad,
            weights=_p8(w),
            bias=_p32(b),
            multiplier=_p32(m),
            shift=_p32(s),
            output_offset=output_offset,
            act_min=act_min,
            act_max=act_max,
        )
        for i, (x, (_, off)) in enumerate(zip(xs, parts)):
            p.parts[i] = ConvPart(x.shape[1], off)
        ptrs = (I8P * len(xs))(*[_p8(x) for x in xs])
        out = np.zeros((out_len, out_ch), dtype=np.int8)
        self.lib.dtm_conv1d_s8(C.byref(p), ptrs, _p8(out))
        return out

    def depthwise_conv1d(
        self,
        x,
        weights,
        bias,
        multiplier,
        shift,
        *,
        depth_multiplier,
        kernel_size,
        stride,
        pad,
        out_len,
        input_offset,
        output_offset,
        act_min=-128,
        act_max=127,
    ):
        x, w = _i8(x), _i8(weights)
        b = _i32(bias) if bias is not None else None
        m, s = _i32(multiplier), _i32(shift)
        p = DepthwiseParams(
            in_len=x.shape[0],
            in_channels=x.shape[1],
            depth_multiplier=depth_multiplier,
            out_len=out_len,
            kernel_size=kernel_size,
            stride=stride,
            pad=pad,
            input_offset=input_offset,
            weights=_p8(w),
            bias=_p32(b),
            multiplier=_p32(m),
            shift=_p32(s),
            output_offset=output_offset,
            act_min=act_min,
            act_max=act_max,
        )
        out = np.zeros((out_len, x.shape[1] * depth_multiplier), dtype=np.int8)
        self.lib.dtm_depthwise_conv1d_s8(C.byref(p), _p8(x), _p8(out))
        return out

    def fully_connected(
        self, x, weights, bias, multiplier, shift, *, input_offset, output_offset, act_min=-128, act_max=127
    ):
        x, w = _i8(np.atleast_2d(x)), _i8(weights)
        b = _i32(bias) if bias is not None else None
        m, s = _i32(np.atleast_1d(multiplier)), _i32(np.atleast_1d(shift))
        p = FcParams(
            batches=x.shape[0],
            in_features=x.shape[1],
            out_features=w.shape[0],
            input_offset=input_offset,
            weights=_p8(w),
            bias=_p32(b),
            per_channel=int(m.size > 1),
            multiplier=_p32(m),
            shift=_p32(s),
            output_offset=output_offset,
            act_min=act_min,
            act_max=act_max,
        )
        out = np.zeros((x.shape[0], w.shape[0]), dtype=np.int8)
        self.lib.dtm_fully_connected_s8(C.byref(p), _p8(x), _p8(out))
        return out

    def pool1d(self, kind, x, *, pool_size, stride, pad, out_len, act_min=-128, act_max=127):
        x = _i8(x)
        p = PoolParams(
            in_len=x.shape[0],
            channels=x.shape[1],
            out_len=out_len,
            pool_size=pool_size,
            stride=stride,
            pad=pad,
            act_min=act_min,
            act_max=act_max,
        )
        out = np.zeros((out_len, x.shape[1]), dtype=np.int8)
        getattr(self.lib, f"dtm_{kind}_pool1d_s8")(C.byref(p), _p8(x), _p8(out))
        return out

    def mean(self, x, *, input_zero_point, output_zero_point, multiplier, shift):
        x = _i8(x)
        p = MeanParams(
            in_len=x.shape[0],
            channels=x.shape[1],
            input_zero_point=input_zero_point,
            output_zero_point=output_zero_point,
            multiplier=multiplier,
            shift=shift,
        )
        out = np.zeros(x.shape[1], dtype=np.int8)
        self.lib.dtm_mean_s8(C.byref(p), _p8(x), _p8(out))
        return out

    def add(self, a, b, **params):
        a, b = _i8(a), _i8(b)
        p = AddParams(size=a.size, **params)
        out = np.zeros_like(a)
        self.lib.dtm_add_s8(C.byref(p), _p8(a), _p8(b), _p8(out))
        return out

    def requantize(self, x, **params):
        x = _i8(x)
        p = RequantizeParams(size=x.size, **params)
        out = np.zeros_like(x)
        self.lib.dtm_requantize_s8(C.byref(p), _p8(x), _p8(out))
        return out

    def softmax(self, x, **params):
        x = _i8(np.atleast_2d(x))
        p = SoftmaxParams(rows=x.shape[0], depth=x.shape[1], **params)
        out = np.zeros_like(x)
        self.lib.dtm_softmax_s8(C.byref(p), _p8(x), _p8(out))
        return out

    def argmax(self, x):
        x = _i8(np.atleast_2d(x))
        p = ArgmaxParams(rows=x.shape[0], depth=x.shape[1])
        out = np.zeros(x.shape[0], dtype=np.int32)
        self.lib.dtm_argmax_s8(C.byref(p), _p8(x), out.ctypes.data_as(I32P))
        return out


# ---------------------------------------------------------------- self-test binaries

M7_DIR = Path(__file__).resolve().parent / "m7"
M7_ARCH = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]


def _op_names() -> list[str]:
    return [p.stem for p in sorted((KERNELS / "ref").glob("*_s8.c"))]


def build_selftest(
    target: str, out_dir: Path, *, bench: bool = False, rounds: int = 300, extra_cflags: tuple[str, ...] = ()
) -> Path:
    """Build tests/kernels/m7/kernel_selftest.c with both kernel sets in one binary.

    The reference set keeps its names; the cm7 set (cm7 twins, ref files where
    no twin exists) is compiled with every kernel renamed ``cm7_dtm_<op>``.
    ``target`` is "host" (gcc) or "m7" (arm-none-eabi-gcc for QEMU mps2-an500).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cc, arch = ("gcc", []) if target == "host" else ("arm-none-eabi-gcc", M7_ARCH)
    base = [cc, *CFLAGS, *extra_cflags, *arch, f"-I{INCLUDE}", f"-I{M7_DIR}"]
    rename = [f"-Ddtm_{op}=cm7_dtm_{op}" for op in _op_names()]
    objs = []

    def compile_(src: Path, obj: str, extra=()):
        out = out_dir / obj
        _run([*base, *extra, "-c", str(src), "-o", str(out)])
        objs.append(str(out))

    for src in kernel_sources("ref"):
        compile_(src, f"ref_{src.stem}.o")
    for src in kernel_sources("cm7"):
        compile_(src, f"cm7_{src.stem}.o", rename)
    defs = [f"-DSELFTEST_ROUNDS={rounds}"] + (["-DDITMOS_BENCH"] if bench else [])
    compile_(M7_DIR / "kernel_selftest.c", "main.o", defs)
    exe = out_dir / ("selftest" if target == "host" else "selftest.elf")
    if target == "host":
        link = ["gcc", *objs, "-o", str(exe)]
    else:
        compile_(M7_DIR / "startup.c", "startup.o")
        link = [
            cc,
            *arch,
            "-nostartfiles",
            "--specs=nano.specs",
            "--specs=nosys.specs",
            "-T",
            str(M7_DIR / "mps2_an500.ld"),
            *objs,
            "-o",
            str(exe),
        ]
    _run(link)
    return exe


def compile_only(kernel_set: str, flags: list[str], out_dir: Path) -> None:
    """Compile every file of a kernel set for the M7 with extra flags (no link)."""
    for src in kernel_sources(kernel_set):
        _run(
            [
                "arm-none-eabi-gcc",
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                *flags,
                *M7_ARCH,
                f"-I{INCLUDE}",
                "-c",
                str(src),
                "-o",
                str(Path(out_dir) / f"{src.stem}.o"),
            ]
        )


def build_count_plugin(out_dir: Path) -> Path:
    """The project's QEMU instruction-count plugin (the one ``ditmos emulate`` uses)."""
    from ditmos.boards.qemu import build_plugin

    return build_plugin(out_dir)


def symbol_address(elf: Path, name: str) -> int:
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], check=True, capture_output=True, text=True).stdout
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16) & ~1
    raise KeyError(name)


def run_qemu_m7(
    elf: Path, plugin: Path | None = None, counts: Path | None = None, timeout: float = 120
) -> tuple[int, str, list[int]]:
    """Run a semihosting test binary on QEMU mps2-an500; (exit code, output, marks)."""
    cmd = [
        "qemu-system-arm",
        "-M",
        "mps2-an500",
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf),
    ]
    if plugin is not None:
        sled = symbol_address(elf, "bench_mark_sled")
        cmd += ["-plugin", f"{plugin},log={counts},sled={sled:#x},sled_size=2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    marks = []
    if counts is not None and Path(counts).exists():  # `mark <id> <instructions>`
        marks = [int(ln.split()[2]) for ln in Path(counts).read_text().splitlines() if ln.startswith("mark ")]
    return r.returncode, r.stdout + r.stderr, marks
