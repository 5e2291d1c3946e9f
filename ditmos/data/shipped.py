"""Opening the data files shipped in ``datasets/<name>/``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.paths import datasets_dir


def open_shipped(name: str, filename: str) -> tuple[Path, np.lib.npyio.NpzFile]:
    """``(path, open NpzFile)`` of a shipped dataset file; a clear error if it is missing."""
    path = datasets_dir() / name / filename
    if not path.is_file():
        raise DitmosError(f"{path}: shipped dataset file is missing; rebuild it with datasets/{name}/prepare.py")
    try:
        return path, np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DitmosError(f"{path}: shipped dataset file is unreadable ({err})") from None
