"""The generated input pipeline (prepare.c): raw hapt windows, as float values
or as int16 sensor counts, become exactly the int8 windows the host's
``ComposedReference.quantize_input`` makes from the normalised test split
(every window of the whole hapt test split); the streaming helper classifies
every ``hop`` samples over the last T samples, two streams side by side."""

from __future__ import annotations

import ctypes as C
import json

import numpy as np
import pytest

from ditmos.codegen import generate, host
from ditmos.data import Normalizer, load_dataset, make_splits
from ditmos.errors import DitmosError
from ditmos.paths import datasets_dir
from ditmos.quantize.reference import ComposedReference

I8P = C.POINTER(C.c_int8)


@pytest.fixture(scope="module")
def hapt_scale():
    with np.load(datasets_dir() / "hapt" / "hapt.npz") as f:
        return f["scale"].astype(np.float32)


@pytest.fixture(scope="module")
def int8_dir(tiny_int8):
    """A real trained and quantised hapt run."""
    return tiny_int8


@pytest.fixture(scope="module")
def built(int8_dir, hapt_scale, tmp_path_factory):
    gen = tmp_path_factory.mktemp("prepare")
    generate(int8_dir, gen, kernels="ref", raw_scale=[float(s) for s in hapt_scale])
    lib = host.compile_model(gen, "ref", extra_flags=[str(gen / "prepare.c")])
    man = json.loads((gen / "manifest.json").read_text())
    return C.CDLL(str(lib)), man, lib


@pytest.fixture(scope="module")
def hapt_test(int8_dir, hapt_scale):
    """Raw test windows (float and int16 counts) and the host's int8 windows."""
    ds = load_dataset("hapt")
    x = ds.X[make_splits(ds, 0).test]
    counts = np.rint(x / hapt_scale).astype(np.int16)
    assert np.array_equal(counts.astype(np.float32) * hapt_scale, x)  # the loader's own step
    ref = ComposedReference(int8_dir)
    norm = Normalizer.from_dict(ref.manifest["normalization"])
    return x, counts, ref.quantize_input(norm.apply(x))


def _prepare(lib, fn: str, raw: np.ndarray, ctype) -> np.ndarray:
    out = np.zeros(raw.shape, dtype=np.int8)
    f = getattr(lib, fn)
    for i in range(len(raw)):
        f(raw[i].ctypes.data_as(C.POINTER(ctype)), out[i].ctypes.data_as(I8P))
    return out


def test_prepare_window_float_is_bit_exact_on_the_hapt_test_split(built, hapt_test):
    lib, _, _ = built
    x, _, expect = hapt_test
    assert len(x) > 1000
    got = _prepare(lib, "ditmos_prepare_window", np.ascontiguousarray(x, np.float32), C.c_float)
    assert np.array_equal(got, expect), f"{np.sum(got != expect)} of {expect.size} values differ"


def test_prepare_window_int16_is_bit_exact_on_the_hapt_test_split(built, hapt_test):
    lib, _, _ = built
    _, counts, expect = hapt_test
    got = _prepare(lib, "ditmos_prepare_window_i16", np.ascontiguousarray(counts), C.c_int16)
    assert np.array_equal(got, expect)


def test_extreme_and_non_finite_values(built, int8_dir):
    lib, man, _ = built
    T, Ch = man["input_shape"]
    ref = ComposedReference(int8_dir)
    norm = Normalizer.from_dict(ref.manifest["normalization"])
    rng = np.random.default_rng(3)
    x = (rng.normal(0, 1, (T, Ch)) * 10.0 ** rng.integers(-8, 30, (T, Ch))).astype(np.float32)
    x[0, 0], x[1, 0] = 3e38, -3e38
    got = _prepare(lib, "ditmos_prepare_window", x[None], C.c_float)[0]
    with np.errstate(over="ignore"):
        expect = ref.quantize_input(np.clip(norm.apply(x), -1e30, 1e30))
    assert np.array_equal(got, expect)
    x = np.zeros((T, Ch), np.float32)
    x[0, 0], x[0, 1], x[0, 2] = np.inf, -np.inf, np.nan
    got = _prepare(lib, "ditmos_prepare_window", x[None], C.c_float)[0]
    assert got[0, :3].tolist() == [127, -128, ref.input_zero_point]


def test_streams_classify_every_hop_over_the_last_window(built, hapt_scale):
    lib, man, _ = built
    T, Ch = man["input_shape"]
    ncls = man["num_classes"]

    class Result(C.Structure):
        _fields_ = [("predicted", C.c_uint16), ("route", C.c_uint8), ("scores", C.c_int8 * ncls)]

    with np.load(datasets_dir() / "hapt" / "hapt.npz") as f:
        signals, seg_len = f["signals"], f["seg_len"]
    seg = int(np.argmax(seg_len >= 3 * T))
    start = int(seg_len[:seg].sum())
    stream = np.ascontiguousarray(signals[start : start + 3 * T + 17].astype(np.int16))
    hm = host.HostModel(built[2], input_size=T * Ch, num_classes=ncls, K=man["K"])
    hops = (64, 37)
    states = [C.create_string_buffer(2 * T * Ch + 64) for _ in hops]
    for st, hop in zip(states, hops):
        assert lib.ditmos_stream_init(st, C.c_uint32(hop)) == 0
    assert lib.ditmos_stream_init(states[0], C.c_uint32(0)) == -1
    assert lib.ditmos_stream_init(states[0], C.c_uint32(hops[0])) == 0
    got = {hop: [] for hop in hops}
    for n in range(len(stream)):
        for st, hop in zip(states, hops):  # interleaved: the streams must not share state
            res = Result()
            rc = lib.ditmos_stream_push_i16(st, stream[n].ctypes.data_as(C.POINTER(C.c_int16)), C.byref(res))
            assert rc in (0, 1)
            if rc == 1:
                got[hop].append((n, res.predicted, res.route, bytes(res.scores)))
    for hop in hops:
        ends = list(range(T - 1, len(stream), hop))
        assert [g[0] for g in got[hop]] == ends
        for n, pred, route, scores in got[hop]:
            q = _prepare(lib, "ditmos_prepare_window_i16", stream[None, n - T + 1 : n + 1], C.c_int16)[0]
            p2, r2, s2 = hm.infer(q)
            assert (pred, route, scores) == (p2, r2, s2.tobytes())


def test_bad_raw_scale_is_a_clear_error(int8_dir, tmp_path):
    with pytest.raises(DitmosError, match="raw int16 scale needs 6"):
        generate(int8_dir, tmp_path, raw_scale=[1.0, 2.0])


def test_halfway_values_round_away_from_zero(int8_dir, tmp_path):
    """With mean 0, std 1 and a power-of-two scale, x / scale hits exact .5 ties."""
    import shutil

    from ditmos.quantize import qmath

    d = tmp_path / "int8"
    shutil.copytree(int8_dir, d)
    man = json.loads((d / "manifest.json").read_text())
    T, Ch = man["input_shape"]
    man["normalization"] = {"mean": [0.0] * Ch, "std": [1.0] * Ch}
    man["input_quant"] = {"scale": 0.25, "zero_point": 3}
    (d / "manifest.json").write_text(json.dumps(man))
    generate(d, tmp_path / "gen")
    lib = C.CDLL(str(host.compile_model(tmp_path / "gen", "ref", extra_flags=[str(tmp_path / "gen" / "prepare.c")])))
    halves = (np.arange(T * Ch) - T * Ch // 2) * 0.125  # every second value a tie
    x = np.ascontiguousarray(halves.reshape(1, T, Ch), np.float32)
    got = _prepare(lib, "ditmos_prepare_window", x, C.c_float)
    assert np.array_equal(got, qmath.quantize(x, 0.25, 3))


def test_example_application_builds_and_classifies_a_stream(built, int8_dir, tmp_path):
    """The example (main.c + Makefile -> libditmos_model.a) in a build-directory
    layout: fed hapt samples on stdin, it prints the stream's classifications."""
    import shutil
    import subprocess

    from ditmos.codegen import include_dirs, kernel_sources
    from ditmos.codegen.example import write_example

    lib, man, lib_path = built
    T, Ch = man["input_shape"]
    root = tmp_path / "build"
    generate(int8_dir, root / "src" / "model")
    (root / "src" / "kernels").mkdir(parents=True)
    for k in kernel_sources("ref"):
        shutil.copy(k, root / "src" / "kernels")
    shutil.copytree(include_dirs("ref")[0], root / "include")
    ex = write_example(root / "example", root / "src" / "model", hop=50)
    r = subprocess.run(
        ["make", "-s", "CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror"], cwd=ex, capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (ex / "libditmos_model.a").is_file()

    with np.load(datasets_dir() / "hapt" / "hapt.npz") as f:
        signals, scale = f["signals"][: T + 170], f["scale"].astype(np.float32)
    x = signals.astype(np.float32) * scale
    text = "\n".join(" ".join(f"{v:.9g}" for v in row) for row in x) + "\n"
    r = subprocess.run([str(ex / "example")], input=text, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    hm = host.HostModel(lib_path, input_size=T * Ch, num_classes=man["num_classes"], K=man["K"])
    names = json.loads((int8_dir / "manifest.json").read_text())["class_names"]
    ends = list(range(T, len(x) + 1, 50))
    assert len(lines) == len(ends)
    for line, n in zip(lines, ends):
        q = _prepare(lib, "ditmos_prepare_window", np.ascontiguousarray(x[None, n - T : n]), C.c_float)[0]
        pred, route, _ = hm.infer(q)
        assert line == f"sample {n}: class {pred} {names[pred]} (route {route})"


def test_int16_input_scale_comes_from_the_runs_dataset(int8_dir, hapt_scale, tmp_path):
    """A hapt run's build gets the int16 functions with hapt's count scale by itself."""
    cg = generate(int8_dir, tmp_path / "auto")
    assert "prepare.h" in cg["files"] and "ditmos_mfcc.c" not in cg["files"]
    text = (tmp_path / "auto" / "prepare.c").read_text()
    assert "ditmos_prepare_window_i16" in text
    assert f"{float(hapt_scale[0]):.9g}" in text
    cg = generate(int8_dir, tmp_path / "none", raw_scale=None)
    assert "_i16" not in (tmp_path / "none" / "prepare.c").read_text()
