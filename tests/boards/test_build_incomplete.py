"""A failed rebuild never leaves a build directory that claims to be complete:
manifest.json (renamed into place last) disappears with the old firmware."""

from __future__ import annotations

import shutil

from ditmos.cli import main


def test_failed_rebuild_removes_the_completion_marker(fixture_model_dir, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["build", "--board", "mps2_an500", "--model-dir", str(fixture_model_dir), "--out", str(out)]) == 0
    assert (out / "manifest.json").is_file() and (out / "firmware.elf").is_file()
    capsys.readouterr()

    broken = tmp_path / "broken_model"
    shutil.copytree(fixture_model_dir, broken)
    with open(broken / "model.c", "a") as f:
        f.write("\nthis is not C;\n")
    assert main(["build", "--board", "mps2_an500", "--model-dir", str(broken), "--out", str(out)]) == 2
    assert "ditmos: error: compiling the firmware" in capsys.readouterr().err
    for stale in ("manifest.json", "firmware.elf", "firmware.bin"):
        assert not (out / stale).exists(), stale
    assert not list(out.glob(".manifest.json*"))
    # Every consumer refuses the directory with the command that fixes it.
    assert main(["emulate", "--build", str(out)]) == 2
    assert "run `ditmos build --board mps2_an500" in capsys.readouterr().err
