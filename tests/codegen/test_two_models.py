"""Two different generated models, each with its own symbol prefix, link into
one host binary beside one kernel set (and a translation unit including both
headers); each still matches TFLM, and every symbol the binary exports carries
a model prefix or the kernels' ``dtm_``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from ditmos.codegen import generate, include_dirs, kernel_sources
from ditmos.codegen.host import WARNINGS, HostModel
from ditmos.quantize.reference import ComposedReference

GOLDEN_INT8 = Path(__file__).parent / "golden" / "int8"
GLUE = """\
#include "golden/model.h"
#include "tiny/model.h"
/* Both headers in one translation unit: no macro, type or guard collides. */
int glue_input_sizes(void) { return GOLDEN_INPUT_SIZE * 1000 + TINY_INPUT_SIZE; }
"""
TOOLCHAIN = {"_init", "_fini", "__bss_start", "_edata", "_end"}


def _exports(lib: Path) -> list[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], check=True, capture_output=True, text=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def test_two_models_in_one_binary_match_tflm(cg_int8, cg_test_x, tmp_path):
    models = {"golden": GOLDEN_INT8, "tiny": cg_int8}
    manifests = {
        name: generate(int8, tmp_path / name, kernels="cm7", prefix=f"{name}_") for name, int8 in models.items()
    }
    (tmp_path / "glue.c").write_text(GLUE)
    lib = tmp_path / "libtwo.so"
    srcs = [tmp_path / n / f for n in models for f in ("model.c", "weights.c")]
    subprocess.run(
        [
            "gcc",
            *WARNINGS,
            "-O2",
            "-fPIC",
            "-shared",
            "-o",
            str(lib),
            *map(str, srcs),
            *map(str, kernel_sources("cm7")),
            str(tmp_path / "glue.c"),
            f"-I{tmp_path}",
            *[f"-I{p}" for p in include_dirs("cm7")],
        ],
        check=True,
        capture_output=True,
        text=True,
    )

    exported = [s for s in _exports(lib) if s not in TOOLCHAIN]
    prefixes = ("golden_", "tiny_", "dtm_", "glue_")  # GOLDEN_INPUT_SCALE: the macro case
    stray = sorted(s for s in exported if not s.lower().startswith(prefixes))
    assert exported and not stray, stray
    assert {"golden_infer", "tiny_infer", "dtm_conv1d_s8"} <= set(exported)

    rng = np.random.default_rng(3)
    for name, int8 in models.items():
        m = manifests[name]
        T, C = m["input_shape"]
        host = HostModel(lib, input_size=T * C, num_classes=m["num_classes"], K=m["K"], prefix=m["prefix"])
        ref = ComposedReference(int8)
        xs = cg_test_x[:12] if name == "tiny" else rng.normal(0, 1.5, (12, *ref.input_shape)).astype(np.float32)
        for x in ref.quantize_input(xs):
            pred, route, logits = ref.predict_one(x)
            p2, r2, s2 = host.infer(x)
            assert (p2, r2) == (pred, route), name
            np.testing.assert_array_equal(s2, logits, err_msg=name)


def test_a_bad_prefix_is_a_clear_error(tmp_path):
    import pytest

    from ditmos.errors import DitmosError

    for bad in ("Ditmos_", "kws", "9x_", "a-b_"):
        with pytest.raises(DitmosError, match="symbol prefix"):
            generate(GOLDEN_INT8, tmp_path, prefix=bad)
