"""A reviewed golden snapshot of the generated code for one small fixed model
(``golden/int8/``: committed .tflite files + manifest).  Template or lowering
changes show up here, in review.

To regenerate deliberately::

    DITMOS_UPDATE_GOLDEN=1 python -m pytest tests/codegen/test_golden.py

(``python -m tests.codegen.test_golden --rebuild-model`` also re-creates the
small int8 model itself, which changes every byte; only do that on purpose.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ditmos.codegen import generate

GOLDEN = Path(__file__).parent / "golden"
FILES = ("model.h", "model.c", "weights.c")


def _regenerate(out: Path) -> dict:
    return generate(GOLDEN / "int8", out, kernels="ref", strategy="slicing")


def test_generated_code_matches_golden(tmp_path):
    _regenerate(tmp_path)
    if os.environ.get("DITMOS_UPDATE_GOLDEN"):
        for f in FILES:
            (GOLDEN / f).write_text((tmp_path / f).read_text())
    for f in FILES:
        want = (GOLDEN / f).read_text()
        got = (tmp_path / f).read_text()
        assert got == want, (
            f"{f} differs from tests/codegen/golden/{f}; review the diff "
            f"and regenerate with DITMOS_UPDATE_GOLDEN=1 if intended"
        )


def test_golden_model_is_still_bit_exact(tmp_path):
    """The snapshot is not just text: it compiles and matches TFLM."""
    from ditmos.codegen import host
    from ditmos.quantize.reference import ComposedReference

    ref = ComposedReference(GOLDEN / "int8")
    for f in FILES:
        (tmp_path / f).write_text((GOLDEN / f).read_text())
    _regenerate(tmp_path / "m")  # for manifest.json
    (tmp_path / "manifest.json").write_text((tmp_path / "m" / "manifest.json").read_text())
    hm = host.load(tmp_path, "ref")
    xs = np.random.default_rng(5).normal(0, 1.5, (16, *ref.input_shape)).astype(np.float32)
    for x in ref.quantize_input(xs):
        pred, route, logits = ref.predict_one(x)
        p2, r2, s2 = hm.infer(x)
        assert (p2, r2) == (pred, route)
        np.testing.assert_array_equal(s2, logits)


if __name__ == "__main__":  # pragma: no cover - deliberate regeneration only
    if "--rebuild-model" in sys.argv:
        import shutil

        from tests.codegen.tinymodels import make_int8_dir

        shutil.rmtree(GOLDEN / "int8", ignore_errors=True)
        make_int8_dir(GOLDEN / "int8", T=16, C=2, K=2, num_classes=3, n_calib=16, n_test=1, sel_ch=(4, 6), dense=8)
        (GOLDEN / "test_x.npy").unlink(missing_ok=True)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _regenerate(Path(tmp))
        for f in FILES:
            (GOLDEN / f).write_text((Path(tmp) / f).read_text())
    print(f"golden snapshot written to {GOLDEN}")
