"""Firmware builds of the hand-written fixture model, shared by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURE_MODEL = Path(__file__).parent / "fixtures" / "tiny_model"


@pytest.fixture(scope="session")
def fixture_model_dir() -> Path:
    return FIXTURE_MODEL


@pytest.fixture(scope="session")
def host_build(tmp_path_factory) -> Path:
    from ditmos.boards.build import build_project

    return build_project("host", FIXTURE_MODEL, tmp_path_factory.mktemp("host_build"))


@pytest.fixture(scope="session")
def mps2_build(tmp_path_factory) -> Path:
    from ditmos.boards.build import build_project

    return build_project("mps2_an500", FIXTURE_MODEL, tmp_path_factory.mktemp("mps2_build"), profile=True)


@pytest.fixture(scope="session")
def nucleo_build(tmp_path_factory) -> Path:
    from ditmos.boards.build import build_project

    return build_project("nucleo_f767zi", FIXTURE_MODEL, tmp_path_factory.mktemp("nucleo_build"), profile=True)
