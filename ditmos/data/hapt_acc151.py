"""``hapt_acc151``: the ``hapt`` windows as accelerometer-only 151x3 windows.

The DiTMoS reference sizes are given for UniMiB-SHAR windows of 151 samples
x 3 accelerometer axes.  This variant brings UCI HAPT to that input shape so
the HAR preset can be measured at its reference size on shipped data:

* the same 10,411 windows as ``hapt`` (128 samples, hop 64, inside each
  activity segment; derived at load time from ``datasets/hapt/hapt.npz``),
* only the three accelerometer channels (total acceleration in g, gravity
  included; the gyroscope is dropped),
* each window resampled from 128 to 151 samples by *linear* interpolation
  with the first and last samples kept (output sample ``i`` sits at input
  position ``i * 127 / 150``).  Linear rather than FFT resampling: a window
  is not periodic (gravity makes a large offset and the ends differ), and an
  FFT resampler would ring at the window edges.  The 2.54 s between the first
  and last sample stay the same, so the effective rate is 50 * 150 / 127
  ~ 59.06 Hz.
* a fixed subject split, part of the dataset (``--seed`` does not change it):
  test = subjects 22..30, validation = subjects 7, 14 and 21 (every seventh of
  the remaining 21, about 15 %), training = the other 18 subjects.
"""

from __future__ import annotations

import numpy as np

from ditmos.data import hapt
from ditmos.data.core import Dataset

WINDOW = 151
CHANNELS = (0, 1, 2)  # acc_x, acc_y, acc_z of hapt
TEST_SUBJECTS = tuple(range(22, 31))
VAL_SUBJECTS = (7, 14, 21)
SAMPLING_RATE_HZ = hapt.SAMPLING_RATE_HZ * (WINDOW - 1) / (hapt.WINDOW - 1)


def resample_linear(X: np.ndarray, length: int) -> np.ndarray:
    """Windows ``[N, T, C]`` -> ``[N, length, C]`` by linear interpolation
    along time, first and last sample kept (output ``i`` at ``i*(T-1)/(length-1)``)."""
    T = X.shape[1]
    pos = np.arange(length, dtype=np.float64) * (T - 1) / (length - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), T - 2)
    frac = (pos - lo).astype(np.float32)[None, :, None]
    return (X[:, lo] * (1 - frac) + X[:, lo + 1] * frac).astype(np.float32)


def raw_scale() -> list[float]:
    """Physical value per int16 count of the three accelerometer channels (1/720 g)."""
    scale = hapt.raw_scale()
    return [scale[c] for c in CHANNELS]


def subject_split(groups: np.ndarray) -> np.ndarray:
    """``"train"``/``"val"``/``"test"`` per window from its subject id."""
    split = np.full(groups.shape, "train", dtype="<U5")
    split[np.isin(groups, VAL_SUBJECTS)] = "val"
    split[np.isin(groups, TEST_SUBJECTS)] = "test"
    return split


def load() -> Dataset:
    base = hapt.load()
    X = resample_linear(base.X[:, :, list(CHANNELS)], WINDOW)
    info = dict(base.info)
    info.update(
        {
            "derived_from": f"hapt ({base.info['path']}): accelerometer channels, resampled",
            "resampling": (f"linear interpolation {hapt.WINDOW} -> {WINDOW} samples per window, end samples kept"),
            "sampling_rate_hz": round(SAMPLING_RATE_HZ, 3),
            "window": WINDOW,
            "hop": f"{hapt.HOP} samples of the {hapt.SAMPLING_RATE_HZ} Hz source ({hapt.WINDOW}-sample windows)",
            "units": {"acc": "g (total acceleration, gravity included)"},
            "fixed_split": {
                "test_subjects": list(TEST_SUBJECTS),
                "val_subjects": list(VAL_SUBJECTS),
                "train_subjects": "the other 18",
            },
        }
    )
    return Dataset(
        "hapt_acc151",
        X,
        base.y,
        base.class_names,
        groups=base.groups,
        split=subject_split(base.groups),
        channel_names=[base.channel_names[c] for c in CHANNELS],
        info=info,
    )
