"""``speech_commands:DIR`` / ``speech_commands35:DIR``: Google Speech Commands v2.

DIR is the extracted archive as published::

    DIR/<word>/<speaker>_nohash_<n>.wav      16 kHz mono 1 s (or shorter) clips
    DIR/validation_list.txt                  paths relative to DIR, one a line
    DIR/testing_list.txt
    DIR/_background_noise_/*.wav             long noise recordings

* ``speech_commands`` (12 classes): the ten words yes, no, up, down, left,
  right, on, off, stop, go, then ``_silence_`` and ``_unknown_`` (every other
  word folder).  ``_silence_`` clips are the consecutive, non-overlapping 1 s
  pieces of each background-noise file; the first 80 % of a file's pieces go
  to train, the next 10 % to val, the rest to test (so no noise is shared
  between splits); their group id is ``-1 - file index``.
  ``_unknown_`` keeps every clip of the other words (nothing is subsampled),
  so it is by far the largest class in v2; weight or subsample it in training
  if you want the balanced benchmark mix.
* ``speech_commands35``: every word folder found (35 in v2), sorted; the
  background noise is not used.

The split is the published one (a clip in neither list is train) and is
honoured exactly; groups are the speaker ids (the hex ``<speaker>`` part).
Clips shorter than 1 s are zero-padded at the end (counted in
``info["clips_padded"]``).  Features: :mod:`ditmos.data.mfcc` with its
default :class:`~ditmos.data.mfcc.MfccConfig` (49 frames x 13 coefficients).

Features are cached in ``$DITMOS_CACHE_DIR`` (default
``~/.cache/ditmos``) under a key made of the folder, the class mode, the MFCC
parameters and every WAV's and list's path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from ditmos.data._files import require_dir
from ditmos.data.core import Dataset
from ditmos.data.mfcc import MfccConfig, fit_clip, mfcc
from ditmos.errors import DitmosError

TEN_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
SILENCE, UNKNOWN = "_silence_", "_unknown_"
NOISE_DIR = "_background_noise_"
_NAME = re.compile(r"^([0-9a-fA-F]+)_nohash_(\d+)\.wav$")
_CHUNK = 1024
_FORMAT_VERSION = 1


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """Mono WAV -> float64 in [-1, 1); DitmosError for another rate or channel count."""
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", wavfile.WavFileWarning)
            rate, data = wavfile.read(str(path))
    except (OSError, ValueError, EOFError, wavfile.WavFileWarning) as err:
        raise DitmosError(f"{path}: not a readable WAV file ({err})") from None
    if rate != sample_rate:
        raise DitmosError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz")
    if data.ndim != 1:
        raise DitmosError(f"{path}: {data.shape[1]} channels, expected mono")
    if data.dtype == np.int16:
        return data.astype(np.float64) / 32768.0
    if data.dtype == np.int32:
        return data.astype(np.float64) / 2147483648.0
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float64)
    raise DitmosError(f"{path}: unsupported WAV sample type {data.dtype}")


def _read_list(path: Path, root: Path) -> set[str]:
    if not path.is_file():
        raise DitmosError(f"{path}: split list not found (part of the published Speech Commands layout)")
    entries = {line.strip() for line in path.read_text().splitlines() if line.strip()}
    missing = sorted(e for e in entries if not (root / e).is_file())
    if missing:
        raise DitmosError(f"{path}: {len(missing)} listed clip(s) do not exist (first: {missing[0]})")
    return entries


def _word_dirs(root: Path) -> list[str]:
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_") and not p.name.startswith(".")
    )


def _cache_key(root: Path, mode: str, cfg: MfccConfig, files: list[Path]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([_FORMAT_VERSION, str(root.resolve()), mode, cfg.to_dict()]).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _cache_dir() -> Path:
    base = os.environ.get("DITMOS_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "ditmos"


def load(path: Path, classes: str = "12", cfg: MfccConfig | None = None) -> Dataset:
    cfg = MfccConfig() if cfg is None else cfg
    if classes not in ("12", "35"):
        raise DitmosError(f"unknown Speech Commands mode {classes!r}; use 12 or 35")
    root = require_dir(Path(path), "Speech Commands")
    words = _word_dirs(root)
    if not words:
        raise DitmosError(f"{root}: no word folders (expected <word>/<speaker>_nohash_<n>.wav)")
    val_list = _read_list(root / "validation_list.txt", root)
    test_list = _read_list(root / "testing_list.txt", root)
    if classes == "12":
        missing = [w for w in TEN_WORDS if w not in words]
        if missing:
            raise DitmosError(f"{root}: word folder(s) {missing} missing for the 12-class benchmark")
        class_names = TEN_WORDS + [SILENCE, UNKNOWN]
        noise_files = sorted((root / NOISE_DIR).glob("*.wav")) if (root / NOISE_DIR).is_dir() else []
        if not noise_files:
            raise DitmosError(f"{root / NOISE_DIR}: no background-noise WAVs for the {SILENCE} class")
    else:
        class_names = words
        noise_files = []

    clips = []  # (path, label, speaker, split)
    for word in words:
        label = class_names.index(word) if word in class_names else class_names.index(UNKNOWN)
        for f in sorted((root / word).glob("*.wav")):
            m = _NAME.match(f.name)
            if not m:
                raise DitmosError(f"{f}: file name is not <speaker>_nohash_<n>.wav")
            rel = f"{word}/{f.name}"
            part = "val" if rel in val_list else "test" if rel in test_list else "train"
            if rel in val_list and rel in test_list:
                raise DitmosError(f"{f}: listed in both validation_list.txt and testing_list.txt")
            clips.append((f, label, int(m.group(1), 16), part))
    if not clips:
        raise DitmosError(f"{root}: no .wav clips in the word folders")

    all_files = [c[0] for c in clips] + noise_files + [root / "validation_list.txt", root / "testing_list.txt"]
    cache = _cache_dir() / f"speech_commands{classes}-{_cache_key(root, classes, cfg, all_files)}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as f:
            X, y, groups, split = f["X"], f["y"], f["groups"], f["split"]
            padded, silence_clips = int(f["padded"]), int(f["silence_clips"])
    else:
        X, y, groups, split, padded, silence_clips = _compute(clips, noise_files, class_names, cfg)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, X=X, y=y, groups=groups, split=split, padded=padded, silence_clips=silence_clips)
            os.replace(tmp, cache)
        except OSError:
            pass  # the cache is an optimisation; an unwritable cache dir is not an error

    info = {
        "path": str(root),
        "source": "Google Speech Commands v2 (Warden 2018), WAV folders as published",
        "licence": "CC BY 4.0",
        "citation": "Pete Warden: Speech Commands: A Dataset for Limited-Vocabulary Speech "
        "Recognition, arXiv:1804.03209 (2018)",
        "sampling_rate_hz": cfg.sample_rate,
        "mfcc": cfg.to_dict(),
        "clips_padded": padded,
        "silence_clips": silence_clips,
        "windows_made": int(len(y)),
        "windows_dropped": {},
        "cache": str(cache),
    }
    name = "speech_commands" if classes == "12" else "speech_commands35"
    return Dataset(
        name,
        X,
        y,
        class_names,
        groups=groups,
        split=split,
        channel_names=[f"mfcc{i}" for i in range(cfg.n_coeffs)],
        info=info,
    )


def _compute(clips, noise_files, class_names, cfg):
    feats, padded = [], 0
    for start in range(0, len(clips), _CHUNK):
        batch = []
        for f, *_ in clips[start : start + _CHUNK]:
            audio = read_wav(f, cfg.sample_rate)
            padded += len(audio) < cfg.clip_samples
            batch.append(fit_clip(audio, cfg))
        feats.append(mfcc(np.stack(batch), cfg))
    y = [c[1] for c in clips]
    groups = [c[2] for c in clips]
    split = [c[3] for c in clips]
    silence_clips = 0
    for i, f in enumerate(noise_files):
        audio = read_wav(f, cfg.sample_rate)
        n = len(audio) // cfg.clip_samples
        if n == 0:
            continue
        pieces = audio[: n * cfg.clip_samples].reshape(n, cfg.clip_samples)
        feats.append(mfcc(pieces, cfg))
        n_train, n_val = int(0.8 * n), int(0.9 * n) - int(0.8 * n)
        split += ["train"] * n_train + ["val"] * n_val + ["test"] * (n - n_train - n_val)
        y += [class_names.index(SILENCE)] * n
        groups += [-1 - i] * n
        silence_clips += n
    if noise_files and silence_clips == 0:
        raise DitmosError(f"{noise_files[0].parent}: background-noise files are all shorter than 1 s")
    return (
        np.concatenate(feats),
        np.array(y, np.int64),
        np.array(groups, np.int64),
        np.array(split),
        padded,
        silence_clips,
    )
