"""``ditmos bench robust``: time of the union evaluation (every norm's attack)
of a run's test split with the default attack budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

TARGET_SECONDS = 300.0


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--model",
    "model_kind",
    type=click.Choice(["auto", "ditmos", "single", "early_exit"]),
    default="auto",
    show_default=True,
    help="As for 'ditmos robust attack'.",
)
@click.option(
    "--samples",
    default=None,
    type=click.IntRange(1),
    help="Only the first N test windows (default: the whole test split).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the timings as JSON.")
def command(run_dir, model_kind, samples, as_json):
    """Run the union evaluation of RUN_DIR's test split at the default radii
    and attack budget ('ditmos robust attack' defaults, curves included) and
    print wall and CPU time against the 5-minute target.

    On a shared machine the wall time depends on the load; the CPU time of
    this process is printed too, and its ratio to the target is the
    load-independent figure (on an idle machine the wall time is at most the
    CPU time, since the attack runs in this one process)."""
    from ditmos.robust.evaluate import CURVE_FRACTIONS, AttackBudget, default_radii, union_robustness
    from ditmos.robust.targets import load_target
    from ditmos.training.rundir import load_run_data

    data = load_run_data(run_dir)
    x, y = data.x_test, data.y_test
    if samples:
        x, y = x[:samples], y[:samples]
    model_kind, target = load_target(run_dir, model_kind)
    budget = AttackBudget()
    w0, c0 = time.monotonic(), time.process_time()
    res, _ = union_robustness(target, x, y, default_radii(data.input_shape), budget=budget)
    wall, cpu = time.monotonic() - w0, time.process_time() - c0
    out = {
        "run": str(run_dir),
        "model": model_kind,
        "windows": len(x),
        "budget": {"steps": budget.steps, "restarts": budget.restarts, "square_queries": budget.square_queries},
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "target_seconds": TARGET_SECONDS,
        "wall_over_target": round(wall / TARGET_SECONDS, 3),
        "cpu_over_target": round(cpu / TARGET_SECONDS, 3),
        "union": res.union,
        "clean": res.clean,
    }
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(
        f"union evaluation of {len(x)} test windows ({model_kind}, {len(target.views)} "
        f"view(s), PGD {budget.steps} steps x {budget.restarts} restarts x 3 norms x "
        f"{len(CURVE_FRACTIONS)} radii in one batch + Square {budget.square_queries} "
        f"queries)"
    )
    click.echo(
        f"wall {wall:.1f} s, CPU {cpu:.1f} s; wall / 5-minute target = "
        f"{wall / TARGET_SECONDS:.2f}, CPU / target = {cpu / TARGET_SECONDS:.2f}; "
        f"clean {res.clean:.4f}, union {res.union:.4f}"
    )
