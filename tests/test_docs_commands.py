"""Every `ditmos` command line the documentation shows is run, so a documented
path cannot break silently.

Where the lines come from: the fenced shell blocks of README.md (in order, they
are the walk-throughs), then the code spans starting with ``ditmos`` in the
README's tables (the pipeline table; a name in running text is a reference,
not a command line), then the examples in ``ditmos --help`` and in
every command's and sub-command's ``--help``.  Lines containing ``...`` are
shapes, not command lines, and are left out; each distinct line runs once.

How they run, on a tiny run instead of the real presets:

* commands that train (``ditmos train``, ``ditmos bench train``) get
  ``--config TINY.json`` appended, the tiny run's configuration (the presets
  take minutes); ``runs/default``, where the argument-less ``ditmos build``
  trains, already holds the tiny run, so that command takes its documented
  "reusing" path; a ``--compare`` line also gets ``--ablations none`` and
  ``--baselines weak_equal_macs,early_exit`` (the baselines later lines deploy;
  ablation rows and the other baselines are trained by the comparison tests in
  ``tests/training``) and ``--widths 1``, the run's own width (DiTMoS at other
  widths: the same tests);
* a ``--samples N`` above 10 (test windows for attacks and certificates) is
  lowered to 10: the line's every option still runs, on fewer windows;
* ``ditmos emulate`` stays running in the background until the end, and
  ``PORT`` in later lines is the port it printed;
* lines that need a board (``ditmos flash``, ``--port /dev/tty...``) must fail
  with exit code 2 and a one-line ``ditmos: error: ...`` when there is none.
Everything else must exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from ditmos.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TRAINING = (("train",), ("bench", "train"))
DOCS_SUBSET = 200


# ------------------------------------------------------------------ extraction


def _ditmos_part(text: str) -> str | None:
    """The ``ditmos ...`` command in a shell line (after ``&&``, without a comment
    or a ``.venv/bin/`` prefix), or None."""
    for seg in text.split("&&"):
        seg = seg.split(" #")[0].strip()
        seg = re.sub(r"^\S*/(?=ditmos\b)", "", seg)
        if seg.startswith("ditmos ") and "..." not in seg:
            return " ".join(seg.split())
    return None


def readme_commands(text: str) -> list[str]:
    blocks = re.findall(r"^```(?:sh|bash|console)?\n(.*?)^```", text, re.M | re.S)
    lines = [ln for b in blocks for ln in b.splitlines()]
    without_blocks = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    rows = [ln for ln in without_blocks.splitlines() if ln.startswith("|")]
    spans = [s for row in rows for s in re.findall(r"`(ditmos [^`]+)`", row)]
    return [c for c in map(_ditmos_part, lines + spans) if c]


def _help_texts() -> list[str]:
    """``--help`` of the top-level command, every command and sub-command."""
    out = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        ctx = click.Context(cmd, info_name=" ".join(["ditmos", *path]))
        out.append(cmd.get_help(ctx))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])

    walk(cli, [])
    return out


def help_commands() -> list[str]:
    lines = [ln for text in _help_texts() for ln in text.splitlines()]
    return [c for c in map(_ditmos_part, lines) if c]


def documented_commands() -> list[str]:
    seen, out = set(), []
    for c in readme_commands(README.read_text()) + help_commands():
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def _resolve(argv: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """(command, its arguments, its name path) for ``ditmos`` arguments."""
    cmd, path, args = cli, [], list(argv)
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        ctx = click.Context(cmd, info_name="ditmos")
        sub = cmd.get_command(ctx, args[0])
        if sub is None:
            raise AssertionError(f"no command {' '.join(path + args[:1])}")
        cmd, path, args = sub, [*path, args[0]], args[1:]
    return cmd, args, path


def _needs_board(argv: list[str], path: list[str]) -> bool:
    ports = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--port"]
    return path == ["flash"] or any(p.startswith("/dev/") and not os.path.exists(p) for p in ports)


def test_the_documented_command_lines_are_found_and_parse():
    cmds = documented_commands()
    names = {tuple(_resolve(shlex.split(c)[1:])[2][:1]) for c in cmds}
    for stage in ("data", "train", "quantize", "build", "flash", "emulate", "evaluate", "report", "bench"):
        assert (stage,) in names, stage
    # the two ways onto an emulator and the host board are shown
    assert any("--port socket://127.0.0.1:PORT" in c for c in cmds)
    assert any("--build build/host --emulate" in c for c in cmds)
    for c in cmds:  # every option exists and every value is accepted (as far as click knows)
        cmd, args, path = _resolve(shlex.split(c)[1:])
        args = [a.replace("PORT", "1") for a in args]
        try:
            cmd.make_context(" ".join(["ditmos", *path]), args)
        except click.BadParameter as err:  # paths the pipeline creates are absent here
            assert "does not exist" in str(err), (c, err)


def test_extraction_rules():
    text = (
        "```sh\nbash x.sh && .venv/bin/ditmos build --board host   # note\n"
        "ditmos train ... --compare\n```\n| a | `ditmos data list`, `ditmos --debug ...` |\n"
        "see `ditmos emulate` in the text\n"
    )
    assert readme_commands(text) == ["ditmos build --board host", "ditmos data list"]


# ------------------------------------------------------------------ running


def _docs_config(cfg: dict) -> dict:
    """The tiny run's configuration, smaller still: 200 training windows (100
    test samples to evaluate) and one epoch per stage, the comparison's
    baselines included (`--compare` trains a dozen models with it); every stage
    still runs."""
    cfg = dict(cfg, subset=DOCS_SUBSET)
    for stage in ("strong", "classifier_pretrain", "selector_pretrain"):
        cfg[stage] = dict(cfg[stage], epochs=1)
    cfg["adversarial"] = dict(cfg["adversarial"], rounds=1, selector_epochs=1, classifier_epochs=1)
    cfg["split"] = dict(cfg["split"], n_init=1)
    cfg["generalist"] = dict(cfg["generalist"], epochs=1)
    cfg["baselines"] = {"epochs": 1, "depths": [2]}
    return cfg


def _run(argv: list[str], cwd: Path, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ditmos", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


class _Emulators:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.url: str | None = None

    def start(self, argv: list[str], cwd: Path, env: dict) -> str | None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ditmos", *argv],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        first = proc.stdout.readline()
        m = re.search(r"pyserial URL (socket://\S+?)\)", first)
        if m is None:
            proc.kill()
            return f"did not print its serial port: {first!r} {proc.stderr.read()[-400:]}"
        self.url = m.group(1)
        return None

    def stop_all(self) -> list[str]:
        problems = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode != 0 or "QEMU stopped" not in err:
                problems.append(f"`ditmos emulate` ended with {proc.returncode}: {err[-300:]}")
        return problems


@pytest.mark.slow
def test_every_documented_command_line_runs(tiny_run, tiny_int8, tmp_path):
    from ditmos.training.testing import tiny_config

    work = tmp_path / "work"
    shutil.copytree(tiny_run, work / "runs" / "default")
    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps(_docs_config(tiny_config("hapt"))))
    env = {k: v for k, v in os.environ.items() if k != "DITMOS_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    emulators = _Emulators()
    failures: list[str] = []
    ran: list[str] = []
    seconds: dict[str, float] = {}
    try:
        for line in documented_commands():
            argv = shlex.split(line)[1:]
            _, _, path = _resolve(argv)
            if tuple(path) in TRAINING:
                argv += ["--config", str(tiny)]
                if "--compare" in argv and "--ablations" not in argv:
                    argv += ["--ablations", "none"]  # ablation rows: tests/training
                if "--compare" in argv and "--baselines" not in argv:
                    # the baselines later lines deploy; the others: tests/training
                    argv += ["--baselines", "weak_equal_macs,early_exit"]
                if "--compare" in argv:
                    argv += ["--widths", "1"]  # the last value given wins
            for i, a in enumerate(argv[:-1]):
                if a == "--samples" and argv[i + 1].isdigit() and int(argv[i + 1]) > 10:
                    argv[i + 1] = "10"
            if path == ["emulate"]:
                problem = emulators.start(argv, work, env)
                if problem:
                    failures.append(f"{line}: {problem}")
                ran.append(line)
                continue
            if any("PORT" in a for a in argv):
                if emulators.url is None:
                    failures.append(f"{line}: no `ditmos emulate` line before it")
                    continue
                argv = [a.replace("socket://127.0.0.1:PORT", emulators.url) for a in argv]
            t0 = time.monotonic()
            try:
                proc = _run(argv, work, env)
            except subprocess.TimeoutExpired as err:
                failures.append(f"{line}: still running after {err.timeout:.0f} s")
                continue
            finally:
                seconds[line] = time.monotonic() - t0
                ran.append(line)
            err_lines = proc.stderr.strip().splitlines()
            if _needs_board(argv, path):
                if proc.returncode != 2 or not err_lines or not err_lines[-1].startswith("ditmos: error:"):
                    failures.append(
                        f"{line}: without a board it must fail with a one-line "
                        f"error, got exit {proc.returncode}: {proc.stderr[-400:]}"
                    )
            elif proc.returncode != 0:
                failures.append(f"{line}: exit {proc.returncode}: {proc.stderr[-600:]}")
    finally:
        failures += emulators.stop_all()
    for line, sec in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"{sec:7.1f} s  {line}")  # shown with -s or on failure
    assert not failures, "\n".join(failures)
    assert len(ran) >= 20, ran
    # what the two evaluation paths promise
    emu = json.loads((work / "eval" / "emu" / "report.json").read_text())
    assert emu["complete"] and emu["mismatches"] == 0
    assert emu["latency"]["unit"] == "instructions" and emu["latency"]["available"]
    host = json.loads((work / "eval" / "host" / "report.json").read_text())
    assert host["complete"] and host["mismatches"] == 0
    assert host["latency"]["unit"] == "us" and host["latency"]["clock"] == "host wall clock"
    assert [d["url"] for d in host["devices"]] == ["host0", "host1"]
