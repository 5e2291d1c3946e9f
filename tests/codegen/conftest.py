"""Fixtures for the code generator tests: a small int8 model set in the
export-contract shape, quantised by ``ditmos.quantize`` once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def cg_int8(tmp_path_factory) -> Path:
    """Selector + 2 classifiers (conv, concat with selector features, depthwise,
    avg pool, residual add, mean, dense) as an int8 directory; the test windows
    are in ``<int8>/../test_x.npy``."""
    from tests.codegen.tinymodels import make_int8_dir

    return make_int8_dir(tmp_path_factory.mktemp("cg") / "int8")


@pytest.fixture(scope="session")
def cg_test_x(cg_int8) -> np.ndarray:
    return np.load(cg_int8.parent / "test_x.npy")
