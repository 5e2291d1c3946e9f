"""The documented ways to reach a device besides a board on a serial port:
`ditmos emulate` + `evaluate --port socket://...` (instruction marks found
through the build directory, or latency reported unavailable), and
`evaluate --emulate` on a host-board build (processes on pseudo-terminals,
latency in host wall-clock microseconds)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.harness.evaluate import Workload, read_samples, run_evaluation
from ditmos.harness.evaluate import _port_devices as port_devices
from ditmos.harness.fleet import emulated_devices

FIXTURE = Path(__file__).resolve().parents[1] / "firmware" / "fixtures" / "tiny_model"
N = 24


def _fixture_model():
    spec = importlib.util.spec_from_file_location("fixture_model", FIXTURE / "fixture_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def workload():
    fm = _fixture_model()
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(N, fm.T, fm.C), dtype=np.int8)
    ref = [fm.predict(x[i]) for i in range(N)]
    return Workload(
        inputs=x,
        labels=np.array([r[0] for r in ref]),
        ref_pred=np.array([r[0] for r in ref]),
        ref_route=np.array([r[1] for r in ref]),
        ref_scores=np.stack([r[2] for r in ref]).astype(np.int8),
        model_hash=fm.MODEL_HASH + "0" * 48,
        num_classes=fm.NUM_CLASSES,
        num_classifiers=fm.K,
    )


@pytest.fixture(scope="module")
def mps2_build(tmp_path_factory):
    from ditmos.boards.build import build_project

    return build_project("mps2_an500", FIXTURE, tmp_path_factory.mktemp("paths_mps2"), profile=True)


@pytest.fixture(scope="module")
def host_build(tmp_path_factory):
    from ditmos.boards.build import build_project

    return build_project("host", FIXTURE, tmp_path_factory.mktemp("paths_host"), profile=True)


class _Emulate:
    """`ditmos emulate` as a user runs it, in its own process."""

    def __init__(self, build: Path, workdir: Path | None = None):
        cmd = [sys.executable, "-m", "ditmos", "emulate", "--build", str(build)]
        if workdir is not None:
            cmd += ["--workdir", str(workdir)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"pyserial URL (socket://127\.0\.0\.1:\d+)", line)
        assert m, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.url = m.group(1)
        self.marks = Path(self.proc.stdout.readline().split("instruction marks:")[1].strip())

    def stop(self) -> str:
        self.proc.send_signal(subprocess.signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        return err


def test_emulate_then_evaluate_on_its_port_reads_the_instruction_counts(mps2_build, workload, tmp_path):
    emu = _Emulate(mps2_build)
    try:
        announced = mps2_build / "emulators" / f"{emu.url.rsplit(':', 1)[1]}.json"
        assert announced.is_file()
        devices = port_devices([emu.url], [], 115200, mps2_build)
        assert devices[0].marks == emu.marks.resolve()
        rep = run_evaluation(workload, devices, tmp_path / "found", timeout=10.0)
        # a QEMU started by someone else: no announcement, no --marks -> still evaluated
        bare = run_evaluation(workload, port_devices([emu.url], [], 115200, None), tmp_path / "bare", timeout=10.0)
        # the same log given explicitly
        given = run_evaluation(
            workload, port_devices([emu.url], [str(emu.marks)], 115200, None), tmp_path / "given", timeout=10.0
        )
    finally:
        err = emu.stop()
    assert "QEMU stopped" in err and not announced.exists()  # the announcement is withdrawn
    assert rep["complete"] and rep["mismatches"] == 0 and rep["score_mismatches"] == 0
    assert rep["latency"]["unit"] == "instructions" and rep["latency"]["available"]
    recs = read_samples(tmp_path / "found" / "samples.jsonl")
    assert all(r["cost"] > 100 for r in recs.values())
    assert [lay["layer"] for lay in rep["per_layer_latency"]["layers"]] == [0, 1]
    assert bare["complete"] and bare["samples"] == N and bare["mismatches"] == 0
    assert bare["latency"]["available"] is False and bare["latency"]["unit"] is None
    assert "--marks" in bare["latency"]["note"] and bare["per_layer_latency"] is None
    assert [d["cost_source"] for d in (rep["devices"] + bare["devices"] + given["devices"])] == [
        "marks",
        "unavailable",
        "marks",
    ]
    assert all(r["cost"] is None for r in read_samples(tmp_path / "bare" / "samples.jsonl").values())
    costs = {i: r["cost"] for i, r in recs.items()}
    assert {
        i: r["cost"] for i, r in read_samples(tmp_path / "given" / "samples.jsonl").items()
    } == costs  # exact and repeatable
    assert given["latency"]["median"] == rep["latency"]["median"]


def test_a_stale_announcement_is_ignored(mps2_build, tmp_path):
    import json

    from ditmos.boards.qemu import find_emulator

    d = mps2_build / "emulators"
    d.mkdir(exist_ok=True)
    proc = subprocess.Popen(["sleep", "0"])
    proc.wait()  # a pid that has ended
    (d / "4711.json").write_text(
        json.dumps({"url": "socket://127.0.0.1:4711", "port": 4711, "marks": str(tmp_path / "m.log"), "pid": proc.pid})
    )
    try:
        assert find_emulator(mps2_build, "socket://127.0.0.1:4711") is None
        assert find_emulator(mps2_build, "/dev/ttyACM0") is None
    finally:
        (d / "4711.json").unlink()


def test_marks_must_pair_with_ports(tmp_path):
    with pytest.raises(DitmosError, match="one marks log per port"):
        port_devices(["socket://127.0.0.1:1", "socket://127.0.0.1:2"], ["a"], 115200, None)
    with pytest.raises(DitmosError, match="no such file"):
        port_devices(["socket://127.0.0.1:1"], [str(tmp_path / "none.log")], 115200, None)


def test_emulate_on_a_host_build_runs_processes_with_wall_clock_latency(host_build, workload, tmp_path):
    with emulated_devices(host_build, 2, tmp_path) as devices:
        assert [d.name for d in devices] == ["host0", "host1"]
        assert all(d.url.startswith("/dev/pts/") for d in devices)
        rep = run_evaluation(workload, devices, tmp_path, timeout=5.0)
    assert rep["complete"] and rep["mismatches"] == 0 and rep["score_mismatches"] == 0
    assert all(d["measured"] > 0 and d["cost_source"] == "device" for d in rep["devices"])
    lat = rep["latency"]
    assert lat["kind"] == "nanoseconds" and lat["unit"] == "us" and lat["available"]
    assert lat["clock"] == "host wall clock" and "cycles" not in lat and "clock_hz" not in lat
    assert 0 < lat["min"] <= lat["median"] < 1e6  # microseconds, not nanoseconds or cycles
    recs = read_samples(tmp_path / "samples.jsonl")
    # profiled layers in the same unit; each sample's layers fit inside its inference
    for r in recs.values():
        assert 0 < sum(r["layer_cost"]) <= r["cost"]
    assert rep["per_layer_latency"]["unit"] == "us"


def test_emulate_refuses_a_board_it_cannot_run(tmp_path):
    import json

    (tmp_path / "manifest.json").write_text(json.dumps({"board": "nucleo_f767zi"}))
    with pytest.raises(DitmosError, match="--emulate cannot run.*--port"):
        emulated_devices(tmp_path, 1, tmp_path / "out")


def test_cost_kinds_are_never_mixed(mps2_build, host_build, workload, tmp_path):
    """Host wall-clock time and emulator instructions in one --out are refused."""
    with (
        emulated_devices(host_build, 1, tmp_path / "h") as hosts,
        emulated_devices(mps2_build, 1, tmp_path / "q") as emus,
    ):
        with pytest.raises(DitmosError, match="latencies are never mixed"):
            run_evaluation(workload, hosts + emus, tmp_path / "mixed", timeout=10.0)
