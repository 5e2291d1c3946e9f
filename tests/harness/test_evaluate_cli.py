"""`ditmos evaluate` on real artefacts (the shared tiny hapt run, quantised) with the
host-board firmware as the device: the whole path from RUN_DIR/BUILD_DIR to report.json."""

import json

import pytest

from ditmos.cli import main


def test_evaluate_cli_on_the_host_board_then_resume(tiny_run, host_model_build, tmp_path, capsys):
    from ditmos.boards.host import HostDevice
    from ditmos.quantize.reference import ComposedReference
    from ditmos.training.rundir import load_run_data

    out = tmp_path / "eval"
    with HostDevice(host_model_build) as dev:
        args = [
            "evaluate",
            "--run",
            str(tiny_run),
            "--build",
            str(host_model_build),
            "--out",
            str(out),
            "--port",
            dev.url,
            "--quiet",
        ]
        assert main(args + ["--limit", "25"]) == 0
        first = json.loads((out / "report.json").read_text())
        assert first["samples"] == 25 and first["mismatches"] == 0
        assert main(args) == 2  # samples already there: refuses without --resume
        assert "--resume" in capsys.readouterr().err
        assert main(args + ["--resume", "--limit", "60"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["complete"] and rep["samples"] == 60
    assert rep["devices"][0]["stats"]["inferences"] == 60  # 25 + 35: nothing measured twice
    assert rep["mismatches"] == 0 and rep["score_mismatches"] == 0
    # the answers are the host TFLM reference's, computed independently here
    data = load_run_data(tiny_run)
    ref = ComposedReference(tiny_run / "int8")
    pred, route, _ = ref.predict(ref.quantize_input(data.x_test[:60]))
    lines = [json.loads(s) for s in (out / "samples.jsonl").read_text().splitlines()]
    by_index = {r["index"]: r for r in lines}
    assert [by_index[i]["predicted"] for i in range(60)] == pred.tolist()
    assert [by_index[i]["route"] for i in range(60)] == route.tolist()
    assert rep["accuracy"] == pytest.approx(float((pred == data.y_test[:60]).mean()))
    assert rep["accuracy_float"] == json.loads((tiny_run / "metrics.json").read_text())["test"]["float"]["ditmos"]


def test_a_build_for_another_model_is_refused_before_talking(tiny_run, tmp_path, capsys):
    build = tmp_path / "build"
    build.mkdir()
    (build / "manifest.json").write_text(json.dumps({"board": "host", "model_hash": "0" * 64, "protocol_version": 1}))
    rc = main(
        ["evaluate", "--run", str(tiny_run), "--build", str(build), "--out", str(tmp_path / "e"), "--port", "/dev/null"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "was built for model " + "0" * 64 in err and "ditmos build --run" in err


def test_port_or_emulate_is_required(tmp_path, capsys):
    args = ["evaluate", "--run", str(tmp_path), "--build", str(tmp_path), "--out", str(tmp_path)]
    assert main(args) == 2
    assert main(args + ["--port", "/dev/null", "--emulate"]) == 2
    assert capsys.readouterr().err.count("give either --port (one or more) or --emulate") == 2


def test_ctrl_c_leaves_a_valid_partial_result(tiny_run, host_model_build, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from ditmos.boards.host import HostDevice
    from ditmos.harness.faults import FaultPlan, FaultProxy

    out = tmp_path / "eval"
    samples = out / "samples.jsonl"
    slow = FaultPlan(stall_rate=1.0, stall_seconds=0.2)  # every relayed chunk held 200 ms
    with HostDevice(host_model_build) as dev, FaultProxy(dev.url, slow) as proxy:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ditmos",
                "evaluate",
                "--run",
                str(tiny_run),
                "--build",
                str(host_model_build),
                "--out",
                str(out),
                "--port",
                proxy.url,
                "--quiet",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if samples.exists() and len(samples.read_text().splitlines()) >= 20:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    rep = json.loads((out / "report.json").read_text())
    lines = samples.read_text().splitlines()
    assert not rep["complete"] and rep["samples"] == len(lines) >= 20
    assert sorted(json.loads(s)["index"] for s in lines) == sorted({json.loads(s)["index"] for s in lines})
    assert rep["mismatches"] == 0


def test_two_ports_split_the_samples_and_merge(tiny_run, host_model_build, tmp_path):
    from ditmos.boards.host import HostDevice

    out = tmp_path / "eval"
    with HostDevice(host_model_build) as a, HostDevice(host_model_build) as b:
        assert (
            main(
                [
                    "evaluate",
                    "--run",
                    str(tiny_run),
                    "--build",
                    str(host_model_build),
                    "--out",
                    str(out),
                    "--port",
                    a.url,
                    "--port",
                    b.url,
                    "--limit",
                    "80",
                    "--quiet",
                ]
            )
            == 0
        )
    rep = json.loads((out / "report.json").read_text())
    assert rep["complete"] and rep["samples"] == 80 and rep["mismatches"] == 0
    measured = [d["measured"] for d in rep["devices"]]
    assert len(measured) == 2 and sum(measured) == 80
    assert [d["stats"]["inferences"] for d in rep["devices"]] == measured


def test_evaluate_raw_on_the_host_board(tiny_run, host_model_build, tmp_path, capsys):
    """--raw: the device gets hapt's int16 counts (and float windows), prepares them
    itself, and every answer equals the host pipeline's; the pipeline's own cost is
    reported beside the inference's."""
    from ditmos.harness.workload import raw_test_inputs

    kind, counts = raw_test_inputs(tiny_run, limit=30)
    assert kind == "i16" and counts.dtype == "int16" and counts.shape[0] == 30
    for raw in ("i16", "float"):
        out = tmp_path / raw
        assert (
            main(
                [
                    "evaluate",
                    "--run",
                    str(tiny_run),
                    "--build",
                    str(host_model_build),
                    "--out",
                    str(out),
                    "--emulate",
                    "--raw",
                    raw,
                    "--limit",
                    "30",
                    "--quiet",
                ]
            )
            == 0
        )
        rep = json.loads((out / "report.json").read_text())
        assert rep["samples"] == 30 and rep["mismatches"] == 0 and rep["score_mismatches"] == 0
        assert rep["devices"][0]["stats"]["inferences"] == 30
        pipe = rep["input_pipeline"]
        assert pipe["raw"] == raw and pipe["available"] and pipe["median"] > 0
        assert f"input pipeline on the device (raw {raw}" in capsys.readouterr().out
    # a resumed run keeps its kind of input
    rc = main(
        [
            "evaluate",
            "--run",
            str(tiny_run),
            "--build",
            str(host_model_build),
            "--out",
            str(tmp_path / "float"),
            "--emulate",
            "--resume",
            "--limit",
            "30",
        ]
    )
    assert rc == 2 and "--resume needs the same --raw" in capsys.readouterr().err
    rc = main(
        [
            "evaluate",
            "--run",
            str(tiny_run),
            "--build",
            str(host_model_build),
            "--out",
            str(tmp_path / "x"),
            "--emulate",
            "--raw",
            "audio",
        ]
    )
    assert rc == 2 and "has no on-device front end" in capsys.readouterr().err
