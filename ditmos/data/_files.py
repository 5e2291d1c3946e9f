"""Small helpers that turn file-system and format problems into DitmosError."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError


def require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DitmosError(f"{path}: {what} folder not found")
    if not path.is_dir():
        raise DitmosError(f"{path}: expected the {what} folder, found a file")
    return path


def require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DitmosError(f"{path}: {what} not found")
    if not path.is_file():
        raise DitmosError(f"{path}: expected the {what} file, found a folder")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise DitmosError(f"{path}: cannot read {what} ({err.strerror})") from None
    return path


def load_mat_variable(path: Path, variable: str) -> np.ndarray:
    """One variable of a MATLAB v4/v5 .mat file."""
    from scipy.io import loadmat

    require_file(path, "MATLAB file")
    try:
        contents = loadmat(str(path))
    except NotImplementedError:
        raise DitmosError(
            f"{path}: MATLAB v7.3 (HDF5) files are not supported; save it as v7 (save(..., '-v7'))"
        ) from None
    except Exception as err:  # scipy raises ValueError/TypeError/OSError for junk files
        raise DitmosError(f"{path}: not a readable MATLAB .mat file ({err})") from None
    if variable not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise DitmosError(f"{path}: has no variable {variable!r} (found {found})")
    return contents[variable]
