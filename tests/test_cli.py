"""The top-level command: help lists the whole pipeline, errors are one line."""

import subprocess
import sys

from ditmos.cli import main

PIPELINE = ["data", "train", "quantize", "build", "flash", "emulate", "evaluate", "report", "bench"]


def test_help_lists_every_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in PIPELINE:
        assert f"  {name} " in out, name


def test_every_command_has_help(capsys):
    for name in PIPELINE:
        assert main([name, "--help"]) == 0, name
        assert "Usage:" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_user_error_is_one_line_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "ditmos", "data", "info", "no-such-dataset"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ditmos: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_shows_traceback():
    proc = subprocess.run([sys.executable, "-m", "ditmos", "--debug", "data", "info", "no-such-dataset"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
