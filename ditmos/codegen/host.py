"""Compile generated model code on the host and call it through ctypes.

Used by the bit-exactness tests and benchmarks: the generated ``model.c`` +
``weights.c`` and a kernel set are built with the host C compiler
(``-std=c99 -Wall -Wextra -Werror``) into a shared library.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError

WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]


def compile_model(
    gen_dir,
    kernels: str = "ref",
    *,
    out: Path | None = None,
    cc: str | None = None,
    extra_flags: list[str] | None = None,
) -> Path:
    """Build ``gen_dir``'s model into a shared library; return its path."""
    from ditmos.codegen import include_dirs, kernel_sources

    gen_dir = Path(gen_dir)
    cc = cc or os.environ.get("CC") or "gcc"
    if shutil.which(cc) is None:
        raise DitmosError(f"C compiler {cc!r} not found")
    out = out or gen_dir / f"libditmos_model_{kernels}.so"
    srcs = [gen_dir / "model.c", gen_dir / "weights.c", *kernel_sources(kernels)]
    cmd = [
        cc,
        *WARNINGS,
        "-O2",
        "-fPIC",
        "-shared",
        "-o",
        str(out),
        *map(str, srcs),
        f"-I{gen_dir}",
        *[f"-I{p}" for p in include_dirs(kernels)],
        *(extra_flags or []),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DitmosError(f"compiling the generated model failed:\n{proc.stderr.strip()}")
    return out


class HostModel:
    """The compiled generated model: ``run_selector``, ``run_classifier``, ``infer``."""

    def __init__(self, lib_path, *, input_size: int, num_classes: int, K: int, prefix: str = "ditmos_"):
        lib = ctypes.CDLL(str(lib_path))
        self.input_size, self.num_classes, self.K = input_size, num_classes, K
        self._infer = getattr(lib, prefix + "infer")
        # DiTMoS models export run_selector / run_classifier, networks run_exit.
        self._run_selector = getattr(lib, prefix + "run_selector", None)
        self._run_classifier = getattr(lib, prefix + "run_classifier", None)
        self._run_exit = getattr(lib, prefix + "run_exit", None)
        self.prefix = prefix

        class Result(ctypes.Structure):
            _fields_ = [
                ("predicted", ctypes.c_uint16),
                ("route", ctypes.c_uint8),
                ("scores", ctypes.c_int8 * num_classes),
            ]

        self._Result = Result
        p8 = ctypes.POINTER(ctypes.c_int8)
        self._infer.argtypes = [p8, ctypes.POINTER(Result)]
        for fn, types in (
            (self._run_selector, [p8, p8]),
            (self._run_classifier, [ctypes.c_int, p8, p8]),
            (self._run_exit, [ctypes.c_int, p8, p8]),
        ):
            if fn is not None:
                fn.argtypes = types

    @staticmethod
    def _ptr(a: np.ndarray):
        return a.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))

    def _input(self, x_q) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(x_q, dtype=np.int8).reshape(-1))
        if x.size != self.input_size:
            raise DitmosError(f"input has {x.size} values, the model expects {self.input_size}")
        return x

    def run_selector(self, x_q) -> np.ndarray:
        x = self._input(x_q)
        out = np.zeros(self.K, np.int8)
        if self._run_selector(self._ptr(x), self._ptr(out)) != 0:
            raise DitmosError(f"{self.prefix}run_selector failed")
        return out

    def run_classifier(self, k: int, x_q) -> np.ndarray:
        x = self._input(x_q)
        out = np.zeros(self.num_classes, np.int8)
        if self._run_classifier(int(k), self._ptr(x), self._ptr(out)) != 0:
            raise DitmosError(f"{self.prefix}run_classifier({k}) failed")
        return out

    def run_exit(self, e: int, x_q) -> np.ndarray:
        """A network's exit ``e`` logits (the last exit is the final head)."""
        if self._run_exit is None:
            raise DitmosError(f"{self.prefix}run_exit: the model is not a network")
        x = self._input(x_q)
        out = np.zeros(self.num_classes, np.int8)
        if self._run_exit(int(e), self._ptr(x), self._ptr(out)) != 0:
            raise DitmosError(f"{self.prefix}run_exit({e}) failed")
        return out

    def infer(self, x_q) -> tuple[int, int, np.ndarray]:
        """(predicted, route, int8 scores)."""
        x = self._input(x_q)
        res = self._Result()
        if self._infer(self._ptr(x), ctypes.byref(res)) != 0:
            raise DitmosError(f"{self.prefix}infer failed")
        return int(res.predicted), int(res.route), np.array(res.scores[:], dtype=np.int8)


def load(gen_dir, kernels: str = "ref", **kw) -> HostModel:
    import json

    gen_dir = Path(gen_dir)
    m = json.loads((gen_dir / "manifest.json").read_text())
    lib = compile_model(gen_dir, kernels, **kw)
    T, C = m["input_shape"]
    return HostModel(
        lib,
        input_size=int(T) * int(C),
        num_classes=int(m["num_classes"]),
        K=int(m["K"]),
        prefix=m.get("prefix", "ditmos_"),
    )
