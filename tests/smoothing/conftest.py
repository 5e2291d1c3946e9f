"""The code generator's small int8 model set (no training) for smoothing tests."""

from tests.codegen.conftest import cg_int8, cg_test_x  # noqa: F401
