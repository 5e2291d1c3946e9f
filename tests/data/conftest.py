"""Fixtures for the data tests: per-test cache folder and datasets in published layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from datafixtures import WESAD_SEGMENTS, write_speech_commands, write_unimib, write_wesad


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Feature caches (speech commands) go to a per-test folder."""
    monkeypatch.setenv("DITMOS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def unimib_dir(tmp_path) -> Path:
    return write_unimib(tmp_path)


@pytest.fixture
def wesad_dir(tmp_path) -> Path:
    return write_wesad(tmp_path, {n: WESAD_SEGMENTS for n in (2, 3, 4, 5, 6)})


@pytest.fixture
def speech_dir(tmp_path) -> Path:
    return write_speech_commands(tmp_path)
