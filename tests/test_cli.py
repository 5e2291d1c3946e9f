"""The top-level command: help lists the whole pipeline, errors are one line."""

import subprocess
import sys

from ditmos.cli import main

PIPELINE = ["data", "train", "quantize", "certify", "build", "flash", "emulate", "evaluate", "report", "bench"]


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
    proc = subprocess.run(
        [sys.executable, "-m", "ditmos", "data", "info", "no-such-dataset"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ditmos: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_shows_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "ditmos", "--debug", "data", "info", "no-such-dataset"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


# An unexpected exception (a bug, not bad input) inside a command: the CLI must
# still print one line, exit 1, and show the traceback only with --debug.
_CRASHING_CLI = """
import sys, click
from ditmos import cli

@click.command("crash")
def crash():
    {body}

cli._COMMANDS.append(("crash", "__main__", "crash"))
cli._SHORT_HELP["crash"] = "test only"
sys.exit(cli.main(sys.argv[1:]))
"""


def _run_crashing(body: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _CRASHING_CLI.format(body=body), *args], capture_output=True, text=True, timeout=120
    )


def test_unexpected_error_is_one_line_naming_the_command_and_debug():
    proc = _run_crashing("{}['missing']", "crash")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = lines[0]
    assert line.startswith("ditmos: internal error: `ditmos crash` failed (KeyError: 'missing')")
    assert "--debug" in line and "report" in line


def test_unexpected_os_error_is_one_line_with_the_file():
    proc = _run_crashing("open('/nonexistent-dir/x.json', 'w')", "crash")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(
        "ditmos: error: `ditmos crash` failed: No such file or directory (/nonexistent-dir/x.json)"
    )


def test_unexpected_error_with_debug_shows_traceback():
    proc = _run_crashing("{}['missing']", "--debug", "crash")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "KeyError: 'missing'" in proc.stderr


def test_exit_code_raised_by_a_command_is_returned():
    proc = _run_crashing("raise click.exceptions.Exit(3)", "crash")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == ""


def test_background_thread_error_is_one_line():
    body = "import threading; t = threading.Thread(target=lambda: 1 / 0, name='worker'); t.start(); t.join()"
    proc = _run_crashing(body, "crash")
    assert proc.returncode == 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(
        "ditmos: internal error: a background thread (worker) of "
        "`ditmos crash` failed (ZeroDivisionError: division by zero)"
    )
    debug = _run_crashing(body, "--debug", "crash")
    assert "Traceback" in debug.stderr
