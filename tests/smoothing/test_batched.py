"""The batched integer engine: the device's noise compiled on the host equals
the numpy specification, and the batched int8 composition votes exactly like
the generated C model (the device's code) and the TFLM reference."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.quantize.reference import ComposedReference
from ditmos.smoothing import noise as N
from ditmos.smoothing.batched import BatchedInt8Model
from ditmos.smoothing.smoothers import IntSmoother


@pytest.mark.slow
def test_batched_engine_equals_c_and_reference(cg_int8, cg_test_x, tmp_path):
    sm = IntSmoother(cg_int8, sigma=0.5, work_dir=tmp_path, chunk=40)
    ref = ComposedReference(cg_int8)
    x_q = ref.quantize_input(cg_test_x[:4])
    # noise: C generator == numpy specification, with saturation
    noisy = sm.noisy(x_q[0], 30, seed=9, first=7)
    want = N.add_noise(x_q[0], N.sample(sm.table, 9, 7, 30, sm.size))
    np.testing.assert_array_equal(noisy, want)
    # per noisy window: batched classes == TFLM composed reference classes
    bm = BatchedInt8Model(cg_int8)
    np.testing.assert_array_equal(bm.predict(noisy), ref.predict(noisy.reshape(30, *ref.input_shape))[0])
    # whole vote vectors (chunked: 100 votes in chunks of 40) == the C vote loop
    for i, x in enumerate(x_q):
        b = sm.counts(x, 100, seed=50 + i, first=3, engine="batched")
        c = sm.counts(x, 100, seed=50 + i, first=3, engine="c")
        np.testing.assert_array_equal(b, c)
        assert b.sum() == 100
