"""The ``ditmos`` command: one click group, each command delegating to a stage.

Each stage owns its command in ``ditmos/<stage>/cli.py``; this module only
assembles them and turns :class:`~ditmos.errors.DitmosError` into a one-line
message on stderr (exit 2).  ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import click

from ditmos import __version__
from ditmos.errors import DitmosError

# (command name, module, attribute) in pipeline order.  Modules are imported
# lazily so that `ditmos --help` does not pay for TensorFlow.
_COMMANDS = [
    ("data", "ditmos.data.cli", "data"),
    ("train", "ditmos.training.cli", "train"),
    ("quantize", "ditmos.quantize.cli", "quantize"),
    ("build", "ditmos.boards.cli", "build"),
    ("flash", "ditmos.boards.cli", "flash"),
    ("emulate", "ditmos.boards.cli", "emulate"),
    ("evaluate", "ditmos.harness.cli", "evaluate"),
    ("report", "ditmos.report.cli", "report"),
    ("bench", "ditmos.bench.cli", "bench"),
]

_SHORT_HELP = {
    "data": "List and describe datasets.",
    "train": "Train a DiTMoS model (selector + K classifiers) and baselines.",
    "quantize": "Convert a trained run to full-int8 TFLite and check it in TFLM.",
    "build": "Generate C for a run and compile firmware for a board.",
    "flash": "Flash a built firmware onto a board (PlatformIO).",
    "emulate": "Run a built firmware in QEMU with its serial port on TCP.",
    "evaluate": "Measure on-device accuracy, latency and memory over serial.",
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
@click.option("--debug", is_flag=True, envvar="DITMOS_DEBUG",
              help="Show full tracebacks instead of one-line errors, and TensorFlow's "
                   "native log lines (hidden otherwise).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """ditmos: train DiTMoS models and ship them to microcontrollers.

    \b
    Typical pipeline:
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


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(
        os.environ.get("DITMOS_DEBUG"))
    if debug:
        from ditmos import tfenv

        tfenv.configure(debug=True)  # TensorFlow's own log lines come back
    elif argv is None:  # a real command line (not an in-process call from Python)
        from ditmos import tfenv

        tfenv.filter_native_stderr()
    try:
        cli.main(args=argv, prog_name="ditmos", standalone_mode=False)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
