"""The product path: a real trained, quantised run -> ditmos.codegen ->
firmware for mps2_an500 (cm7 kernels) and the host board (ref kernels);
INFER answers on test windows must equal the TFLM host reference exactly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ditmos.boards import build_firmware
from ditmos.boards.host import HostDevice
from ditmos.boards.qemu import QemuTarget
from ditmos.harness.protocol import device_model_hash
from firmware.frames import HELLO, INFER, Link, parse_hello, parse_infer

pytestmark = pytest.mark.slow
N_SAMPLES = 24


@pytest.fixture(scope="module")
def test_windows(tiny_run, tiny_int8):
    from ditmos.quantize import ComposedReference
    from ditmos.training.rundir import load_run_data

    ref = ComposedReference(tiny_int8)
    data = load_run_data(tiny_run)
    x_q = ref.quantize_input(data.x_test[:N_SAMPLES])
    return x_q, [ref.predict_one(x) for x in x_q]


def _exchange(link, x_q, expected):
    manifest_hello = parse_hello(link.request(HELLO, 0).payload)
    assert (manifest_hello["input_t"], manifest_hello["input_c"]) == x_q.shape[1:]
    for i, (x, (pred, route, logits)) in enumerate(zip(x_q, expected)):
        f = link.request(INFER, i + 1, np.ascontiguousarray(x, np.int8).tobytes())
        assert f.type == 0x82, f
        r = parse_infer(f.payload)
        assert (r["predicted"], r["route"]) == (pred, route), i
        assert r["scores"] == np.asarray(logits, np.int8).ravel().tolist(), i
    return manifest_hello


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="no qemu-system-arm")
def test_generated_model_in_qemu_equals_reference(tiny_run, tiny_int8, test_windows, tmp_path):
    out = build_firmware("mps2_an500", tiny_int8, tmp_path / "build", kernels="cm7")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kernels"] == "cm7" and manifest["memory"]["flash"]["model_weights"] > 0
    x_q, expected = test_windows
    with QemuTarget(out, workdir=tmp_path / "qemu") as target:
        link = Link(address=target.address)
        hello = _exchange(link, x_q, expected)
        assert hello["model_hash"] == device_model_hash(manifest["model_hash"])
        marks = [ln.split() for ln in target.plugin_log.read_text().splitlines()]
        assert [m[1] for m in marks[:2]] == ["0", "1"]
        link.close()
        _raw_exchange(target.url, tiny_run, expected[:8], marks=target.plugin_log)


def _raw_exchange(url, run_dir, expected, marks=None):
    """RAW requests with the raw test windows (int16 counts and float): the device's
    own input pipeline gives the answers of the host pipeline."""
    from ditmos.harness.client import DeviceClient
    from ditmos.harness.marks import MarkLog
    from ditmos.harness.protocol import RawKind
    from ditmos.harness.transport import SerialTransport
    from ditmos.harness.workload import raw_test_inputs

    t = SerialTransport(url, 115200)
    t.open()
    try:
        client = DeviceClient(t, timeout=10.0)
        client.hello()
        log = MarkLog(marks) if marks is not None else None
        for kind in ("i16", "float"):
            _, raw = raw_test_inputs(run_dir, kind, limit=len(expected))
            for x, (pred, route, logits) in zip(raw, expected):
                r = client.raw(RawKind[kind.upper()], np.ascontiguousarray(x).tobytes())
                assert (r.result.predicted, r.result.route) == (pred, route)
                assert list(r.result.scores) == np.asarray(logits, np.int8).ravel().tolist()
                if log is not None:
                    log.take()
                    assert log.last_prepare > 0  # marks 254/255 around the pipeline
    finally:
        t.close()


def test_generated_model_on_host_board_equals_reference(tiny_run, tiny_int8, test_windows, tmp_path):
    out = build_firmware("host", tiny_int8, tmp_path / "build")
    x_q, expected = test_windows
    with HostDevice(out, workdir=tmp_path / "dev") as dev:
        link = Link(path=dev.port)
        _exchange(link, x_q, expected)
        link.close()
        _raw_exchange(dev.url, tiny_run, expected[:8])


def test_generated_model_builds_for_the_nucleo(tiny_int8, tmp_path):
    from ditmos.boards.elf import Elf

    out = build_firmware("nucleo_f767zi", tiny_int8, tmp_path / "build", profile=True)
    elf = Elf(out / "firmware.elf")
    weights = elf.section(".weights")
    assert weights.size > 1000 and 0x08000000 <= weights.addr < 0x08200000
    assert 0x20000000 <= elf.section(".arena").addr < 0x20020000  # DTCM
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kernels"] == "cm7" and manifest["profile"] is True
    assert manifest["memory"]["flash"]["model_weights"] == weights.size
    codegen = json.loads((out / "model" / "manifest.json").read_text())  # beside it
    assert codegen["weights_bytes"] == weights.size  # counted before compiling


def test_default_pipeline_reuses_a_finished_run(tiny_run, tiny_int8, tmp_path, monkeypatch, capsys):
    """`ditmos build` without --run: with runs/default already trained and
    quantised it goes straight to code generation and the build."""
    from ditmos.cli import main

    shutil.copytree(tiny_run, tmp_path / "runs" / "default")
    monkeypatch.chdir(tmp_path)
    assert main(["build", "--board", "host", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "reusing the trained and quantised run" in captured.err
    manifest = json.loads((tmp_path / "build" / "host" / "manifest.json").read_text())
    int8 = json.loads((tiny_int8 / "manifest.json").read_text())
    assert manifest["model_hash"] == int8["model_hash"]
