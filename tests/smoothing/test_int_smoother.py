"""Integer smoothing on the host: the compiled generated model's vote counts
equal the specification (numpy noise + the TFLM composed reference)."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.quantize.reference import ComposedReference
from ditmos.smoothing.smoothers import IntSmoother, reference_counts


@pytest.mark.slow
def test_counts_equal_tflm_reference(cg_int8, cg_test_x, tmp_path):
    sm = IntSmoother(cg_int8, sigma=0.3, work_dir=tmp_path)
    ref = ComposedReference(cg_int8)
    assert sm.table.sigma_q == pytest.approx(0.3 / ref.input_scale, rel=1e-6)
    for i, x in enumerate(cg_test_x[:3]):
        x_q = ref.quantize_input(x)
        for first, n in ((0, 12), (12, 25)):
            got = sm.counts(x_q, n, seed=100 + i, first=first)
            want = reference_counts(ref, sm.table, x_q, n, seed=100 + i, first=first)
            np.testing.assert_array_equal(got, want)
            assert got.sum() == n
    # selection and estimation are additive over counter ranges
    x_q = ref.quantize_input(cg_test_x[0])
    np.testing.assert_array_equal(sm.counts(x_q, 37, 5), sm.counts(x_q, 12, 5) + sm.counts(x_q, 25, 5, first=12))
    with pytest.raises(DitmosError, match="values"):
        sm.counts(x_q[:3], 1, 0)
