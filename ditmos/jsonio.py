"""Reading and writing the JSON artefacts (manifests, configs, metrics).

One reader for every stage, so a missing or broken file always gives the same
kind of one-line error naming the file and what to do about it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_json(path: str | Path, hint: str = "") -> dict:
    """The JSON object in ``path``; :class:`DitmosError` when it is missing
    (``hint`` says how to make it), unreadable, not JSON or not an object."""
    from ditmos.errors import DitmosError

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DitmosError(f"{path}: missing" + (f" ({hint})" if hint else "")) from None
    except json.JSONDecodeError as err:
        raise DitmosError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    except OSError as err:
        raise DitmosError(f"{path}: cannot be read ({err.strerror})") from None
    if not isinstance(data, dict):
        raise DitmosError(f"{path}: expected a JSON object")
    return data


def write_json(path: str | Path, data, *, indent: int | None = 1) -> None:
    """Write ``data`` to ``path`` atomically (a crash leaves the old file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent) + "\n")
    os.replace(tmp, path)
