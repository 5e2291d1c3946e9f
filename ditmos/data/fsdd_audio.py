"""``fsdd_audio``: Free Spoken Digit Dataset from raw 8 kHz audio, shipped in ``datasets/fsdd_audio/``.

3000 recordings of the digits 0-9 (6 speakers x 10 digits x 50) with their
speaker, so the split is speaker-disjoint (groups = speakers).  Each clip is
brought to ``clip_samples`` (1 s): shorter clips are zero-padded at the end,
longer ones (20 of 3000) cut at the end.  Features:

* ``fsdd_audio`` — the fixed-point MFCC front end of
  :mod:`ditmos.data.mfcc_fixed` (the one the firmware runs, byte for byte),
  int32 log2 Q10 values divided by 1024 (exact in float32);
* ``fsdd_audio_float`` — the float MFCC of :mod:`ditmos.data.mfcc` with the
  same parameters (natural log), for comparison.

Both give ``[49, 13]`` windows; ``info["frontend"]`` holds the parameters.
"""

from __future__ import annotations

import numpy as np

from ditmos.data.core import Dataset
from ditmos.data.mfcc import mfcc
from ditmos.data.mfcc_fixed import FixedMfccConfig, mfcc_fixed, mfcc_tables
from ditmos.data.shipped import open_shipped

CONFIG = FixedMfccConfig()
CLASS_NAMES = [str(d) for d in range(10)]
# The on-device front end of models trained on `fsdd_audio` (read by ditmos.codegen.prepare).
FRONTEND = CONFIG
_BATCH = 250


def fit_clips(audio: np.ndarray, lengths: np.ndarray, clip_samples: int) -> np.ndarray:
    """int16 ``[N, clip_samples]``: each clip zero-padded or cut at its end."""
    out = np.zeros((len(lengths), clip_samples), dtype=np.int16)
    pos = 0
    for i, n in enumerate(lengths):
        k = min(int(n), clip_samples)
        out[i, :k] = audio[pos : pos + k]
        pos += int(n)
    return out


def load_clips() -> tuple[str, dict[str, np.ndarray]]:
    path, f = open_shipped("fsdd_audio", "fsdd_audio.npz")
    with f:
        arrays = {k: f[k] for k in ("audio", "lengths", "label", "speaker", "speaker_names", "index")}
    return str(path), arrays


def features(clips: np.ndarray, kind: str = "fixed", cfg: FixedMfccConfig = CONFIG) -> np.ndarray:
    """float32 ``[N, frames, n_coeffs]`` of int16 clips, ``kind`` ``fixed`` or ``float``."""
    if kind not in ("fixed", "float"):
        raise ValueError(f"unknown front end {kind!r}")
    tables = mfcc_tables(cfg)
    parts = []
    for s in range(0, len(clips), _BATCH):
        batch = clips[s : s + _BATCH]
        if kind == "fixed":
            parts.append(mfcc_fixed(batch, cfg, tables).astype(np.float32) / np.float32(1024))
        else:
            parts.append(mfcc(batch.astype(np.float64) / 32768.0, cfg.float_config()))
    return np.concatenate(parts).astype(np.float32)


def load(kind: str = "fixed") -> Dataset:
    path, a = load_clips()
    clips = fit_clips(a["audio"], a["lengths"], CONFIG.clip_samples)
    X = features(clips, kind)
    lengths = a["lengths"]
    info = {
        "path": path,
        "source": "Free Spoken Digit Dataset (FSDD) recordings, 8 kHz 16-bit mono WAV, "
        "github.com/Jakobovski/free-spoken-digit-dataset commit 26eb9aa",
        "licence": "CC BY-SA 4.0",
        "citation": "Zohar Jackson et al., Free Spoken Digit Dataset (FSDD), Zenodo, doi:10.5281/zenodo.1342401",
        "sampling_rate_hz": CONFIG.sample_rate,
        "frontend": {"kind": kind, **CONFIG.to_dict()},
        "speakers": [str(s) for s in a["speaker_names"]],
        "clip_samples": {"min": int(lengths.min()), "median": float(np.median(lengths)), "max": int(lengths.max())},
        "clips_cut": int(np.sum(lengths > CONFIG.clip_samples)),
        "clips_padded": int(np.sum(lengths < CONFIG.clip_samples)),
        "windows_made": len(lengths),
        "windows_dropped": {},
    }
    name = "fsdd_audio" if kind == "fixed" else "fsdd_audio_float"
    return Dataset(
        name,
        X,
        a["label"].astype(np.int64),
        CLASS_NAMES,
        groups=a["speaker"].astype(np.int64),
        channel_names=[f"mfcc{i}" for i in range(CONFIG.n_coeffs)],
        info=info,
    )
