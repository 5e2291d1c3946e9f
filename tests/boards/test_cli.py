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
    assert main(["build", "--board", "mps2_an500", "--model-dir", str(fixture_model_dir),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for row in ("model weights", "arena", "stack", "code", "FLASH (of 4194304 B)"):
        assert row in text
    manifest = json.loads((out / "manifest.json").read_text())
    weights = re.search(r"model weights\s+(\d+)", text).group(1)
    assert int(weights) == manifest["memory"]["flash"]["model_weights"] >= 280
    for f in ("firmware.elf", "firmware.bin", "Makefile", "linker.ld", "src/model/model.c",
              "src/runtime/ditmos_main.c", "include/ditmos_protocol.h"):
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
    proc = subprocess.Popen([sys.executable, "-m", "ditmos", "emulate", "--build",
                             str(mps2_build), "--workdir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"tcp 127\.0\.0\.1:(\d+)", line)
        assert m, line + proc.stderr.read()
        port = int(m.group(1))
        link = Link(address=("127.0.0.1", port))
        assert parse_hello(link.request(HELLO, 1).payload)["board"] == "mps2_an500"
        link.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert "QEMU stopped" in proc.stderr.read()
        time.sleep(0.2)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert os.path.exists(tmp_path / "marks.log")
