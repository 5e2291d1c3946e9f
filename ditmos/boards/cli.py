"""``ditmos build``, ``ditmos flash`` and ``ditmos emulate``."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import click

from ditmos.boards.registry import board_names
from ditmos.errors import DitmosError

DEFAULT_DATASET = "hapt"
DEFAULT_PRESET = "quick"
DEFAULT_RUN_DIR = Path("runs") / "default"


def _default_out(board: str) -> Path:
    return Path("build") / board


def _pipeline(board: str, quiet: bool) -> Path:
    """Train the quick preset on the default dataset and quantise it; returns
    the int8 directory."""
    from ditmos.quantize import quantize_run
    from ditmos.training import train_run

    run_dir = DEFAULT_RUN_DIR
    if (run_dir / "metrics.json").is_file() and (run_dir / "int8" / "manifest.json").is_file():
        click.echo(f"[1-2/3] reusing the trained and quantised run {run_dir} (delete it to train again)", err=True)
        int8 = run_dir / "int8"
    else:
        click.echo(f"[1/3] training the '{DEFAULT_PRESET}' preset on '{DEFAULT_DATASET}' into {run_dir}", err=True)
        train_run(DEFAULT_DATASET, DEFAULT_PRESET, run_dir, resume=(run_dir / "config.json").is_file(), quiet=quiet)
        click.echo(f"[2/3] quantising {run_dir} to int8", err=True)
        int8 = quantize_run(run_dir, quiet=quiet)
    click.echo(f"[3/3] generating C and building for {board}", err=True)
    return Path(int8)


def _int8_dir(run_dir: Path, method: str = "ditmos") -> Path:
    from ditmos.methods import method_run_dir

    if (run_dir / "manifest.json").is_file() and (
        (run_dir / "selector.tflite").is_file() or (run_dir / "network.tflite").is_file()
    ):
        if method != "ditmos":
            raise DitmosError("--method needs a run directory (RUN with compare/), not an int8 directory")
        return run_dir  # an int8 directory given directly
    run_dir = method_run_dir(run_dir, method)
    int8 = run_dir / "int8"
    if not (int8 / "manifest.json").is_file():
        raise DitmosError(f"{run_dir} has no int8/manifest.json; run `ditmos quantize {run_dir}` first")
    return int8


@click.command(
    "build",
    epilog="""\b
Example (the most accurate compared method within 50 ms and 256 KB of flash):
  ditmos build --board mps2_an500 --run runs/hapt --pick best --max-latency-ms 50 --max-flash 262144 --out build/pick
""",
)
@click.option(
    "--board",
    type=click.Choice(board_names()),
    default="nucleo_f767zi",
    show_default=True,
    help="Target board (facts in ditmos/boards/boards.json).",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A quantised run (RUN_DIR with int8/). Without it: train the quick preset on hapt, quantise, then build.",
)
@click.option(
    "--method",
    default="ditmos",
    show_default=True,
    help="With --run: which method of RUN's comparison to build (ditmos, an "
    "ablation_<name>, weak_equal_macs, equal_params, early_exit); quantise "
    "it first with `ditmos quantize RUN --method NAME`.",
)
@click.option(
    "--pick",
    type=click.Choice(["best"]),
    help="With --run: build every deployable method of RUN's comparison (quantised "
    "ones) into a temporary folder and deploy the most accurate on the "
    "validation split that fits every --max-* limit; prints each candidate "
    "with its accuracy, latency, flash, RAM and why it was rejected.",
)
@click.option(
    "--max-latency-ms",
    type=click.FloatRange(min=0, min_open=True),
    help="With --pick: latency limit in ms (a measured --eval median, else MACs x "
    "the board's instructions per MAC (boards.json) / its clock).",
)
@click.option("--max-flash", type=click.IntRange(min=1), help="With --pick: flash limit in bytes.")
@click.option("--max-ram", type=click.IntRange(min=1), help="With --pick: RAM limit in bytes.")
@click.option(
    "--eval",
    "eval_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="With --pick (repeatable): `ditmos evaluate` output directories; a method "
    "evaluated on this board takes its measured median latency from there.",
)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Build directory [default: build/BOARD]."
)
@click.option(
    "--kernels", type=click.Choice(["ref", "cm7"]), help="Kernel set [default: cm7 on Arm boards, ref on the host]."
)
@click.option(
    "--strategy",
    type=click.Choice(["slicing", "greedy", "none"]),
    default="slicing",
    show_default=True,
    help="Activation memory strategy.",
)
@click.option("--profile", is_flag=True, help="Per-layer cycle/instruction profiling.")
@click.option("--baud", type=click.IntRange(min=1200), help="UART baud rate [board default].")
@click.option("--show-plan", is_flag=True, help="Print the activation memory plan and each layer's kernel variant.")
@click.option(
    "--stack-size",
    type=int,
    default=None,
    help="Stack reservation in bytes (Arm boards) [board default, see boards.json stack_note].",
)
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build an existing C model directory (model.h, model.c, weights.c "
    "and its codegen manifest.json) instead of generating one.",
)
@click.option("--quiet", is_flag=True, help="Less progress output.")
def build(
    board,
    run_dir,
    method,
    pick,
    max_latency_ms,
    max_flash,
    max_ram,
    eval_dirs,
    out_dir,
    kernels,
    strategy,
    profile,
    baud,
    show_plan,
    stack_size,
    model_dir,
    quiet,
):
    """Generate C for a run and compile the firmware for a board.

    Writes BUILD_DIR/firmware.elf, firmware.bin, manifest.json and a
    self-contained project (src/, include/, Makefile, platformio.ini), and
    prints the flash/RAM table.
    """
    from ditmos.boards.build import build_firmware, build_project, format_memory_table

    out = out_dir or _default_out(board)
    limits = [
        n
        for n, v in (("--max-latency-ms", max_latency_ms), ("--max-flash", max_flash), ("--max-ram", max_ram))
        if v is not None
    ] + (["--eval"] if eval_dirs else [])
    if pick is not None:
        source = click.get_current_context().get_parameter_source("method")
        if source != click.core.ParameterSource.DEFAULT:
            raise DitmosError("give either --pick or --method, not both (--pick chooses the method)")
        if run_dir is None or model_dir is not None:
            raise DitmosError("--pick needs --run RUN (a run with a comparison) and no --model-dir")
        from ditmos.boards.pick import NoFit, format_candidates, pick_best

        try:
            cands, best = pick_best(
                board,
                run_dir,
                max_latency_ms=max_latency_ms,
                max_flash=max_flash,
                max_ram=max_ram,
                eval_dirs=eval_dirs,
                kernels=kernels,
                strategy=strategy,
                stack_size=stack_size,
                echo=(lambda s: None) if quiet else (lambda s: click.echo(s, err=True)),
            )
        except NoFit as err:
            click.echo(format_candidates(err.candidates, None))
            raise
        click.echo(format_candidates(cands, best))
        click.echo(f"picked {best.method}; building it into {out}", err=True)
        method = best.method
    elif limits:
        raise DitmosError(f"{', '.join(limits)}: only with --pick best")
    if model_dir is not None:
        if run_dir is not None:
            raise DitmosError("give either --run or --model-dir, not both")
        result = build_project(
            board, model_dir, out, kernels=kernels, profile=profile, baud=baud, stack_size=stack_size
        )
    else:
        if method != "ditmos" and run_dir is None:
            raise DitmosError("--method needs --run RUN (a run with a comparison)")
        int8 = _int8_dir(run_dir, method) if run_dir is not None else _pipeline(board, quiet)
        result = build_firmware(
            board, int8, out, kernels=kernels, profile=profile, strategy=strategy, baud=baud, stack_size=stack_size
        )
    manifest = json.loads((result / "manifest.json").read_text())
    if show_plan:
        cg = json.loads(((model_dir or result / "model") / "manifest.json").read_text())
        table = cg.get("memory", {}).get("table")
        click.echo(table if table else "no memory plan (the model was not generated by ditmos)")
        rows = cg.get("variants")
        if rows:
            from ditmos.codegen.variants import format_variants

            click.echo(format_variants(rows))
    click.echo(format_memory_table(board, manifest["memory"]))
    click.echo(f"firmware: {result / 'firmware.elf'}  (model {manifest['model_hash']})")
    if board == "nucleo_f767zi":
        click.echo(
            f"next: `ditmos flash --build {result}`, then `ditmos selftest --port /dev/ttyACM0 --build {result}`",
            err=True,
        )


@click.command("flash")
@click.option("--board", type=click.Choice(["nucleo_f767zi"]), default="nucleo_f767zi", show_default=True)
@click.option(
    "--build",
    "build_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build directory [default: build/BOARD].",
)
@click.option(
    "--tool",
    type=click.Choice(["auto", "platformio", "openocd", "st-flash"]),
    default="auto",
    show_default=True,
    help="Programmer. auto: PlatformIO's OpenOCD (installed on first use), else the system's openocd, else st-flash.",
)
def flash(board, build_dir, tool):
    """Program BUILD_DIR/firmware.elf, the image `ditmos build` measured.

    Checks its sha256 against manifest.json first and refuses a changed file;
    nothing is rebuilt.  OpenOCD writes, verifies and resets the board.
    """
    from ditmos.boards.flash import flash_firmware
    from ditmos.boards.registry import get_board

    build_dir = build_dir or _default_out(board)
    manifest = _read_build(build_dir, board)
    used = flash_firmware(get_board(board), build_dir, manifest, tool=tool, echo=lambda msg: click.echo(msg, err=True))
    click.echo(
        f"flashed {build_dir / 'firmware.elf'} (model {manifest['model_hash']}, "
        f"sha256 {manifest['elf_sha256'][:16]}...) with {used}; check it with "
        f"`ditmos selftest --port PORT --build {build_dir}`"
    )


@click.command("selftest")
@click.option("--port", required=True, help="Serial port of the board (e.g. /dev/ttyACM0) or a pyserial URL.")
@click.option(
    "--build",
    "build_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build directory of the flashed firmware [default: build/nucleo_f767zi].",
)
@click.option("--baud", type=click.IntRange(min=1200), help="Baud rate [the build's].")
@click.option(
    "--seconds",
    type=click.FloatRange(0.2, 60),
    default=2.0,
    show_default=True,
    help="Length of the timing check (cycle counter against the host clock).",
)
@click.option(
    "--timeout", type=click.FloatRange(0.1, 60), default=2.0, show_default=True, help="Seconds to wait for each answer."
)
def selftest(port, build_dir, baud, seconds, timeout):
    """Check an attached board in one command: HELLO, clock bring-up, known
    inputs with known answers (computed at build time), stack, and the cycle
    counter against the host's clock (within 5 %).

    Prints PASS/FAIL/SKIP per check and what to fix; exits 1 if any check failed.
    """
    from ditmos.boards.selftest import selftest as run

    build_dir = build_dir or _default_out("nucleo_f767zi")
    if not (build_dir / "manifest.json").is_file():
        raise DitmosError(
            f"{build_dir} has no manifest.json; give the build directory of the firmware on the board (`--build`)"
        )
    click.echo(f"selftest of {port} against {build_dir}")
    checks = run(port, build_dir, baudrate=baud, seconds=seconds, timeout=timeout, echo=click.echo)
    failed = [c.name for c in checks if c.verdict == "FAIL"]
    passed = sum(c.verdict == "PASS" for c in checks)
    click.echo(f"selftest: {passed} passed, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""))
    if failed:
        raise click.exceptions.Exit(1)


@click.command(
    "emulate",
    epilog="""\b
Example (in a second terminal, evaluate on the running emulator):
  ditmos emulate --board mps2_an500 --build build/mps2
  ditmos evaluate --run runs/hapt --build build/mps2 --port socket://127.0.0.1:PORT --out eval/mps2
""",
)
@click.option("--board", type=click.Choice(["mps2_an500"]), default="mps2_an500", show_default=True)
@click.option(
    "--build",
    "build_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build directory [default: build/BOARD].",
)
@click.option("--port", type=click.IntRange(1, 65535), help="TCP port [default: a free one].")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the plugin log (marks.log) and qemu.log here [default: a temporary directory, removed when QEMU stops].",
)
def emulate(board, build_dir, port, workdir):
    """Run a built firmware in QEMU with its serial port on 127.0.0.1:PORT.

    Stops QEMU on Ctrl-C (or SIGTERM).  The emulator counts retired
    instructions into WORKDIR/marks.log and announces itself in
    BUILD_DIR/emulators/PORT.json while it runs, so `ditmos evaluate --port
    socket://127.0.0.1:PORT --build BUILD_DIR` reads the instruction counts
    without further options (`--marks` points at the log otherwise).
    """
    from ditmos.boards.qemu import QemuTarget, announce, withdraw

    build_dir = build_dir or _default_out(board)
    _read_build(build_dir, board)
    target = QemuTarget(build_dir, workdir=workdir, port=port)
    stop = {"now": False}

    def _on_signal(signum, frame):
        stop["now"] = True

    # Ctrl-C and SIGTERM only set a flag: a KeyboardInterrupt raised at an arbitrary
    # point (inside subprocess bookkeeping) could leave QEMU unreaped
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        target.start()
        announce(target)
        click.echo(f"serial: tcp 127.0.0.1:{target.port}  (pyserial URL {target.url})")
        click.echo(f"instruction marks: {target.plugin_log}")
        click.echo(
            f"evaluate with: ditmos evaluate --run RUN_DIR --build {build_dir} --port {target.url} --out EVAL_DIR",
            err=True,
        )
        click.echo("press Ctrl-C to stop", err=True)
        while not stop["now"] and target.running():
            time.sleep(0.2)
        if not target.running() and not stop["now"]:
            code = target.proc.returncode if target.proc else None
            click.echo(f"the emulated firmware exited (QEMU exit code {code})", err=True)
    finally:
        withdraw(target)
        target.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    click.echo("QEMU stopped", err=True)


def _read_build(build_dir: Path, board: str) -> dict:
    path = build_dir / "manifest.json"
    if not path.is_file():
        raise DitmosError(
            f"{build_dir} has no manifest.json; run `ditmos build --board {board} --out {build_dir}` first"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("board") != board:
        raise DitmosError(f"{build_dir} holds a firmware for {manifest.get('board')}, not {board}")
    return manifest


__all__ = ["build", "flash", "selftest", "emulate"]
