"""Atomic file writes and the run's checkpoint (one ``.npz`` per save).

Everything a resumed run needs -- weights, BN statistics, optimiser slots,
the cluster assignment, the best-on-validation snapshot and the progress
record -- goes into ONE ``.npz`` written to a temporary file and moved into
place with ``os.replace``, so a kill leaves either the old or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_checkpoint(path, arrays: dict[str, np.ndarray], progress: dict) -> None:
    """Write arrays plus a JSON progress record into one atomic ``.npz``."""
    buf = io.BytesIO()
    payload = dict(arrays)
    payload["__progress__"] = np.frombuffer(json.dumps(progress).encode("utf-8"), dtype=np.uint8)
    np.savez(buf, **payload)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    path = Path(path)
    try:
        # our own file object: np.load leaks its handle when the zip is truncated
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise DitmosError(f"{path}: checkpoint not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DitmosError(f"{path}: unreadable checkpoint ({e})") from None
    if "__progress__" not in arrays:
        raise DitmosError(f"{path}: not a ditmos checkpoint (no progress record)")
    progress = json.loads(arrays.pop("__progress__").tobytes().decode("utf-8"))
    return arrays, progress


def prefixed(prefix: str, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in d.items()}


def unprefixed(prefix: str, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    p = prefix + "/"
    return {k[len(p) :]: v for k, v in d.items() if k.startswith(p)}
