"""The generated audio pipeline: ``ditmos_prepare_audio()`` (fixed-point MFCC
front end + normalisation + input quantisation, in C) turns each raw int16
clip of the fsdd_audio test split into exactly the int8 window the host makes
from the training features (``quantize_input(normalise(X))``)."""

from __future__ import annotations

import ctypes as C
import json

import numpy as np
import pytest

from ditmos.codegen import generate, host
from ditmos.data import Normalizer, load_dataset, make_splits
from ditmos.data.fsdd_audio import CONFIG, fit_clips, load_clips
from ditmos.errors import DitmosError
from ditmos.quantize.reference import ComposedReference


@pytest.fixture(scope="module")
def audio_model(tmp_path_factory):
    """A small quantised model with fsdd_audio's input shape and normalisation."""
    from tests.codegen.tinymodels import make_int8_dir

    ds = load_dataset("fsdd_audio")
    split = make_splits(ds, 0)
    d = make_int8_dir(
        tmp_path_factory.mktemp("audio") / "int8",
        T=CONFIG.num_frames,
        C=CONFIG.n_coeffs,
        K=2,
        num_classes=10,
        n_calib=16,
        n_test=1,
    )
    man = json.loads((d / "manifest.json").read_text())
    norm = Normalizer.fit(ds.X[split.train])
    man["normalization"] = norm.to_dict()
    (d / "manifest.json").write_text(json.dumps(man))
    return d, ds, split, norm


@pytest.mark.slow
def test_prepare_audio_is_bit_exact_on_the_test_split(audio_model, tmp_path):
    d, ds, split, norm = audio_model
    gen = tmp_path / "gen"
    cg = generate(d, gen, frontend=CONFIG)
    assert {"ditmos_mfcc.c", "ditmos_mfcc.h", "prepare.c"} <= set(cg["files"])
    lib = C.CDLL(str(host.compile_model(gen, "ref", extra_flags=[str(gen / "prepare.c"), str(gen / "ditmos_mfcc.c")])))
    _, a = load_clips()
    clips = fit_clips(a["audio"], a["lengths"], CONFIG.clip_samples)[split.test]
    expect = ComposedReference(d).quantize_input(norm.apply(ds.X[split.test]))
    scratch = np.zeros(2 * CONFIG.n_fft + 2 * CONFIG.n_mels, dtype=np.int64)  # 8-byte aligned
    got = np.zeros_like(expect)
    for i, clip in enumerate(np.ascontiguousarray(clips)):
        lib.ditmos_prepare_audio(
            clip.ctypes.data_as(C.POINTER(C.c_int16)),
            scratch.ctypes.data_as(C.POINTER(C.c_int32)),
            got[i].ctypes.data_as(C.POINTER(C.c_int8)),
        )
    assert len(got) == 500
    assert np.array_equal(got, expect), f"{np.sum(got != expect)} of {got.size} values differ"


def test_front_end_must_fit_the_model(audio_model, tmp_path):
    from ditmos.data.mfcc_fixed import FixedMfccConfig

    d = audio_model[0]
    with pytest.raises(DitmosError, match="front end makes 24x13"):
        generate(d, tmp_path, frontend=FixedMfccConfig(clip_samples=4000))


@pytest.mark.slow
def test_audio_example_application(audio_model, tmp_path):
    """The example main.c for an audio model: int16 clips on stdin -> the same
    predictions as the host int8 reference on the training features."""
    import shutil
    import subprocess

    from ditmos.codegen import include_dirs, kernel_sources
    from ditmos.codegen.example import write_example

    d, ds, split, norm = audio_model
    root = tmp_path / "build"
    generate(d, root / "src" / "model", frontend=CONFIG)
    (root / "src" / "kernels").mkdir(parents=True)
    for k in kernel_sources("ref"):
        shutil.copy(k, root / "src" / "kernels")
    shutil.copytree(include_dirs("ref")[0], root / "include")
    ex = write_example(root / "example", root / "src" / "model")
    r = subprocess.run(
        ["make", "-s", "CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror"], cwd=ex, capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr
    pick = split.test[:6]
    _, a = load_clips()
    clips = fit_clips(a["audio"], a["lengths"], CONFIG.clip_samples)[pick]
    r = subprocess.run(
        [str(ex / "example")],
        input="\n".join(" ".join(map(str, c)) for c in clips),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    ref = ComposedReference(d)
    pred, route, _ = ref.predict(ref.quantize_input(norm.apply(ds.X[pick])))
    want = [f"clip {i + 1}: class {p} {ref.class_names[p]} (route {q})" for i, (p, q) in enumerate(zip(pred, route))]
    assert r.stdout.strip().splitlines() == want


def _raw_answers(url: str, clips, marks=None):
    """RAW audio requests to the device at ``url``: [(predicted, route, scores,
    prepare cost)], the front end's cost from ``marks`` (QEMU) or RAW_OK."""
    from ditmos.harness.client import DeviceClient
    from ditmos.harness.marks import MarkLog
    from ditmos.harness.protocol import RawKind
    from ditmos.harness.transport import SerialTransport

    t = SerialTransport(url, 115200)
    t.open()
    out = []
    try:
        client = DeviceClient(t, timeout=10.0)
        client.hello()
        log = MarkLog(marks) if marks is not None else None
        for clip in clips:
            r = client.raw(RawKind.AUDIO, np.ascontiguousarray(clip).tobytes())
            if log is not None:
                log.take()
            cost = log.last_prepare if log is not None else r.prepare_cost
            out.append((r.result.predicted, r.result.route, list(r.result.scores), cost))
        assert client.stats().inferences == len(clips)
    finally:
        t.close()
    return out


@pytest.mark.slow
def test_raw_audio_on_the_device_equals_the_host_pipeline(audio_model, tmp_path):
    """RAW requests with int16 clips of the speaker test split: the host-board firmware
    and the Cortex-M7 firmware in QEMU run the MFCC front end, normalisation,
    quantisation and the model, and answer exactly as the host reference does on the
    training features; QEMU counts the front end's instructions apart."""
    from ditmos.boards.build import build_project
    from ditmos.boards.host import HostDevice
    from ditmos.boards.qemu import QemuTarget

    from ditmos.codegen import kernel_sources

    d, ds, split, norm = audio_model
    pick = split.test[::50]  # 10 clips over the split
    _, a = load_clips()
    clips = fit_clips(a["audio"], a["lengths"], CONFIG.clip_samples)[pick]
    ref = ComposedReference(d)
    pred, route, scores = ref.predict(ref.quantize_input(norm.apply(ds.X[pick])))
    want = [(int(p), int(q), [int(v) for v in s]) for p, q, s in zip(pred, route, scores)]

    def build(board, kernels):
        gen = tmp_path / f"gen_{kernels}"
        generate(d, gen, kernels=kernels, frontend=CONFIG)
        return build_project(board, gen, tmp_path / board, kernels=kernels, kernel_sources=kernel_sources(kernels))

    host = build("host", "ref")
    with HostDevice(host, workdir=tmp_path / "dev") as dev:
        got = _raw_answers(dev.url, clips)
    assert [g[:3] for g in got] == want
    assert all(g[3] > 0 for g in got)  # host wall clock of the pipeline, ns

    mps2 = build("mps2_an500", "cm7")
    mem = json.loads((mps2 / "manifest.json").read_text())["memory"]
    pipe = mem["input_pipeline"]  # what the linker kept of prepare.c + the front end
    assert pipe["code"] > 500 and pipe["constants"] > 4000 and "firmware.map" in pipe["source"]
    raw = pipe["raw_request"]
    assert raw["raw_input"] == 2 * CONFIG.clip_samples and raw["window"] == 49 * 13
    assert raw["scratch"] == 4 * (2 * CONFIG.n_fft + 2 * CONFIG.n_mels)
    assert raw["ram"] >= raw["raw_input"] + raw["window"] + raw["scratch"]
    with QemuTarget(mps2, workdir=tmp_path / "qemu") as target:
        got = _raw_answers(target.url, clips[:3], marks=target.plugin_log)
    assert [g[:3] for g in got] == want[:3]
    assert all(g[3] is not None and g[3] > 100_000 for g in got)  # 49 frames of FFT + mel + DCT
