"""``ditmos bench train``: wall and CPU time of every training stage on this machine.

Wall time is what a user waits; CPU time (all threads of the training
process) is what the work costs.  On a machine shared with other jobs the
two differ by the time spent waiting for a core, so both are printed."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click


@click.command()
@click.option("--dataset", default="hapt", show_default=True)
@click.option("--preset", type=click.Choice(["quick", "full"]), default="quick", show_default=True)
@click.option("--width", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config overrides, as for 'ditmos train --config'.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the run directory here instead of a temporary one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the timings as JSON.")
def command(dataset, preset, width, seed, config_file, keep, as_json):
    """Train once and print wall and CPU time per stage.

    On a shared machine wall time includes waiting for a core; CPU time (all
    threads of this process) does not, and is the cost of the work itself."""
    from ditmos.training import train_run

    with tempfile.TemporaryDirectory(prefix="ditmos-bench-") as tmp:
        run_dir = Path(keep) if keep else Path(tmp) / "run"
        t0, c0 = time.monotonic(), time.process_time()
        train_run(dataset, preset, run_dir, width=width, seed=seed, quiet=True, config_file=config_file)
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        m = json.loads((run_dir / "metrics.json").read_text())
    stages = m["timing"]["stage_seconds_this_process"]
    stage_cpu = m["timing"].get("stage_cpu_seconds_this_process", {})
    other = wall - sum(stages.values())
    other_cpu = cpu - sum(stage_cpu.values())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "dataset": dataset,
                    "preset": preset,
                    "width": width,
                    "stages": stages,
                    "stage_cpu_seconds": stage_cpu,
                    "other_seconds": other,
                    "other_cpu_seconds": other_cpu,
                    "wall_seconds": wall,
                    "cpu_seconds": cpu,
                    "test_ditmos": m["test"]["float"]["ditmos"],
                },
                indent=2,
            )
        )
        return
    click.echo(f"ditmos bench train: {dataset}, preset {preset}, width {width}")
    click.echo(f"  {'stage':<22} {'wall':>8}   {'CPU':>8}")
    for name, sec in stages.items():
        click.echo(f"  {name:<22} {sec:8.1f} s {stage_cpu.get(name, float('nan')):8.1f} s")
    click.echo(f"  {'data/metrics/other':<22} {other:8.1f} s {other_cpu:8.1f} s")
    click.echo(f"  {'total (wall)':<22} {wall:8.1f} s")
    click.echo(f"  {'total (CPU)':<22} {cpu:8.1f} s   (CPU / wall {cpu / max(wall, 1e-9):.2f})")
    click.echo(
        f"  test accuracy: DiTMoS {m['test']['float']['ditmos']:.4f}, "
        f"strong {m['test']['float']['baselines']['strong']:.4f}"
    )
