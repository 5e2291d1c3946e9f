"""``ditmos bench``: benchmarks that print ratios measured in one run.

Each benchmark lives in its own module (``ditmos.bench.<name>``) exposing a
click command called ``command``.
"""

from __future__ import annotations

import importlib

import click

_BENCHES = {
    "train": ("ditmos.bench.train", "Wall time per training stage (quick/full presets)."),
    "memory": ("ditmos.bench.memory", "Peak activation memory per planning strategy vs TFLM."),
    "latency": ("ditmos.bench.latency", "QEMU instruction counts: reference vs optimised kernels."),
    "certify": ("ditmos.bench.certify", "Float / integer-only randomized-smoothing time, same windows."),
    "robust": ("ditmos.bench.robust", "Time of the union evaluation (all attacks) of a test split."),
    "frontend": ("ditmos.bench.frontend", "Accuracy of the fixed-point vs the float MFCC front end (fsdd_audio)."),
}


class _BenchGroup(click.Group):
    def list_commands(self, ctx):
        return list(_BENCHES)

    def get_command(self, ctx, cmd_name):
        if cmd_name not in _BENCHES:
            return None
        return importlib.import_module(_BENCHES[cmd_name][0]).command

    def format_commands(self, ctx, formatter):
        with formatter.section("Benchmarks"):
            formatter.write_dl([(k, v[1]) for k, v in _BENCHES.items()])


@click.group(cls=_BenchGroup)
def bench() -> None:
    """Benchmarks. Speed and memory claims are ratios measured in one run."""
