"""The ``ditmos`` command: one click group, each command delegating to a stage.

Each stage owns its command in ``ditmos/<stage>/cli.py``; this module only
assembles them and turns :class:`~ditmos.errors.DitmosError` into a one-line
message on stderr (exit 2).  Any other exception also becomes one line (exit
1) that names the failed command and asks for a report; ``--debug`` (or
``DITMOS_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import threading

import click

from ditmos import __version__
from ditmos.errors import DitmosError

# (command name, module, attribute) in pipeline order.  Modules are imported
# lazily so that `ditmos --help` does not pay for TensorFlow.
_COMMANDS = [
    ("doctor", "ditmos.doctor", "doctor"),
    ("data", "ditmos.data.cli", "data"),
    ("train", "ditmos.training.cli", "train"),
    ("quantize", "ditmos.quantize.cli", "quantize"),
    ("certify", "ditmos.smoothing.cli", "certify"),
    ("build", "ditmos.boards.cli", "build"),
    ("flash", "ditmos.boards.cli", "flash"),
    ("selftest", "ditmos.boards.cli", "selftest"),
    ("emulate", "ditmos.boards.cli", "emulate"),
    ("evaluate", "ditmos.harness.cli", "evaluate"),
    ("robust", "ditmos.robust.cli", "robust"),
    ("report", "ditmos.report.cli", "report"),
    ("bench", "ditmos.bench.cli", "bench"),
]

_SHORT_HELP = {
    "doctor": "Check the system tools (cross compiler, QEMU, make); print the apt command.",
    "data": "List and describe datasets.",
    "train": "Train a DiTMoS model (selector + K classifiers) and baselines.",
    "quantize": "Convert a trained run to full-int8 TFLite and check it in TFLM.",
    "certify": "Certified l2 robustness by randomized smoothing (float and integer-only).",
    "build": "Generate C for a run and compile firmware for a board.",
    "flash": "Program the measured firmware onto a board (sha256-checked).",
    "selftest": "Check an attached board: link, clock, known answer, stack, timing.",
    "emulate": "Run a built firmware in QEMU with its serial port on TCP.",
    "evaluate": "Measure on-device accuracy, latency and memory over serial.",
    "robust": "Adversarial robustness: l_inf/l_2/l_1 attacks, union accuracy.",
    "report": "Write a Markdown/HTML report with plots for a run.",
    "bench": "Benchmarks: training time, memory plans, instruction counts.",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, _, _ in _COMMANDS]

    def get_command(self, ctx, cmd_name):
        for name, module, attr in _COMMANDS:
            if name == cmd_name:
                import importlib

                return getattr(importlib.import_module(module), attr)
        return None

    def format_commands(self, ctx, formatter):
        rows = [(name, _SHORT_HELP[name]) for name, _, _ in _COMMANDS]
        with formatter.section("Commands (in pipeline order)"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ditmos")
@click.option(
    "--debug",
    is_flag=True,
    envvar="DITMOS_DEBUG",
    help="Show full tracebacks instead of one-line errors, and TensorFlow's native log lines (hidden otherwise).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """ditmos: train DiTMoS models and ship them to microcontrollers.

    \b
    Typical pipeline:
      ditmos doctor
      ditmos data info hapt
      ditmos train --dataset hapt --preset quick --out runs/hapt
      ditmos quantize runs/hapt
      ditmos build --board nucleo_f767zi --run runs/hapt --out build/nucleo
      ditmos evaluate --run runs/hapt --build build/mps2 --emulate --out eval/
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if debug:
        os.environ["DITMOS_DEBUG"] = "1"


REPORT_HINT = (
    "please report it on the ditmos issue tracker with the output of `ditmos --debug ...` and `ditmos --version`"
)


def _command_words(argv: list[str]) -> str:
    """``ditmos build`` / ``ditmos data info`` for messages (options and
    arguments left out)."""
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return "ditmos"
    try:
        cmd = cli.get_command(None, words[0])
    except Exception:  # noqa: BLE001 - only for a message
        cmd = None
    if cmd is None:
        return "ditmos"
    if isinstance(cmd, click.Group) and len(words) > 1 and words[1] in cmd.commands:
        return f"ditmos {words[0]} {words[1]}"
    return f"ditmos {words[0]}"


def _unexpected(err: BaseException, argv: list[str]) -> int:
    """One line for an exception no stage turned into a DitmosError."""
    what = _command_words(argv)
    if isinstance(err, OSError) and err.strerror:
        where = f" ({err.filename})" if err.filename else ""
        click.echo(
            f"ditmos: error: `{what}` failed: {err.strerror}{where}; `ditmos --debug ...` shows the traceback", err=True
        )
        return 1
    text = str(err).strip().splitlines()
    detail = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
    click.echo(
        f"ditmos: internal error: `{what}` failed ({detail}); `ditmos --debug ...` shows the traceback; {REPORT_HINT}",
        err=True,
    )
    return 1


def _thread_error(hook, argv: list[str]) -> None:
    """A background thread died: one line instead of Python's traceback."""
    if hook.exc_type is SystemExit:
        return
    text = str(hook.exc_value or "").strip().splitlines()
    detail = hook.exc_type.__name__ + (f": {text[0]}" if text else "")
    name = hook.thread.name if hook.thread is not None else "?"
    click.echo(
        f"ditmos: internal error: a background thread ({name}) of "
        f"`{_command_words(argv)}` failed ({detail}); `ditmos --debug ...` shows the "
        f"traceback; {REPORT_HINT}",
        err=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code.

    0 success, 2 a user error (DitmosError, bad usage), 1 an unexpected error
    (one line, the traceback only with ``--debug``), 130 interrupted.  Stage
    outputs are written to a temporary name and renamed into place, so an
    error or Ctrl-C never leaves a half-written output that claims to be
    complete.
    """
    args = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in args or bool(os.environ.get("DITMOS_DEBUG"))
    from ditmos import tfenv

    if debug:
        tfenv.configure(debug=True)  # TensorFlow's own log lines come back
    elif argv is None:  # a real command line (not an in-process call from Python)
        tfenv.filter_native_stderr()
    previous_hook = threading.excepthook
    if not debug:
        threading.excepthook = lambda hook: _thread_error(hook, args)
    try:
        return _main(args, debug)
    finally:
        threading.excepthook = previous_hook


def _main(args: list[str], debug: bool) -> int:
    try:
        rv = cli.main(args=args, prog_name="ditmos", standalone_mode=False)
    except DitmosError as err:
        if debug:
            raise
        click.echo(f"ditmos: error: {err}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("ditmos: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("ditmos: interrupted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    except BrokenPipeError:
        # `ditmos ... | head`: the reader went away; stay quiet.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except Exception as err:  # noqa: BLE001 - the one place that catches everything
        if debug:
            raise
        return _unexpected(err, args)
    # With standalone_mode=False click returns the code of `raise Exit(n)` /
    # `ctx.exit(n)` instead of raising it (commands themselves return None).
    if isinstance(rv, int) and not isinstance(rv, bool):
        return rv
    return 0


if __name__ == "__main__":
    sys.exit(main())
