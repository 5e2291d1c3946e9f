"""The C noise generator and vote loop equal the numpy specification bit for bit."""

from __future__ import annotations

import ctypes as C
import subprocess

import numpy as np
import pytest

from ditmos.smoothing import noise as N
from tests.kernels.kernel_lib import CFLAGS, FIRMWARE, INCLUDE

U32P = C.POINTER(C.c_uint32)
I8P = C.POINTER(C.c_int8)


U16P = C.POINTER(C.c_uint16)


class Table(C.Structure):
    _fields_ = [("thresholds", U32P), ("size", C.c_int32), ("offset", C.c_int32), ("guide", U16P)]


CLASSIFY = C.CFUNCTYPE(C.c_int, C.c_void_p, I8P, C.POINTER(C.c_uint16))


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("smooth") / "libsmooth.so"
    subprocess.run(
        [
            "gcc",
            *CFLAGS,
            "-fPIC",
            "-shared",
            f"-I{INCLUDE}",
            str(FIRMWARE / "runtime" / "ditmos_smooth.c"),
            "-o",
            str(out),
        ],
        check=True,
    )
    lib = C.CDLL(str(out))
    lib.ditmos_mix32.argtypes = [C.c_uint32]
    lib.ditmos_mix32.restype = C.c_uint32
    lib.ditmos_noise_guide.argtypes = [U32P, C.c_int32, C.POINTER(C.c_uint16)]
    lib.ditmos_noise_s8.argtypes = [C.POINTER(Table), C.c_uint32, C.c_uint32, I8P, I8P, C.c_int32]
    lib.ditmos_smooth_vote_s8.argtypes = [
        C.POINTER(Table),
        C.c_uint32,
        C.c_uint32,
        C.c_uint32,
        I8P,
        I8P,
        C.c_int32,
        CLASSIFY,
        C.c_void_p,
        U32P,
        C.c_int32,
    ]
    return lib


def _ctable(t: N.NoiseTable, lib=None):
    """The C table; with ``lib``, also the guide for the fast search."""
    thr = np.ascontiguousarray(t.thresholds)
    guide = np.zeros(256, np.uint16)
    if lib is None:
        return Table(thr.ctypes.data_as(U32P), t.size, t.offset, None), (thr, guide)
    lib.ditmos_noise_guide(thr.ctypes.data_as(U32P), t.size, guide.ctypes.data_as(U16P))
    want = np.searchsorted(t.thresholds, np.arange(256, dtype=np.uint64) << 23, side="right")
    np.testing.assert_array_equal(guide, want)
    return Table(thr.ctypes.data_as(U32P), t.size, t.offset, guide.ctypes.data_as(U16P)), (thr, guide)


def test_mix32_matches(lib):
    xs = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 123456789]
    assert [lib.ditmos_mix32(x) for x in xs] == [N.mix32(x) for x in xs]
    assert list(N.mix32(np.array(xs, np.uint32))) == [N.mix32(x) for x in xs]


@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize(
    "sigma_q,seed,counter0",
    [
        (0.3, 0, 0),
        (6.3, 1, 17),
        (20.0, 0xDEADBEEF, 0xFFFFFF00),  # counters wrap mod 2^32
        (63.0, 7, 1000),
    ],
)
def test_noise_bit_exact(lib, sigma_q, seed, counter0, guided):
    t = N.make_table(sigma_q)
    ct, _keep = _ctable(t, lib if guided else None)
    d = 768
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, d).astype(np.int8)
    x[:4] = [-128, 127, -120, 120]  # saturation at both ends
    got = np.zeros(d, np.int8)
    lib.ditmos_noise_s8(C.byref(ct), seed, counter0, x.ctypes.data_as(I8P), got.ctypes.data_as(I8P), d)
    counters = (np.arange(d, dtype=np.uint64) + counter0) & np.uint64(N.M32)
    u = N.uniform31(seed, counters.astype(np.uint32))
    r = np.searchsorted(t.thresholds, u, side="right").astype(np.int32) - t.offset
    want = np.clip(x.astype(np.int32) + r, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(got, want)
    if counter0 % d == 0:  # the block form used by the vote loop
        np.testing.assert_array_equal(got, N.add_noise(x, N.sample(t, seed, counter0 // d, 1, d))[0])


def test_vote_loop_bit_exact(lib):
    """Counts of a C-callable toy classifier (sum of the window mod 5)."""
    t = N.make_table(4.0)
    ct, _keep = _ctable(t, lib)
    d, n, first, seed, classes = 96, 50, 3, 99, 5
    x = np.random.default_rng(1).integers(-100, 100, d).astype(np.int8)

    @CLASSIFY
    def classify(ctx, inp, out):
        out[0] = int(np.ctypeslib.as_array(inp, (d,)).astype(np.int64).sum()) % classes
        return 0

    scratch = np.zeros(d, np.int8)
    counts = np.zeros(classes, np.uint32)
    rc = lib.ditmos_smooth_vote_s8(
        C.byref(ct),
        seed,
        first,
        n,
        x.ctypes.data_as(I8P),
        scratch.ctypes.data_as(I8P),
        d,
        classify,
        None,
        counts.ctypes.data_as(U32P),
        classes,
    )
    assert rc == 0
    noisy = N.add_noise(x, N.sample(t, seed, first, n, d)).astype(np.int64)
    want = np.bincount(noisy.sum(axis=1) % classes, minlength=classes)
    np.testing.assert_array_equal(counts, want)


def test_vote_loop_rejects_bad_class(lib):
    t = N.make_table(1.0)
    ct, _keep = _ctable(t)

    @CLASSIFY
    def classify(ctx, inp, out):
        out[0] = 9
        return 0

    x = np.zeros(8, np.int8)
    counts = np.zeros(3, np.uint32)
    rc = lib.ditmos_smooth_vote_s8(
        C.byref(ct),
        0,
        0,
        2,
        x.ctypes.data_as(I8P),
        np.zeros(8, np.int8).ctypes.data_as(I8P),
        8,
        classify,
        None,
        counts.ctypes.data_as(U32P),
        3,
    )
    assert rc == -1
