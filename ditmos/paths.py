"""Where the non-Python assets live, from a checkout or an installed package.

From a checkout (or an editable install) ``templates/``, ``firmware/`` and
``datasets/`` sit next to the ``ditmos`` package.  A wheel carries copies of
them under ``ditmos/_assets/`` (see ``setup.py``).
"""

from __future__ import annotations

from pathlib import Path

from ditmos.errors import DitmosError

_PKG = Path(__file__).resolve().parent
_ASSET_DIRS = ("templates", "firmware", "datasets")


def _root_for(name: str) -> Path:
    for base in (_PKG.parent, _PKG / "_assets"):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    raise DitmosError(
        f"cannot find the '{name}' folder next to the ditmos package or in its "
        f"installed assets ({_PKG / '_assets'}); reinstall ditmos"
    )


def templates_dir() -> Path:
    return _root_for("templates")


def firmware_dir() -> Path:
    return _root_for("firmware")


def datasets_dir() -> Path:
    return _root_for("datasets")
