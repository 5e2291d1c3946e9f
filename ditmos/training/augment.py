"""Training-time augmentation of sensor windows (config key ``augment``).

Four random transforms, drawn afresh per window and epoch from the run's
seeded streams (so a resumed run repeats them), applied to the (normalised)
training windows of the stages that train one network on all data -- the
strong model and the generalist:

* ``shift`` (fraction of the window, 0..0.5): the window moves in time by up
  to that fraction either way; the samples that enter at an end repeat the
  edge sample (no wrap-around: a window's two ends differ).
* ``scale`` (std, 0..1): every channel of a window is multiplied by a factor
  drawn from N(1, scale) -- sensor gain and how hard a person moves.
* ``offset`` (std, 0..10): a constant drawn from N(0, offset) is added to
  every channel of a window, in normalised units -- for an accelerometer
  that includes gravity, roughly how a slightly tilted sensor shifts each
  axis's mean.
* ``jitter`` (std, 0..10): Gaussian noise added to every sample, in the units
  of the normalised windows.

Validation and test windows are never augmented.
"""

from __future__ import annotations

import numpy as np

from ditmos.errors import DitmosError

KEYS = ("shift", "scale", "offset", "jitter")
# stages that see augmented windows (single networks trained on all data)
STAGES = ("strong", "generalist")
_LIMITS = {"shift": 0.5, "scale": 1.0, "offset": 10.0, "jitter": 10.0}


def validate(aug: dict | None) -> None:
    if aug is None:
        return
    for k, v in aug.items():
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= _LIMITS[k]
        if not ok:
            raise DitmosError(f"config 'augment.{k}' must be a number in [0, {_LIMITS[k]}], got {v!r}")


def active(aug: dict | None) -> bool:
    return bool(aug) and any(float(aug.get(k, 0.0)) > 0 for k in KEYS)


def augment_windows(x: np.ndarray, rng: np.random.Generator, aug: dict) -> np.ndarray:
    """Windows ``[N, T, C]`` -> augmented copies (float32), ``x`` left untouched."""
    n, T, C = x.shape
    out = x
    shift = int(round(float(aug.get("shift", 0.0)) * T))
    if shift > 0:
        s = rng.integers(-shift, shift + 1, size=n)
        idx = np.clip(np.arange(T)[None, :] - s[:, None], 0, T - 1)  # [N, T]
        out = np.take_along_axis(out, idx[:, :, None], axis=1)
    scale = float(aug.get("scale", 0.0))
    if scale > 0:
        out = out * (1.0 + scale * rng.standard_normal((n, 1, C))).astype(np.float32)
    offset = float(aug.get("offset", 0.0))
    if offset > 0:
        out = out + np.float32(offset) * rng.standard_normal((n, 1, C), dtype=np.float32)
    jitter = float(aug.get("jitter", 0.0))
    if jitter > 0:
        out = out + np.float32(jitter) * rng.standard_normal(x.shape, dtype=np.float32)
    return np.asarray(out, dtype=np.float32)
