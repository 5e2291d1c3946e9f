"""``hapt12``: UCI HAPT with its six postural transitions kept as classes.

Classes 0..5 are the six activities of ``hapt``, with exactly the windows of
``hapt`` (128 samples, hop 64, inside each activity segment; taken from
``datasets/hapt/hapt.npz``).  Classes 6..11 are the postural transitions
(source labels 7..12), shipped in ``datasets/hapt12/hapt12.npz`` with 64
samples of the surrounding signal on each side.

Transitions last 74..494 samples (median ~180, i.e. 1.5..10 s), so most of
them are too short for the activity windowing to give even one window.  A
transition window is labelled by its centre sample instead: windows of 128
samples whose centre (sample 64) lies inside the transition, one every
``TRANSITION_HOP`` = 16 samples starting at the transition's first sample.
A transition of L samples gives ceil(L / 16) windows; the shortest (74
samples) still gives 5, each with at least 64 transition samples in the
middle and the neighbouring posture at the edges.  ``datasets/hapt12/README.md``
documents origin, licence and the resulting counts.
"""

from __future__ import annotations

import numpy as np

from ditmos.data import hapt
from ditmos.data.core import Dataset
from ditmos.data.shipped import open_shipped

WINDOW = hapt.WINDOW
TRANSITION_HOP = 16
TRANSITION_NAMES = ["stand_to_sit", "sit_to_stand", "sit_to_lie", "lie_to_sit", "stand_to_lie", "lie_to_stand"]
CLASS_NAMES = hapt.CLASS_NAMES + TRANSITION_NAMES


def transition_windows(span: np.ndarray, pre: int, length: int) -> np.ndarray:
    """Windows ``[n, WINDOW, C]`` of one stored transition ``span`` (context +
    transition + context; the transition starts at ``pre`` and lasts
    ``length`` samples): centres at ``pre, pre+16, ...`` while inside the
    transition, each window ``[centre-64, centre+64)``.  Windows that would
    leave the stored span are not made."""
    half = WINDOW // 2
    centres = np.arange(pre, pre + length, TRANSITION_HOP)
    centres = centres[(centres - half >= 0) & (centres + half <= len(span))]
    if len(centres) == 0:
        return np.empty((0, WINDOW, span.shape[1]), dtype=span.dtype)
    idx = centres[:, None] - half + np.arange(WINDOW)[None, :]
    return span[idx]


def load() -> Dataset:
    base = hapt.load()
    path, f = open_shipped("hapt12", "hapt12.npz")
    with f:
        signals = f["signals"]
        scale = f["scale"].astype(np.float32)
        seg_len, seg_pre, seg_trans = f["seg_len"], f["seg_pre"], f["seg_trans_len"]
        seg_label, seg_subject = f["seg_label"], f["seg_subject"]
        transition_samples = int(f["transition_samples"])
    starts = np.concatenate([[0], np.cumsum(seg_len)[:-1]])
    parts, labels, groups = [], [], []
    for start, n, pre, length, lab, subj in zip(starts, seg_len, seg_pre, seg_trans, seg_label, seg_subject):
        w = transition_windows(signals[start : start + n], int(pre), int(length))
        parts.append(w)
        labels.append(np.full(len(w), int(lab) - 7 + len(hapt.CLASS_NAMES), np.int64))
        groups.append(np.full(len(w), int(subj), np.int64))
    Xt = np.concatenate(parts).astype(np.float32) * scale
    X = np.concatenate([base.X, Xt])
    y = np.concatenate([base.y, *labels])
    g = np.concatenate([base.groups, *groups])
    expected = sum(-(-int(n) // TRANSITION_HOP) for n in seg_trans)
    info = dict(base.info)
    dropped = dict(info["samples_dropped"])
    dropped.pop("postural transitions (labels 7-12)")
    info.update(
        {
            "path": str(path),
            "activities_from": base.info["path"],
            "transition_hop": TRANSITION_HOP,
            "transitions": int(len(seg_len)),
            "transition_samples": transition_samples,
            "transition_windows": int(len(Xt)),
            "windows_made": int(len(y)),
            "windows_dropped": {"transition windows leaving the stored context": int(expected - len(Xt))},
            "samples_dropped": dropped,
            "windowing": (
                f"activities: {WINDOW} samples, hop {hapt.HOP}, inside each segment; "
                f"transitions: {WINDOW} samples centred on a transition sample, one every "
                f"{TRANSITION_HOP} samples"
            ),
        }
    )
    return Dataset("hapt12", X, y, CLASS_NAMES, groups=g, channel_names=hapt.CHANNEL_NAMES, info=info)
