"""Dataset specs -> loaders.

A spec is either a shipped name (``hapt``, ``hapt12``, ``hapt_acc151``, ``fsdd``,
``fsdd_audio``) or
``loader:PATH`` for
data the user downloaded (``unimib:DIR``, ``speech_commands:DIR``,
``wesad:DIR``, ``npz:FILE``, ``csv:DIR`` ...).  Loader modules are imported
only when used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ditmos.data.core import Dataset
from ditmos.errors import DitmosError


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset: ``name`` (``unimib`` or ``hapt``), whether the
    spec needs ``:PATH``, the loader ``module:function`` and a one-line summary."""

    name: str
    takes_path: bool
    loader: str
    summary: str
    extra: tuple = ()
    folder: str = ""

    @property
    def shipped_folder(self) -> str:
        """The folder under ``datasets/`` of a shipped dataset (usually its name)."""
        return self.folder or self.name

    @property
    def usage(self) -> str:
        return f"{self.name}:PATH" if self.takes_path else self.name


_ENTRIES = [
    DatasetEntry(
        "hapt",
        False,
        "ditmos.data.hapt:load",
        "UCI HAPT: 6 activities, acc+gyro 50 Hz, 128x6 windows, 30 subjects (shipped; default)",
    ),
    DatasetEntry(
        "hapt12",
        False,
        "ditmos.data.hapt12:load",
        "UCI HAPT: 6 activities + 6 postural transitions, acc+gyro 50 Hz, 128x6 windows (shipped)",
    ),
    DatasetEntry(
        "hapt_acc151",
        False,
        "ditmos.data.hapt_acc151:load",
        "UCI HAPT accelerometer only, resampled to 151x3 windows; test subjects 22-30 (derived from hapt)",
        folder="hapt",
    ),
    DatasetEntry(
        "fsdd",
        False,
        "ditmos.data.fsdd:load",
        "Free Spoken Digit Dataset: 10 digits, 13 MFCC x fixed frames, 3000 utterances (shipped)",
    ),
    DatasetEntry(
        "fsdd_audio",
        False,
        "ditmos.data.fsdd_audio:load",
        "FSDD raw 8 kHz audio -> fixed-point MFCC 49x13 (firmware front end), 6 speakers (shipped)",
    ),
    DatasetEntry(
        "fsdd_audio_float",
        False,
        "ditmos.data.fsdd_audio:load",
        "the same clips and split as fsdd_audio with the float MFCC front end (shipped)",
        ("float",),
        "fsdd_audio",
    ),
    DatasetEntry(
        "unimib",
        True,
        "ditmos.data.unimib:load",
        "UniMiB-SHAR acc_data.mat/acc_labels.mat: 17 classes, 151x3 windows, 30 subjects",
    ),
    DatasetEntry("unimib-adl", True, "ditmos.data.unimib:load", "UniMiB-SHAR ADL subset (9 classes)", ("adl",)),
    DatasetEntry("unimib-fall", True, "ditmos.data.unimib:load", "UniMiB-SHAR fall subset (8 classes)", ("fall",)),
    DatasetEntry(
        "speech_commands",
        True,
        "ditmos.data.speech_commands:load",
        "Google Speech Commands v2 WAV folders: 12 classes (10 words + silence + unknown), MFCC",
        ("12",),
    ),
    DatasetEntry(
        "speech_commands35",
        True,
        "ditmos.data.speech_commands:load",
        "Google Speech Commands v2 WAV folders: all 35 words, MFCC",
        ("35",),
    ),
    DatasetEntry(
        "wesad",
        True,
        "ditmos.data.wesad:load",
        "WESAD SX/SX.pkl: baseline/stress/amusement windows, subjects as groups",
    ),
    DatasetEntry(
        "npz", True, "ditmos.data.npzfile:load", "your own .npz: X [N,T,C], y, optional groups, class_names, split"
    ),
    DatasetEntry(
        "csv",
        True,
        "ditmos.data.csvdir:load",
        "your own folder of CSV recordings (channels + label [+ subject]), windowed",
    ),
]
_BY_NAME = {e.name: e for e in _ENTRIES}


def list_datasets() -> list[DatasetEntry]:
    """Every registered dataset, shipped ones first."""
    return list(_ENTRIES)


def parse_spec(spec: str) -> tuple[DatasetEntry, str | None]:
    """``"unimib:/data/unimib"`` -> (entry, "/data/unimib"); clear errors for bad specs."""
    if not isinstance(spec, str) or not spec.strip():
        raise DitmosError("empty dataset spec; run `ditmos data list` to see the datasets")
    name, sep, path = spec.strip().partition(":")
    entry = _BY_NAME.get(name)
    if entry is None:
        raise DitmosError(f"unknown dataset {name!r}; known: {', '.join(e.usage for e in _ENTRIES)}")
    if entry.takes_path and not (sep and path):
        raise DitmosError(f"dataset {name!r} needs a path: {entry.usage}")
    if not entry.takes_path and sep:
        raise DitmosError(f"dataset {name!r} is shipped with ditmos and takes no path; use {name!r}")
    return entry, (path if sep else None)


def canonical_spec(spec: str) -> str:
    """The spec with its path made absolute (``npz:data/x.npz`` -> ``npz:/home/me/data/x.npz``),
    so that a run directory can reload the dataset from any working directory."""
    entry, path = parse_spec(spec)
    if path is None:
        return entry.name
    return f"{entry.name}:{Path(path).expanduser().resolve()}"


def load_dataset(spec: str) -> Dataset:
    """Load a dataset by spec (see module doc); raises DitmosError for bad input."""
    entry, path = parse_spec(spec)
    module, func = entry.loader.split(":")
    load = getattr(importlib.import_module(module), func)
    if path is None:
        return load(*entry.extra)
    return load(Path(path).expanduser(), *entry.extra)
