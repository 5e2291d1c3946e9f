"""Reading and writing the artefacts (manifests, configs, metrics, run folders).

One reader for every stage, so a missing or broken file always gives the same
kind of one-line error naming the file and what to do about it; one way to
replace a whole artefact folder so that it is either complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
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


@contextmanager
def replaced_dir(dest: str | Path):
    """Yield an empty temporary sibling of ``dest`` to fill; when the block
    ends without an exception it takes ``dest``'s place (an old ``dest`` is
    removed), otherwise it is removed.  ``dest`` is never seen half-written."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
