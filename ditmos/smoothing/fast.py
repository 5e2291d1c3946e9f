"""The fast integer smoothing engine of the host: the generated int8 C model
built with the host kernel set (AVX2) and the device's vote loop.

What runs, in one C call per window (``ditmos_smooth_counts``, n noisy
inferences inside C, no Python per sample):

- the device's vote loop and table check (``firmware/runtime/ditmos_smooth.c``,
  ``ditmos_smooth_model.c``), unchanged;
- the integer noise by ``firmware/tools/ditmos_smooth_avx2.c``: the same
  counter-based generator and table search, eight values at a time (the
  portable ``ditmos_noise_s8`` is compiled out with
  ``-DDITMOS_NOISE_S8_EXTERNAL``);
- the generated ``model.c`` / ``weights.c`` (the same files the firmware
  builds), with the reference kernels except convolution and fully connected,
  which come from ``firmware/kernels/host/`` (packed int16 AVX2 products with
  exact int32 sums and TFLM's requantisation lane by lane);
- compiled with ``-O3 -march=native``.

Integer arithmetic has one right answer, so the counts must equal the
reference C engine's (``ditmos_smooth_counts`` built from the reference
kernels and the portable generator) for every window: ``ditmos bench
certify`` checks it on every window it times, and the tests on a tiny model.
x86-64 with AVX2 and a C compiler (gcc, or ``$CC``) are required.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ditmos.errors import DitmosError

FLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O3", "-march=native", "-fPIC", "-shared"]


def host_kernel_sources() -> list[Path]:
    """The reference kernels, with ``firmware/kernels/host/`` replacing or adding files."""
    from ditmos.codegen import kernel_sources
    from ditmos.paths import firmware_dir

    srcs = {p.name: p for p in kernel_sources("ref")}
    for p in sorted((firmware_dir() / "kernels" / "host").glob("*.c")):
        srcs[p.name] = p
    return [srcs[n] for n in sorted(srcs)]


def has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def compile_fast(gen_dir, out: Path, cc: str | None = None) -> Path:
    """Build the generated model in ``gen_dir`` into the fast smoothing library ``out``."""
    from ditmos.codegen import include_dirs
    from ditmos.paths import firmware_dir

    if not has_avx2():
        raise DitmosError("the fast integer smoothing engine needs an x86-64 CPU with AVX2 (use --engine c)")
    cc = cc or os.environ.get("CC") or "gcc"
    if shutil.which(cc) is None:
        raise DitmosError(f"C compiler {cc!r} not found (the fast integer smoothing engine compiles C)")
    gen_dir = Path(gen_dir)
    fw = firmware_dir()
    srcs = [
        gen_dir / "model.c",
        gen_dir / "weights.c",
        *host_kernel_sources(),
        fw / "runtime" / "ditmos_smooth.c",
        fw / "runtime" / "ditmos_smooth_model.c",
        fw / "tools" / "ditmos_smooth_avx2.c",
        fw / "tools" / "ditmos_smooth_batch.c",
    ]
    cmd = [
        cc,
        *FLAGS,
        "-DDITMOS_NOISE_S8_EXTERNAL",
        "-o",
        str(out),
        *map(str, srcs),
        f"-I{gen_dir}",
        *[f"-I{p}" for p in include_dirs("ref")],
        f"-I{fw / 'kernels' / 'host'}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DitmosError(f"compiling the fast integer smoothing engine failed:\n{proc.stderr.strip()}")
    return Path(out)
