"""``ditmos build``, ``ditmos flash`` and ``ditmos emulate``."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
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


def _link_latest(out: Path) -> None:
    """Point ./build/latest at the last Nucleo build (read by the repository's
    top-level platformio.ini) when building from a ditmos checkout."""
    if not Path("platformio.ini").is_file() or not Path("firmware").is_dir():
        return
    latest = Path("build") / "latest"
    latest.parent.mkdir(parents=True, exist_ok=True)
    if latest.is_symlink() or latest.exists():
        if not latest.is_symlink():
            return  # a real directory there belongs to the user
        latest.unlink()
    latest.symlink_to(out.resolve(), target_is_directory=True)


def _pipeline(board: str, quiet: bool) -> Path:
    """Train the quick preset on the default dataset and quantise it; returns
    the int8 directory."""
    stages = []
    try:
        from ditmos.training import train_run
    except ImportError:
        stages.append("training (ditmos.training.train_run)")
    try:
        from ditmos.quantize import quantize_run
    except ImportError:
        stages.append("quantisation (ditmos.quantize.quantize_run)")
    if stages:
        raise DitmosError(f"the default pipeline needs {' and '.join(stages)}, which this "
                          "version of ditmos lacks; pass --run RUN_DIR with a quantised run")
    run_dir = DEFAULT_RUN_DIR
    if (run_dir / "metrics.json").is_file() and (run_dir / "int8" / "manifest.json").is_file():
        click.echo(f"[1-2/3] reusing the trained and quantised run {run_dir} (delete it to "
                   "train again)", err=True)
        int8 = run_dir / "int8"
    else:
        click.echo(f"[1/3] training the '{DEFAULT_PRESET}' preset on '{DEFAULT_DATASET}' "
                   f"into {run_dir}", err=True)
        train_run(DEFAULT_DATASET, DEFAULT_PRESET, run_dir,
                  resume=(run_dir / "config.json").is_file(), quiet=quiet)
        click.echo(f"[2/3] quantising {run_dir} to int8", err=True)
        int8 = quantize_run(run_dir, quiet=quiet)
    click.echo(f"[3/3] generating C and building for {board}", err=True)
    return Path(int8)


def _int8_dir(run_dir: Path) -> Path:
    if (run_dir / "manifest.json").is_file() and (run_dir / "selector.tflite").is_file():
        return run_dir  # an int8 directory given directly
    int8 = run_dir / "int8"
    if not (int8 / "manifest.json").is_file():
        raise DitmosError(f"{run_dir} has no int8/manifest.json; run `ditmos quantize "
                          f"{run_dir}` first")
    return int8


@click.command("build")
@click.option("--board", type=click.Choice(board_names()), default="nucleo_f767zi",
              show_default=True, help="Target board (facts in ditmos/boards/boards.json).")
@click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              help="A quantised run (RUN_DIR with int8/). Without it: train the quick "
                   "preset on hapt, quantise, then build.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Build directory [default: build/BOARD].")
@click.option("--kernels", type=click.Choice(["ref", "cm7"]),
              help="Kernel set [default: cm7 on Arm boards, ref on the host].")
@click.option("--strategy", type=click.Choice(["slicing", "greedy", "none"]),
              default="slicing", show_default=True, help="Activation memory strategy.")
@click.option("--profile", is_flag=True, help="Per-layer cycle/instruction profiling.")
@click.option("--baud", type=click.IntRange(min=1200), help="UART baud rate [board default].")
@click.option("--show-plan", is_flag=True, help="Print the activation memory plan.")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Build an existing C model directory (model.h, model.c, weights.c) "
                   "instead of generating one.")
@click.option("--quiet", is_flag=True, help="Less progress output.")
def build(board, run_dir, out_dir, kernels, strategy, profile, baud, show_plan, model_dir,
          quiet):
    """Generate C for a run and compile the firmware for a board.

    Writes BUILD_DIR/firmware.elf, firmware.bin, manifest.json and a
    self-contained project (src/, include/, Makefile, platformio.ini), and
    prints the flash/RAM table.
    """
    from ditmos.boards.build import build_firmware, build_project, format_memory_table

    out = out_dir or _default_out(board)
    if model_dir is not None:
        if run_dir is not None:
            raise DitmosError("give either --run or --model-dir, not both")
        result = build_project(board, model_dir, out, kernels=kernels, profile=profile,
                               baud=baud)
    else:
        int8 = _int8_dir(run_dir) if run_dir is not None else _pipeline(board, quiet)
        result = build_firmware(board, int8, out, kernels=kernels, profile=profile,
                                strategy=strategy, baud=baud)
    manifest = json.loads((result / "manifest.json").read_text())
    if show_plan:
        cg = result / "model" / "manifest.json"
        table = json.loads(cg.read_text()).get("memory", {}).get("table") if cg.is_file() \
            else None
        click.echo(table if isinstance(table, str) else json.dumps(table, indent=1)
                   if table else "no memory plan (the model was not generated by ditmos)")
    click.echo(format_memory_table(board, manifest["memory"]))
    if board == "nucleo_f767zi":
        _link_latest(result)
    click.echo(f"firmware: {result / 'firmware.elf'}  (model {manifest['model_hash']})")


@click.command("flash")
@click.option("--board", type=click.Choice(["nucleo_f767zi"]), default="nucleo_f767zi",
              show_default=True)
@click.option("--build", "build_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Build directory [default: build/BOARD].")
def flash(board, build_dir):
    """Flash a built firmware with PlatformIO (`pio run -t upload`)."""
    from ditmos.boards.registry import get_board

    b = get_board(board)
    build_dir = build_dir or _default_out(board)
    manifest = _read_build(build_dir, board)
    elf, binary = build_dir / "firmware.elf", build_dir / "firmware.bin"
    tools = b.extra.get("flash_tools", {})
    alternatives = "; ".join(f"{name}: `{cmd.format(elf=elf, bin=binary)}`"
                             for name, cmd in tools.items())
    pio = _find_pio()
    if pio is None:
        raise DitmosError(f"PlatformIO (`pio`) is not installed (pip install 'ditmos[flash]'); "
                          f"flash {elf} another way, e.g. {alternatives}")
    platform = b.extra["platformio"]["platform"]
    listed = subprocess.run([pio, "pkg", "list", "-g", "--only-platforms"],
                            capture_output=True, text=True)
    if platform not in listed.stdout:
        raise DitmosError(f"PlatformIO's '{platform}' platform is not installed (`pio pkg "
                          f"install -g -p {platform}` needs its registry); or flash {elf} "
                          f"directly: {alternatives}")
    click.echo(f"flashing {manifest['model_hash']} onto {board} with PlatformIO", err=True)
    rc = subprocess.call([pio, "run", "-d", str(build_dir), "-e", board, "-t", "upload"])
    if rc != 0:
        raise DitmosError(f"`pio run -t upload` failed (exit {rc}); alternatives: "
                          f"{alternatives}")


@click.command("emulate", epilog="""\b
Example (in a second terminal, evaluate on the running emulator):
  ditmos emulate --board mps2_an500 --build build/mps2
  ditmos evaluate --run runs/hapt --build build/mps2 --port socket://127.0.0.1:PORT --out eval/mps2
""")
@click.option("--board", type=click.Choice(["mps2_an500"]), default="mps2_an500",
              show_default=True)
@click.option("--build", "build_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Build directory [default: build/BOARD].")
@click.option("--port", type=click.IntRange(1, 65535), help="TCP port [default: a free one].")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the plugin log (marks.log) and qemu.log here [default: a temporary "
                   "directory, removed when QEMU stops].")
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
        click.echo(f"evaluate with: ditmos evaluate --run RUN_DIR --build {build_dir} "
                   f"--port {target.url} --out EVAL_DIR", err=True)
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


def _find_pio() -> str | None:
    """PlatformIO from this Python's environment first, then from PATH."""
    beside = Path(sys.executable).with_name("pio")
    if beside.is_file():
        return str(beside)
    return shutil.which("pio") or shutil.which("platformio")


def _read_build(build_dir: Path, board: str) -> dict:
    path = build_dir / "manifest.json"
    if not path.is_file():
        raise DitmosError(f"{build_dir} has no manifest.json; run `ditmos build --board {board} "
                          f"--out {build_dir}` first")
    manifest = json.loads(path.read_text())
    if manifest.get("board") != board:
        raise DitmosError(f"{build_dir} holds a firmware for {manifest.get('board')}, "
                          f"not {board}")
    return manifest


__all__ = ["build", "flash", "emulate"]
