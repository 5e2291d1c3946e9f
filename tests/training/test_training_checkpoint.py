"""Atomic writes: a failure while saving leaves the previous checkpoint intact."""

import os

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.training import checkpoint


def test_checkpoint_roundtrip_and_failed_save_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "latest.npz"
    checkpoint.save_checkpoint(path, {"w": np.arange(3.0)}, {"stage": "strong", "epoch": 1})
    arrays, progress = checkpoint.load_checkpoint(path)
    np.testing.assert_array_equal(arrays["w"], [0.0, 1.0, 2.0])
    assert progress == {"stage": "strong", "epoch": 1}

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        checkpoint.save_checkpoint(path, {"w": np.zeros(3)}, {"stage": "split", "epoch": 0})
    monkeypatch.undo()
    arrays, progress = checkpoint.load_checkpoint(path)
    assert progress["stage"] == "strong" and arrays["w"][2] == 2.0
    assert [p.name for p in tmp_path.iterdir()] == ["latest.npz"]  # no temp file left


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "latest.npz"
    checkpoint.save_checkpoint(path, {"w": np.arange(3.0)}, {"stage": "strong"})
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DitmosError, match="unreadable checkpoint"):
        checkpoint.load_checkpoint(path)
