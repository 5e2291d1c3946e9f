"""``wesad:DIR``: WESAD (wearable stress and affect detection), as published.

DIR holds one folder per subject, ``SX/SX.pkl`` (X = 2..17), each a Python 2
pickle (read with ``encoding="latin1"``) of a dict::

    {"subject": "SX",
     "signal": {"chest": {"ACC": [n,3], "ECG": [n,1], "EMG": [n,1], "EDA": [n,1],
                          "Temp": [n,1], "Resp": [n,1]},            # 700 Hz
                "wrist": {"ACC": [m,3] (32 Hz), "BVP": [k,1] (64 Hz),
                          "EDA": [j,1] (4 Hz), "TEMP": [j,1] (4 Hz)}},
     "label": [n]}                                                   # 700 Hz

Classes: 1 baseline, 2 stress, 3 amusement; every other label (0 transient,
4 meditation, 5-7 not to be used) is dropped and counted.

Default windows (spec ``wesad:DIR``): the wrist signals ACC x/y/z, BVP, EDA,
TEMP, each resampled to 32 Hz with :func:`scipy.signal.resample_poly`
(polyphase, anti-aliased), windows of 10 s (320 samples) every 5 s, cut
inside each run of one label.  The label of common-rate sample ``i`` is the
700 Hz label at index ``floor(i * 700 / rate)``.  Python callers can choose
``signals="chest"`` (ACC x/y/z, ECG, EDA, EMG, Resp, Temp), another rate,
window and hop through :func:`load`.  Groups = subject number.

Only numpy arrays, numpy scalars, dtypes and plain Python containers are
accepted from the pickle; anything else is refused.
"""

from __future__ import annotations

import pickle
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from ditmos.data._files import require_dir, require_file
from ditmos.data.core import Dataset
from ditmos.data.windowing import sliding_windows, uncovered_tail
from ditmos.errors import DitmosError

LABEL_RATE = 700
CLASS_NAMES = ["baseline", "stress", "amusement"]
KEPT = {1: 0, 2: 1, 3: 2}
LABEL_MEANING = {
    0: "transient/undefined",
    4: "meditation",
    5: "not to be used",
    6: "not to be used",
    7: "not to be used",
}
# (device, signal key, native rate Hz, channel names)
SIGNALS = {
    "wrist": [
        ("wrist", "ACC", 32, ["wrist_acc_x", "wrist_acc_y", "wrist_acc_z"]),
        ("wrist", "BVP", 64, ["wrist_bvp"]),
        ("wrist", "EDA", 4, ["wrist_eda"]),
        ("wrist", "TEMP", 4, ["wrist_temp"]),
    ],
    "chest": [
        ("chest", "ACC", 700, ["chest_acc_x", "chest_acc_y", "chest_acc_z"]),
        ("chest", "ECG", 700, ["chest_ecg"]),
        ("chest", "EDA", 700, ["chest_eda"]),
        ("chest", "EMG", 700, ["chest_emg"]),
        ("chest", "Resp", 700, ["chest_resp"]),
        ("chest", "Temp", 700, ["chest_temp"]),
    ],
}
_SUBJECT = re.compile(r"^S(\d+)$")
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _WesadUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray":  # the pre-numpy-2 path of the same functions
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def read_subject(path: Path) -> dict:
    """Unpickle one ``SX.pkl`` (Python 2 pickle, latin1 strings)."""
    require_file(path, "WESAD subject pickle")
    try:
        with open(path, "rb") as fh:
            obj = _WesadUnpickler(fh, encoding="latin1").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
    ) as err:
        raise DitmosError(f"{path}: not a readable WESAD pickle ({err})") from None
    if not isinstance(obj, dict) or "signal" not in obj or "label" not in obj:
        raise DitmosError(f"{path}: expected a dict with 'signal' and 'label' (WESAD layout)")
    return obj


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    from scipy.signal import resample_poly

    if rate == target:
        return x.astype(np.float64)
    f = Fraction(target, rate)
    return resample_poly(x.astype(np.float64), f.numerator, f.denominator, axis=0)


def load(path: Path, signals: str = "wrist", rate: int = 32, window_s: float = 10.0, hop_s: float = 5.0) -> Dataset:
    if signals not in SIGNALS:
        raise DitmosError(f"unknown WESAD signal set {signals!r}; use wrist or chest")
    window, hop = int(round(window_s * rate)), int(round(hop_s * rate))
    if window <= 0 or hop <= 0:
        raise DitmosError(f"WESAD window {window_s} s and hop {hop_s} s at {rate} Hz give no samples")
    root = require_dir(Path(path), "WESAD")
    subjects = sorted((int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _SUBJECT.match(p.name)))
    if not subjects:
        raise DitmosError(f"{root}: no subject folders SX/ (expected SX/SX.pkl, e.g. S2/S2.pkl)")

    X, y, groups = [], [], []
    label_dropped: dict[str, int] = {}
    short_runs = short_samples = tails = 0
    channel_names = [c for spec in SIGNALS[signals] for c in spec[3]]
    for number, folder in subjects:
        pkl = folder / f"{folder.name}.pkl"
        obj = read_subject(pkl)
        labels = np.asarray(obj["label"]).reshape(-1)
        try:
            device_signals = [
                np.asarray(obj["signal"][dev][key], dtype=np.float64) for dev, key, _, _ in SIGNALS[signals]
            ]
        except (KeyError, TypeError) as err:
            raise DitmosError(f"{pkl}: missing signal {err} in signal.{signals}") from None
        duration = len(labels) / LABEL_RATE
        parts = []
        for (dev, key, native, names), x in zip(SIGNALS[signals], device_signals):
            x = x.reshape(len(x), -1)
            if x.shape[1] != len(names):
                raise DitmosError(f"{pkl}: signal.{dev}.{key} has {x.shape[1]} columns, expected {len(names)}")
            if abs(len(x) / native - duration) > 1.0:
                raise DitmosError(
                    f"{pkl}: signal.{dev}.{key} lasts {len(x) / native:.1f} s at {native} Hz "
                    f"but the labels last {duration:.1f} s at {LABEL_RATE} Hz"
                )
            if not np.all(np.isfinite(x)):
                raise DitmosError(f"{pkl}: signal.{dev}.{key} contains NaN or Inf")
            parts.append(_resample(x, native, rate))
        n = min(min(len(p) for p in parts), int(np.floor(duration * rate)))
        sig = np.concatenate([p[:n] for p in parts], axis=1)
        lab = labels[(np.arange(n) * LABEL_RATE) // rate]
        for value in np.unique(labels):
            if int(value) not in KEPT:
                reason = f"label {int(value)} ({LABEL_MEANING.get(int(value), 'unknown')}), 700 Hz samples"
                label_dropped[reason] = label_dropped.get(reason, 0) + int(np.sum(labels == value))
        edges = np.flatnonzero(np.diff(lab)) + 1
        for a, b in zip(np.concatenate([[0], edges]), np.concatenate([edges, [n]])):
            value = int(lab[a])
            if value not in KEPT:
                continue
            if b - a < window:
                short_runs += 1
                short_samples += int(b - a)
                continue
            w = sliding_windows(sig[a:b], window, hop)
            X.append(w.astype(np.float32))
            y += [KEPT[value]] * len(w)
            groups += [number] * len(w)
            tails += uncovered_tail(int(b - a), window, hop)
    if not X:
        raise DitmosError(f"{root}: no baseline/stress/amusement run of at least {window_s} s")
    info = {
        "path": str(root),
        "source": f"WESAD (Schmidt et al. 2018), SX/SX.pkl of {len(subjects)} subject(s), {signals} signals",
        "licence": "as published by the WESAD authors (non-commercial research use)",
        "citation": "Schmidt, Reiss, Duerichen, Marberger, Van Laerhoven: Introducing WESAD, a "
        "Multimodal Dataset for Wearable Stress and Affect Detection, ICMI 2018",
        "sampling_rate_hz": rate,
        "window": window,
        "hop": hop,
        "signals": signals,
        "resampling": "scipy.signal.resample_poly to the common rate",
        "windows_made": len(y),
        "windows_dropped": {},
        "samples_dropped": {
            **label_dropped,
            f"runs shorter than one window ({short_runs} runs), {rate} Hz samples": short_samples,
            f"run tails not covered by a full window, {rate} Hz samples": tails,
        },
    }
    return Dataset(
        "wesad",
        np.concatenate(X),
        np.array(y, np.int64),
        CLASS_NAMES,
        groups=np.array(groups, np.int64),
        channel_names=channel_names,
        info=info,
    )
