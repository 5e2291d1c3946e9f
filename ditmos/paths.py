"""The one place that locates files ditmos reads at run time.

Every non-Python file the package needs (board facts, code templates, firmware
sources, the QEMU plugin source, the shipped datasets with their READMEs and
licences) is a *package resource* of ``ditmos``, found with
:mod:`importlib.resources`, so a checkout, an editable install and an
installed wheel take the same code path:

- ``ditmos/boards/boards.json``: board facts (a plain package data file)
- ``ditmos/_assets/templates``: Jinja2 templates (``templates/`` of the source tree)
- ``ditmos/_assets/firmware``: C runtime, kernels, board files, QEMU plugin source
- ``ditmos/_assets/datasets``: shipped datasets with README and LICENSE each

In the source tree ``ditmos/_assets/<name>`` are symbolic links to the
top-level folders; the wheel and the sdist carry real copies (setuptools
follows the links when it collects package data).  Nothing here looks at the
current directory or at the location of a checkout.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from ditmos.errors import DitmosError

ASSET_DIRS = ("templates", "firmware", "datasets")


@lru_cache(maxsize=1)
def package_root() -> Path:
    """The installed (or checked-out) ``ditmos`` package folder."""
    root = files("ditmos")
    if not isinstance(root, Path):
        # Zip imports would need extraction; wheels are always unpacked by pip.
        raise DitmosError(
            f"ditmos is imported from {root!s}, which is not a folder on "
            "disk; install it with pip (not as a zip) so its data files exist"
        )
    return root


def resource(*parts: str) -> Path:
    """Path of a file or folder shipped inside the package, e.g.
    ``resource("boards", "boards.json")``; a clear error if it is missing."""
    path = package_root().joinpath(*parts)
    if not path.exists():
        raise DitmosError(
            f"{path}: data file of the ditmos package is missing; the installation is incomplete, reinstall ditmos"
        )
    return path


def asset_dir(name: str) -> Path:
    """``templates``, ``firmware`` or ``datasets`` as shipped with the package."""
    if name not in ASSET_DIRS:
        raise ValueError(f"unknown asset folder {name!r}")
    path = resource("_assets", name)
    if not path.is_dir():
        raise DitmosError(f"{path}: expected the '{name}' folder of the ditmos package; reinstall ditmos")
    return path


def templates_dir() -> Path:
    return asset_dir("templates")


def firmware_dir() -> Path:
    return asset_dir("firmware")


def datasets_dir() -> Path:
    return asset_dir("datasets")


def boards_json() -> Path:
    return resource("boards", "boards.json")


def all_resources() -> list[Path]:
    """Every shipped data file (used by tests and ``ditmos doctor``)."""
    out = [boards_json()]
    for name in ASSET_DIRS:
        out += sorted(p for p in asset_dir(name).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return out
