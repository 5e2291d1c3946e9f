"""``unimib:DIR``: UniMiB-SHAR accelerometer windows, in the published layout.

DIR is the dataset's ``data`` folder (or its parent ``UniMiB-SHAR``, or the
folder the archive was extracted into) holding
``<part>_data.mat``, ``<part>_labels.mat`` and ``<part>_names.mat`` for
``part`` = ``acc`` (all 17 classes, spec ``unimib``), ``adl`` (9 activities
of daily living, ``unimib-adl``) or ``fall`` (8 falls, ``unimib-fall``):

* ``<part>_data``: ``[N, 453]``, each row the x | y | z axes of one window of
  151 samples (50 Hz, m/s^2) -> ``X [N, 151, 3]``;
* ``<part>_labels``: ``[N, 3]`` columns activity (1-based), subject (1..30),
  trial -> ``y`` = activity - 1, ``groups`` = subject;
* ``<part>_names``: a 2 x n (or n x 2) cell array holding each class's short
  name and its description; the short names (the entries without spaces)
  become ``class_names``.  Without the file the published names are used.

The fall subset's activity column is accepted both as 1..8 and, as in
``acc_labels``, as 10..17.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ditmos.data._files import load_mat_variable, require_dir
from ditmos.data.core import Dataset
from ditmos.errors import DitmosError

WINDOW = 151
ADL_NAMES = [
    "StandingUpFS",
    "StandingUpFL",
    "Walking",
    "Running",
    "GoingUpS",
    "Jumping",
    "GoingDownS",
    "LyingDownFS",
    "SittingDown",
]
FALL_NAMES = [
    "FallingForw",
    "FallingRight",
    "FallingBack",
    "HittingObstacle",
    "FallingWithPS",
    "FallingBackSC",
    "Syncope",
    "FallingLeft",
]
PUBLISHED_NAMES = {"acc": ADL_NAMES + FALL_NAMES, "adl": ADL_NAMES, "fall": FALL_NAMES}
SPEC_NAMES = {"acc": "unimib", "adl": "unimib-adl", "fall": "unimib-fall"}


def _data_dir(path: Path, part: str) -> Path:
    require_dir(path, "UniMiB-SHAR")
    for candidate in (path, path / "data", path / "UniMiB-SHAR" / "data"):
        if (candidate / f"{part}_data.mat").exists():
            return candidate
    raise DitmosError(f"{path}: no {part}_data.mat here or in {path / 'data'} (expected the UniMiB-SHAR 'data' folder)")


def _read_names(path: Path, part: str, n_classes: int) -> tuple[list[str], str]:
    if not path.exists():
        return PUBLISHED_NAMES[part], "published names (no names file)"
    cells = load_mat_variable(path, f"{part}_names")
    cells = np.asarray(cells, dtype=object)
    if cells.ndim == 2 and cells.shape[0] == 2 and cells.shape[1] != 2:
        pairs = list(zip(cells[0], cells[1]))
    elif cells.ndim == 2 and cells.shape[1] == 2:
        pairs = list(zip(cells[:, 0], cells[:, 1]))
    elif cells.ndim == 2 and 1 in cells.shape:
        pairs = [(c, c) for c in cells.ravel()]
    else:
        raise DitmosError(f"{path}: {part}_names has shape {cells.shape}; expected a 2 x n cell array")

    def text(cell) -> str:
        return str(np.asarray(cell).ravel()[0]).strip() if np.asarray(cell).size else ""

    names = []
    for a, b in pairs:
        a, b = text(a), text(b)
        names.append(a if (" " not in a or " " in b) else b)
    if len(names) != n_classes:
        raise DitmosError(f"{path}: {len(names)} class names, but the labels need {n_classes}")
    return names, str(path.name)


def load(path: Path, part: str = "acc") -> Dataset:
    if part not in PUBLISHED_NAMES:
        raise DitmosError(f"unknown UniMiB-SHAR part {part!r}; use acc, adl or fall")
    folder = _data_dir(Path(path), part)
    data_file = folder / f"{part}_data.mat"
    labels_file = folder / f"{part}_labels.mat"
    data = np.asarray(load_mat_variable(data_file, f"{part}_data"))
    labels = np.asarray(load_mat_variable(labels_file, f"{part}_labels"))
    if data.ndim != 2 or data.shape[1] != 3 * WINDOW:
        raise DitmosError(
            f"{data_file}: {part}_data has shape {data.shape}; expected [N, {3 * WINDOW}] "
            f"(x | y | z of {WINDOW} samples)"
        )
    if labels.ndim != 2 or labels.shape[1] != 3 or labels.shape[0] != data.shape[0]:
        raise DitmosError(
            f"{labels_file}: {part}_labels has shape {labels.shape}; expected "
            f"[{data.shape[0]}, 3] (activity, subject, trial)"
        )
    if not np.issubdtype(data.dtype, np.number):
        raise DitmosError(f"{data_file}: {part}_data is not numeric (dtype {data.dtype})")
    if not np.all(np.isfinite(data)):
        rows = np.flatnonzero(~np.all(np.isfinite(data), axis=1))
        raise DitmosError(f"{data_file}: {rows.size} row(s) contain NaN or Inf (first: row {rows[0] + 1})")
    n_classes = len(PUBLISHED_NAMES[part])
    names, names_from = _read_names(folder / f"{part}_names.mat", part, n_classes)
    activity = labels[:, 0].astype(np.int64)
    if np.any(labels[:, 0] != activity):
        raise DitmosError(f"{labels_file}: activity labels are not integers")
    offset = 1
    if part == "fall" and activity.min() >= 10:
        offset = 10
    y = activity - offset
    outside = (y < 0) | (y >= n_classes)
    if outside.any():
        raise DitmosError(
            f"{labels_file}: {int(outside.sum())} activity label(s) outside "
            f"{offset}..{offset + n_classes - 1} (e.g. {int(activity[outside][0])})"
        )
    X = data.reshape(-1, 3, WINDOW).transpose(0, 2, 1)
    info = {
        "path": str(folder),
        "source": f"UniMiB-SHAR {part} subset ({data_file.name}, {labels_file.name})",
        "licence": "as published by the UniMiB-SHAR authors (free for research; cite the paper)",
        "citation": "Micucci, Mobilio, Napoletano: UniMiB SHAR: A Dataset for Human Activity "
        "Recognition Using Acceleration Data from Smartphones, Applied Sciences 7(10) 1101 (2017)",
        "sampling_rate_hz": 50,
        "units": "m/s^2",
        "class_names_from": names_from,
        "trials": int(np.unique(labels[:, 2]).size),
        "windows_made": int(len(y)),
        "windows_dropped": {},
    }
    return Dataset(
        SPEC_NAMES[part], X, y, names, groups=labels[:, 1], channel_names=["acc_x", "acc_y", "acc_z"], info=info
    )
