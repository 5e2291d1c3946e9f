"""``ditmos report``: Markdown + a self-contained HTML page with plots for a run."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--eval",
    "evals",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Evaluation directory from `ditmos evaluate` (repeatable).",
)
@click.option(
    "--build",
    "build_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Build directory whose memory plan to draw (default: the evaluation's).",
)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where to write report.md, report.html and figures/ (default RUN_DIR/report).",
)
def report(run_dir, evals, build_dir, out_dir):
    """Write report.md and report.html for RUN_DIR: every method at every width
    (accuracy, MACs, flash, params; accuracy-vs-MACs and accuracy-vs-flash with
    the Pareto front), per-layer latency, memory plan, routing, confusion matrix.

    The comparison `ditmos train --out RUN_DIR --compare` wrote
    (RUN_DIR/compare/compare.json) is found by itself; RUN_DIR may also be that
    comparison directory."""
    from pathlib import Path

    from ditmos.report.collect import collect
    from ditmos.report.render import write_report

    data = collect(run_dir, list(evals), build_dir)
    res = write_report(data, Path(out_dir) if out_dir else Path(run_dir) / "report")
    click.echo(f"wrote {res['html']} and {res['markdown']} ({len(res['figures'])} figures)")
    for key, why in res["not_shown"].items():
        click.echo(f"  not shown: {key}: {why}")
    for m in res["missing"]:
        click.echo(f"  missing: {m}")
