"""``csv:DIR``: your own recordings as CSV files, cut into fixed windows.

Layout::

    DIR/
      dataset.json      optional settings (below)
      <any name>.csv    one continuous recording per file, with a header row

Each CSV has numeric channel columns (every column except the special ones,
in the same order in every file), a ``label`` column (class name or number;
an empty cell marks an unlabelled row, which is dropped and counted) and
optionally a ``subject`` column (integer id; splits then keep subjects apart)
and a ``split`` column (``train``/``val``/``test``, honoured exactly; all
files or none).

Windows of ``window`` rows, ``hop`` rows apart, are cut inside every run of
consecutive rows with the same label, subject and split; rows at the end of a
run that do not fill a window are dropped and counted, and so are runs shorter
than a window.

``dataset.json`` keys (all optional): ``window`` (default 128), ``hop``
(default ``window // 2``), ``sampling_rate_hz``, ``class_names`` (the class
order; labels outside it are an error; default: the sorted distinct labels),
``label_column`` (``label``), ``subject_column`` (``subject``),
``split_column`` (``split``), ``source``, ``licence``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ditmos.data._files import require_dir
from ditmos.data.core import SPLIT_NAMES, Dataset
from ditmos.data.windowing import sliding_windows, uncovered_tail
from ditmos.errors import DitmosError

_SETTINGS = {
    "window",
    "hop",
    "sampling_rate_hz",
    "class_names",
    "label_column",
    "subject_column",
    "split_column",
    "source",
    "licence",
}


def _settings(folder: Path) -> dict:
    path = folder / "dataset.json"
    if not path.exists():
        return {}
    try:
        settings = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DitmosError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(settings, dict):
        raise DitmosError(f"{path}: must hold a JSON object")
    unknown = sorted(set(settings) - _SETTINGS)
    if unknown:
        raise DitmosError(f"{path}: unknown setting(s) {unknown}; known: {sorted(_SETTINGS)}")
    return settings


def _read_csv(path: Path, label_col: str, subject_col: str, split_col: str):
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DitmosError(f"{path}: cannot read CSV ({err})") from None
    if not rows:
        raise DitmosError(f"{path}: file is empty (expected a header row)")
    header = [h.strip() for h in rows[0]]
    if label_col not in header:
        raise DitmosError(f"{path}: no {label_col!r} column in the header {header}")
    special = {label_col, subject_col, split_col}
    channels = [h for h in header if h not in special]
    if not channels:
        raise DitmosError(f"{path}: no channel columns besides {sorted(special & set(header))}")
    ch_idx = [header.index(h) for h in channels]
    body = rows[1:]
    if not body:
        raise DitmosError(f"{path}: has a header but no data rows")
    values = np.empty((len(body), len(channels)), dtype=np.float64)
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DitmosError(f"{path}: line {i + 2} has {len(row)} fields, the header {len(header)}")
        for j, k in enumerate(ch_idx):
            try:
                values[i, j] = float(row[k])
            except ValueError:
                raise DitmosError(f"{path}: line {i + 2}, column {channels[j]!r}: {row[k]!r} is not a number") from None
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DitmosError(f"{path}: line {i + 2}, column {channels[j]!r}: NaN or Inf")
    labels = [row[header.index(label_col)].strip() for row in body]

    def column(name):
        if name not in header:
            return None
        return [row[header.index(name)].strip() for row in body]

    subjects = column(subject_col)
    if subjects is not None:
        try:
            subjects = [int(s) for s in subjects]
        except ValueError:
            raise DitmosError(f"{path}: the {subject_col!r} column must hold integers") from None
    splits = column(split_col)
    if splits is not None:
        wrong = sorted(set(splits) - set(SPLIT_NAMES))
        if wrong:
            raise DitmosError(f"{path}: the {split_col!r} column holds {wrong[:3]}; use train, val or test")
    return channels, values, labels, subjects, splits


def load(path: Path) -> Dataset:
    folder = require_dir(Path(path), "CSV dataset")
    settings = _settings(folder)
    window = settings.get("window", 128)
    hop = settings.get("hop", window // 2 if isinstance(window, int) else 0)
    if not (isinstance(window, int) and isinstance(hop, int) and window > 0 and hop > 0):
        raise DitmosError(f"{folder / 'dataset.json'}: window and hop must be positive integers")
    label_col = settings.get("label_column", "label")
    subject_col = settings.get("subject_column", "subject")
    split_col = settings.get("split_column", "split")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise DitmosError(f"{folder}: no .csv files in this folder")

    recordings = []
    channels = None
    for f in files:
        ch, values, labels, subjects, splits = _read_csv(f, label_col, subject_col, split_col)
        if channels is None:
            channels = ch
        elif ch != channels:
            raise DitmosError(f"{f}: channel columns {ch} differ from {channels} in {files[0].name}")
        recordings.append((f, values, labels, subjects, splits))
    has_subject = {r[3] is not None for r in recordings}
    has_split = {r[4] is not None for r in recordings}
    if len(has_subject) > 1:
        raise DitmosError(f"{folder}: some CSV files have a {subject_col!r} column and others not")
    if len(has_split) > 1:
        raise DitmosError(f"{folder}: some CSV files have a {split_col!r} column and others not")

    seen = sorted({lab for r in recordings for lab in r[2] if lab})
    if "class_names" in settings:
        class_names = [str(c) for c in settings["class_names"]]
        unknown = [lab for lab in seen if lab not in class_names]
        if unknown:
            f = next(r[0] for r in recordings if unknown[0] in r[2])
            raise DitmosError(f"{f}: label {unknown[0]!r} is not in class_names {class_names} of dataset.json")
    else:
        try:
            class_names = [str(v) for v in sorted(int(s) for s in seen)]
        except ValueError:
            class_names = seen
    index = {c: k for k, c in enumerate(class_names)}

    X, y, groups, split = [], [], [], []
    unlabelled = short_rows = short_runs = tail_rows = 0
    for f, values, labels, subjects, splits in recordings:
        keys = list(zip(labels, subjects or [0] * len(labels), splits or [""] * len(labels)))
        start = 0
        for i in range(1, len(keys) + 1):
            if i < len(keys) and keys[i] == keys[start]:
                continue
            label, subject, part = keys[start]
            n = i - start
            if not label:
                unlabelled += n
            elif n < window:
                short_runs += 1
                short_rows += n
            else:
                w = sliding_windows(values[start:i], window, hop)
                X.append(w)
                y += [index[label]] * len(w)
                groups += [subject] * len(w)
                split += [part] * len(w)
                tail_rows += uncovered_tail(n, window, hop)
            start = i
    if not X:
        raise DitmosError(f"{folder}: no labelled run of at least {window} rows, so no windows")
    info = {
        "path": str(folder),
        "source": settings.get("source", f"user CSV folder {folder.name} ({len(files)} files)"),
        "licence": settings.get("licence", "as set by the owner of the data"),
        "window": window,
        "hop": hop,
        "windows_made": len(y),
        "windows_dropped": {},
        "samples_dropped": {
            "unlabelled rows (empty label)": unlabelled,
            f"runs shorter than {window} rows ({short_runs} runs)": short_rows,
            "run tails not covered by a full window": tail_rows,
        },
        "files": len(files),
    }
    if "sampling_rate_hz" in settings:
        info["sampling_rate_hz"] = settings["sampling_rate_hz"]
    return Dataset(
        f"csv:{folder.name}",
        np.concatenate(X),
        np.array(y, np.int64),
        class_names,
        groups=np.array(groups, np.int64) if True in has_subject else None,
        split=np.array(split) if True in has_split else None,
        channel_names=channels,
        info=info,
    )
