"""Session-wide fixtures shared by every stage's tests.

Training is the expensive part, so a real but tiny DiTMoS run (hapt subset) is
trained once per test session and quantised once; tests that need a trained
model, an int8 directory or a host reference use these fixtures instead of
training their own.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# As ditmos/__init__.py does, also for a test that imports TensorFlow before ditmos.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real, very short DiTMoS training run on a hapt subset (run directory)."""
    from ditmos.training.testing import tiny_run as make_tiny_run

    return Path(make_tiny_run(tmp_path_factory.mktemp("tiny_run")))


@pytest.fixture(scope="session")
def tiny_int8(tiny_run) -> Path:
    """The tiny run quantised to full int8 (``RUN_DIR/int8``)."""
    from ditmos.quantize import quantize_run

    return Path(quantize_run(tiny_run, calibration_samples=200, quiet=True))


@pytest.fixture(scope="session")
def host_model_build(tiny_int8, tmp_path_factory) -> Path:
    """The host-board firmware of the tiny run's int8 model (a build directory)."""
    from ditmos.boards.build import build_firmware

    return Path(build_firmware("host", tiny_int8, tmp_path_factory.mktemp("tiny_host")))


@pytest.fixture(scope="session")
def tiny_run_fsdd(tmp_path_factory) -> Path:
    """The same tiny DiTMoS run on an fsdd subset (MFCC frames, ``mfcc`` family)."""
    from ditmos.training.testing import tiny_run as make_tiny_run

    return Path(make_tiny_run(tmp_path_factory.mktemp("tiny_run_fsdd"), dataset="fsdd"))


@pytest.fixture(scope="session")
def tiny_int8_fsdd(tiny_run_fsdd) -> Path:
    """The tiny fsdd run quantised to full int8 (``RUN_DIR/int8``)."""
    from ditmos.quantize import quantize_run

    return Path(quantize_run(tiny_run_fsdd, calibration_samples=200, quiet=True))
