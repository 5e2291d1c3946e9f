"""Writers for dataset fixtures in each dataset's exact published layout (used by conftest.py and the tests)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


# ------------------------------------------------------------------ UniMiB-SHAR

UNIMIB_SHORT = [
    "StandingUpFS",
    "StandingUpFL",
    "Walking",
    "Running",
    "GoingUpS",
    "Jumping",
    "GoingDownS",
    "LyingDownFS",
    "SittingDown",
    "FallingForw",
    "FallingRight",
    "FallingBack",
    "HittingObstacle",
    "FallingWithPS",
    "FallingBackSC",
    "Syncope",
    "FallingLeft",
]


def unimib_rows(activity: np.ndarray) -> np.ndarray:
    """Rows x|y|z of 151 samples whose values encode (row, axis, sample)."""
    n = len(activity)
    t = np.arange(151)
    rows = np.empty((n, 453))
    for i in range(n):
        for axis in range(3):
            rows[i, axis * 151 : (axis + 1) * 151] = i * 1000 + axis * 200 + t + 0.25 * activity[i]
    return rows


def names_cell(short: list[str], short_first: bool = True) -> np.ndarray:
    cell = np.empty((2, len(short)), dtype=object)
    for k, name in enumerate(short):
        desc = f"Description of {name} number {k}"
        cell[0, k], cell[1, k] = (name, desc) if short_first else (desc, name)
    return cell


def write_unimib(
    root: Path, *, subjects: int = 6, per_class: int = 2, short_first: bool = True, fall_offset: int = 1
) -> Path:
    """UniMiB-SHAR/data with acc_*, adl_*, fall_* .mat files (scipy.io.savemat, MATLAB v5)."""
    from scipy.io import savemat

    data = root / "UniMiB-SHAR" / "data"
    data.mkdir(parents=True)
    for part, names, offset in (
        ("acc", UNIMIB_SHORT, 1),
        ("adl", UNIMIB_SHORT[:9], 1),
        ("fall", UNIMIB_SHORT[9:], fall_offset),
    ):
        labels = []
        for s in range(1, subjects + 1):
            for k in range(len(names)):
                for trial in range(1, per_class + 1):
                    labels.append([k + offset, s, trial])
        labels = np.array(labels, dtype=np.float64)
        savemat(data / f"{part}_data.mat", {f"{part}_data": unimib_rows(labels[:, 0])})
        savemat(data / f"{part}_labels.mat", {f"{part}_labels": labels})
        savemat(data / f"{part}_names.mat", {f"{part}_names": names_cell(names, short_first)})
    return root / "UniMiB-SHAR"


# ------------------------------------------------------------------------ WESAD


class Py2Pickler(pickle._Pickler):
    """Writes pickles the way Python 2.7 + numpy 1.x did: every str and bytes
    object as a py2 ``str`` (BINSTRING opcodes) and numpy's functions under
    ``numpy.core``.  Loading such a file needs ``encoding="latin1"``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, raw: bytes, obj) -> None:
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + struct.pack("<B", len(raw)) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def save_bytes(self, obj):
        self._save_py2_str(bytes(obj), obj)

    def save_str(self, obj):
        self._save_py2_str(obj.encode("latin1"), obj)

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "")
        if module.startswith("numpy._core"):
            name = name or obj.__qualname__
            self.write(
                pickle.GLOBAL + module.replace("numpy._core", "numpy.core").encode() + b"\n" + name.encode() + b"\n"
            )
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


WESAD_RATES = {"ACC": 32, "BVP": 64, "EDA": 4, "TEMP": 4}


def wesad_subject(number: int, segments: list[tuple[int, float]], seed: int = 0) -> dict:
    """A WESAD-shaped dict; ``segments`` = [(label, seconds), ...] at 700 Hz."""
    rng = np.random.default_rng(seed + number)
    label = np.concatenate([np.full(int(sec * 700), lab, dtype=np.int32) for lab, sec in segments])
    seconds = len(label) / 700
    t700 = np.arange(len(label)) / 700

    def wave(rate, cols, base):
        t = np.arange(int(round(seconds * rate)))[:, None] / rate
        return base + np.sin(2 * np.pi * 0.2 * t + np.arange(cols)) + 0.01 * rng.standard_normal((len(t), cols))

    chest = {
        "ACC": wave(700, 3, 0.0),
        "ECG": np.sin(2 * np.pi * 1.2 * t700)[:, None],
        "EMG": wave(700, 1, 0.0),
        "EDA": wave(700, 1, 5.0),
        "Temp": wave(700, 1, 33.0).astype(np.float32),
        "Resp": wave(700, 1, 0.0),
    }
    wrist = {key: wave(rate, 3 if key == "ACC" else 1, 10.0 * i) for i, (key, rate) in enumerate(WESAD_RATES.items())}
    return {
        "signal": {"chest": chest, "wrist": wrist},
        "label": label,
        "subject": f"S{number}",
        "questionnaire_note": "Proband füllte Fragebögen aus",
    }


def write_wesad(root: Path, subjects: dict[int, list[tuple[int, float]]]) -> Path:
    base = root / "WESAD"
    for number, segments in subjects.items():
        folder = base / f"S{number}"
        folder.mkdir(parents=True)
        with open(folder / f"S{number}.pkl", "wb") as fh:
            Py2Pickler(fh, protocol=2).dump(wesad_subject(number, segments))
    return base


WESAD_SEGMENTS = [(0, 5), (1, 40), (4, 12), (2, 30), (0, 3), (3, 25), (6, 4)]


# ------------------------------------------------------------ Speech Commands v2

SC_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed", "cat"]
SC_SPEAKERS = ["0a7c2a8d", "1b2c3d4e", "c0ffee00"]  # train, validation, test


def tone(freq: float, seconds: float, rate: int = 16000, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)


def write_speech_commands(root: Path, words=SC_WORDS, noise_seconds: float = 10.0) -> Path:
    from scipy.io import wavfile

    base = root / "speech_commands_v0.02"
    val, test = [], []
    for w, word in enumerate(words):
        (base / word).mkdir(parents=True)
        for s, speaker in enumerate(SC_SPEAKERS):
            for n in range(2):
                seconds = 1.0 if n == 0 else 0.7  # v2 has clips shorter than 1 s
                name = f"{speaker}_nohash_{n}.wav"
                wavfile.write(base / word / name, 16000, tone(200 + 150 * w + 10 * s, seconds))
                (val if s == 1 else test if s == 2 else []).append(f"{word}/{name}")
    (base / "validation_list.txt").write_text("\n".join(val) + "\n")
    (base / "testing_list.txt").write_text("\n".join(test) + "\n")
    noise = base / "_background_noise_"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for name in ("white_noise.wav", "pink_noise.wav"):
        audio = (0.1 * rng.standard_normal(int(noise_seconds * 16000)) * 32767).astype(np.int16)
        wavfile.write(noise / name, 16000, audio)
    (noise / "README.md").write_text("background noise\n")
    return base
