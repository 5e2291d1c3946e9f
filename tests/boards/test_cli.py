"""`ditmos build` and `ditmos emulate` from the command line (flash: test_flash.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from ditmos.cli import main
from firmware.frames import HELLO, Link, parse_hello


def test_build_from_a_model_dir_prints_the_memory_table(fixture_model_dir, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["build", "--board", "mps2_an500", "--model-dir", str(fixture_model_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for row in ("model weights", "arena", "stack", "code", "FLASH (of 4194304 B)"):
        assert row in text
    manifest = json.loads((out / "manifest.json").read_text())
    weights = re.search(r"model weights\s+(\d+)", text).group(1)
    assert int(weights) == manifest["memory"]["flash"]["model_weights"] >= 280
    for f in (
        "firmware.elf",
        "firmware.bin",
        "Makefile",
        "linker.ld",
        "src/model/model.c",
        "src/runtime/ditmos_main.c",
        "include/ditmos_protocol.h",
    ):
        assert (out / f).is_file(), f
    # The rendered project rebuilds on its own with make.
    subprocess.run(["make", "-C", str(out), "clean"], check=True, capture_output=True)
    proc = subprocess.run(["make", "-C", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "firmware.elf").is_file()


def test_build_with_a_run_without_int8_is_a_one_line_error(tmp_path, capsys):
    assert main(["build", "--board", "host", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "int8/manifest.json" in err and "ditmos quantize" in err


def test_emulate_refuses_a_missing_build(tmp_path, capsys):
    assert main(["emulate", "--build", str(tmp_path)]) == 2
    assert "ditmos build --board mps2_an500" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="no qemu-system-arm")
def test_emulate_serves_frames_and_stops_on_ctrl_c(mps2_build, tmp_path):
    # the context manager closes the pipes, so no file is left for the collector
    with subprocess.Popen(
        [sys.executable, "-m", "ditmos", "emulate", "--build", str(mps2_build), "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            line = proc.stdout.readline()
            m = re.search(r"tcp 127\.0\.0\.1:(\d+)", line)
            assert m, line + proc.stderr.read()
            port = int(m.group(1))
            link = Link(address=("127.0.0.1", port))
            assert parse_hello(link.request(HELLO, 1).payload)["board"] == "mps2_an500"
            link.close()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0 and "QEMU stopped" in err, err
            time.sleep(0.2)
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert os.path.exists(tmp_path / "marks.log")


def test_build_stack_size_is_configurable(fixture_model_dir, tmp_path, capsys):
    out = tmp_path / "s"
    assert (
        main(
            [
                "build",
                "--board",
                "mps2_an500",
                "--model-dir",
                str(fixture_model_dir),
                "--out",
                str(out),
                "--stack-size",
                "2048",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["memory"]["ram"]["stack"] == 2048
    capsys.readouterr()
    assert (
        main(
            [
                "build",
                "--board",
                "mps2_an500",
                "--model-dir",
                str(fixture_model_dir),
                "--out",
                str(tmp_path / "t"),
                "--stack-size",
                "1001",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "multiple of 8" in err


def test_nucleo_stack_reservation_is_sized_from_the_measured_high_water():
    from ditmos.boards.registry import get_board

    b = get_board("nucleo_f767zi")
    note = b.extra["stack_note"]
    high_water = int(re.search(r"high-water (\d+) B", note).group(1))
    worst = int(re.search(r"worst case (\d+) B", note).group(1))
    margin = float(re.search(r"margin x([\d.]+)", note).group(1))
    assert worst >= high_water
    assert b.stack_size >= margin * worst and b.stack_size % 8 == 0
    assert b.stack_size < 8192  # no longer an arbitrary 16x reservation
