"""The fast integer smoothing engine (AVX2 noise, host kernel set) gives the
reference engine's values exactly: noise bit for bit against the numpy
specification, vote counts against the device's C code and TFLM.  Needs an
x86-64 host with AVX2 (the host kernels themselves are also checked against
TFLM op by op in tests/kernels when it has)."""

from __future__ import annotations

import ctypes as C
import subprocess

import numpy as np
import pytest

from ditmos.quantize.reference import ComposedReference
from ditmos.smoothing import noise as N
from ditmos.smoothing.fast import has_avx2
from ditmos.smoothing.smoothers import IntSmoother, reference_counts
from tests.kernels.kernel_lib import FIRMWARE, INCLUDE
from tests.smoothing.test_noise_kernel import I8P, Table, _ctable

pytestmark = pytest.mark.skipif(not has_avx2(), reason="the fast engine needs an x86-64 CPU with AVX2")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoothfast") / "libsmoothfast.so"
    subprocess.run(
        [
            "gcc",
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            "-mavx2",
            "-fPIC",
            "-shared",
            "-DDITMOS_NOISE_S8_EXTERNAL",
            f"-I{INCLUDE}",
            str(FIRMWARE / "runtime" / "ditmos_smooth.c"),
            str(FIRMWARE / "tools" / "ditmos_smooth_avx2.c"),
            "-o",
            str(out),
        ],
        check=True,
    )
    lib = C.CDLL(str(out))
    lib.ditmos_noise_guide.argtypes = [C.POINTER(C.c_uint32), C.c_int32, C.POINTER(C.c_uint16)]
    lib.ditmos_noise_s8.argtypes = [C.POINTER(Table), C.c_uint32, C.c_uint32, I8P, I8P, C.c_int32]
    return lib


@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize(
    "sigma_q,seed,counter0,d",
    [
        (0.3, 0, 0, 768),  # table smaller than the comparison window
        (2.93, 5, 768 * 41, 768),  # hapt at sigma 0.25
        (2.93, 6, 3, 13),  # a tail shorter than a vector
        (20.0, 0xDEADBEEF, 0xFFFFFF00, 1000),  # counters wrap; many groups reach a tail
        (63.0, 7, 1000, 257),
    ],
)
def test_avx2_noise_bit_exact(lib, sigma_q, seed, counter0, d, guided):
    t = N.make_table(sigma_q)
    ct, _keep = _ctable(t, lib if guided else None)
    rng = np.random.default_rng(d)
    x = rng.integers(-128, 128, d).astype(np.int8)
    x[:4] = [-128, 127, -120, 120]  # saturation at both ends
    got = np.zeros(d, np.int8)
    lib.ditmos_noise_s8(C.byref(ct), seed, counter0, x.ctypes.data_as(I8P), got.ctypes.data_as(I8P), d)
    counters = (np.arange(d, dtype=np.uint64) + counter0) & np.uint64(N.M32)
    u = N.uniform31(seed, counters.astype(np.uint32))
    r = np.searchsorted(t.thresholds, u, side="right").astype(np.int32) - t.offset
    np.testing.assert_array_equal(got, np.clip(x.astype(np.int32) + r, -128, 127).astype(np.int8))


def test_fast_engine_counts_equal_c_engine_and_tflm(cg_int8, cg_test_x, tmp_path):
    sm = IntSmoother(cg_int8, sigma=0.5, work_dir=tmp_path, engine="fast")
    ref = ComposedReference(cg_int8)
    x_q = ref.quantize_input(cg_test_x[:3])
    np.testing.assert_array_equal(sm.noisy(x_q[0], 9, 4, 2, engine="fast"), sm.noisy(x_q[0], 9, 4, 2))
    for i, x in enumerate(x_q):
        fast = sm.counts(x, 80, seed=70 + i, first=5)
        np.testing.assert_array_equal(fast, sm.counts(x, 80, seed=70 + i, first=5, engine="c"))
        assert fast.sum() == 80
    want = reference_counts(ref, sm.table, x_q[0], 40, seed=3, first=0)
    np.testing.assert_array_equal(sm.counts(x_q[0], 40, seed=3), want)


def test_host_conv_difference_path_equals_reference(tmp_path):
    """A convolution on a declared noisy copy of a clean window (the sum of the
    clean window plus that of the difference in 8-bit products) equals the
    reference kernel; differences beyond DTM_HOST_DELTA_MAX take the ordinary
    path, also exactly."""
    from tests.kernels.kernel_lib import Kernels, build_shared

    ks = {s: Kernels(build_shared(s, tmp_path)) for s in ("ref", "host")}
    host = ks["host"].lib
    host.dtm_host_reference_input.argtypes = [I8P, I8P, C.c_int32]
    host.dtm_host_difference_calls.restype = C.c_uint64
    rng = np.random.default_rng(3)
    for T, ch, O, K, S, pad, off in [(40, 6, 8, 15, 1, 0, 1), (33, 3, 11, 5, 2, 2, 128), (20, 5, 4, 3, 1, 1, -7)]:
        clean = rng.integers(-128, 128, (T, ch)).astype(np.int8)
        clean[0, 0] = 0  # so that the difference at [0, 0] is the noise there
        w = rng.integers(-127, 128, (O, K * ch)).astype(np.int8)
        bias = rng.integers(-5000, 5000, O).astype(np.int32)
        mult = rng.integers(2**30, 2**31 - 1, O).astype(np.int32)
        shift = rng.integers(-12, -7, O).astype(np.int32)
        out_len = (T + 2 * pad - K) // S + 1
        kw = dict(kernel_size=K, stride=S, pad=pad, out_len=out_len, output_offset=-3)
        for spread, taken in ((24, 1), (31, 1), (60, 0)):
            noise = rng.integers(-spread, spread + 1, (T, ch))
            noise[0, 0] = spread  # the bound itself
            noisy = np.clip(clean.astype(np.int32) + noise, -128, 127).astype(np.int8)
            host.dtm_host_reference_input(noisy.ctypes.data_as(I8P), clean.ctypes.data_as(I8P), T * ch)
            before = host.dtm_host_difference_calls()
            got = ks["host"].conv1d([(noisy, off)], w, bias, mult, shift, **kw)
            assert host.dtm_host_difference_calls() - before == taken
            np.testing.assert_array_equal(got, ks["ref"].conv1d([(noisy, off)], w, bias, mult, shift, **kw))
