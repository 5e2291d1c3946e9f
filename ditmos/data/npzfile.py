"""``npz:FILE``: your own windows in one ``.npz`` file.

Arrays (``np.savez(FILE, X=..., y=..., ...)``):

* ``X``: ``[N, T, C]`` numbers (float32 after loading);
* ``y``: ``[N]`` integer labels ``0..K-1``;
* ``class_names`` (optional): ``[K]`` strings; default ``"0".."K-1"`` with
  ``K = max(y) + 1``;
* ``groups`` (optional): ``[N]`` integer subject ids (splits keep subjects apart);
* ``split`` (optional): ``[N]`` strings ``train``/``val``/``test``, honoured exactly;
* ``channel_names`` (optional): ``[C]`` strings.

Object arrays (pickles) are refused: save strings as numpy str arrays.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ditmos.data._files import require_file
from ditmos.data.core import Dataset
from ditmos.errors import DitmosError

_KNOWN = {"X", "y", "class_names", "groups", "split", "channel_names"}


def load(path: Path) -> Dataset:
    path = require_file(Path(path), ".npz dataset")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise DitmosError(f"{path}: is a single .npy array, expected an .npz with X and y")
    if not magic.startswith(b"PK"):
        raise DitmosError(f"{path}: not a readable .npz file (no zip header)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {}
            for key in f.files:
                if key in _KNOWN:
                    arrays[key] = f[key]
            extra = sorted(set(f.files) - _KNOWN)
    except DitmosError:
        raise
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DitmosError(
                f"{path}: stores Python objects (pickled arrays); save strings as "
                "numpy str arrays, e.g. np.array(names, dtype=str)"
            ) from None
        raise DitmosError(f"{path}: not a readable .npz file ({err})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise DitmosError(f"{path}: not a readable .npz file ({err})") from None
    for key in ("X", "y"):
        if key not in arrays:
            raise DitmosError(f"{path}: has no array {key!r} (found {sorted(arrays) + extra})")
    y = arrays["y"]
    if "class_names" in arrays:
        class_names = [str(c) for c in np.asarray(arrays["class_names"]).ravel()]
    else:
        if y.size == 0 or not np.issubdtype(y.dtype, np.number):
            raise DitmosError(f"{path}: y must be integer labels (dtype {y.dtype})")
        class_names = [str(k) for k in range(int(np.max(y)) + 1)]
    channel_names = [str(c) for c in arrays["channel_names"].ravel()] if "channel_names" in arrays else []
    info = {
        "path": str(path),
        "source": f"user file {path.name}",
        "licence": "as set by the owner of the file",
        "windows_made": int(np.asarray(arrays["X"]).shape[0]) if np.asarray(arrays["X"]).ndim else 0,
        "windows_dropped": {},
    }
    if extra:
        info["ignored_arrays"] = extra
    return Dataset(
        f"npz:{path.name}",
        arrays["X"],
        y,
        class_names,
        groups=arrays.get("groups"),
        split=arrays.get("split"),
        channel_names=channel_names,
        info=info,
    )
