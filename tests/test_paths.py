"""Every run-time file is a package resource found through ditmos.paths."""

import re
import subprocess
from pathlib import Path

from ditmos import paths

PKG = Path(paths.__file__).resolve().parent
ROOT = PKG.parent


def test_assets_resolve_inside_the_package_folder():
    root = paths.package_root()
    assert root.resolve() == PKG
    assert paths.boards_json() == root / "boards" / "boards.json"
    for name in paths.ASSET_DIRS:
        d = paths.asset_dir(name)
        assert d == root / "_assets" / name and d.is_dir()
    assert (paths.firmware_dir() / "tools" / "ditmos_insn_plugin.c").is_file()
    assert (paths.templates_dir() / "model.c.j2").is_file()
    for ds in ("hapt", "fsdd"):
        for f in ("README.md", "LICENSE", f"{ds}.npz"):
            assert (paths.datasets_dir() / ds / f).is_file()


def test_every_tracked_asset_is_a_resource():
    """The files git tracks in templates/, firmware/, datasets/ are exactly
    what the package sees (the _assets links cover them all)."""
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "templates", "firmware", "datasets"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    want = {ROOT / rel for rel in tracked.split()}
    have = {p.resolve() for p in paths.all_resources() if p.name != "boards.json"}
    assert want and want <= have, sorted(str(p) for p in want - have)


def test_no_module_locates_files_by_its_own_path():
    """Only ditmos/paths.py knows where data live: no __file__ tricks elsewhere."""
    offenders = []
    for py in PKG.rglob("*.py"):
        text = py.read_text()
        if re.search(r"\b__file__\b", text):
            offenders.append(str(py.relative_to(ROOT)))
    assert offenders == []


def test_missing_resource_is_a_clear_error():
    import pytest

    from ditmos.errors import DitmosError

    with pytest.raises(DitmosError, match="reinstall ditmos"):
        paths.resource("boards", "no-such-file.json")
