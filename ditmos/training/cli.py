"""``ditmos train``: train DiTMoS (strong model, selector, K classifiers)."""

from __future__ import annotations

import importlib.util

import click

from ditmos.errors import DitmosError


def _widths(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        ws = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise DitmosError(f"--widths must be comma-separated numbers, got '{value}'") from None
    if not ws or any(w <= 0 for w in ws):
        raise DitmosError(f"--widths must be positive numbers, got '{value}'")
    return ws


@click.command()
@click.option("--dataset", required=True, help="Dataset spec (hapt, fsdd, unimib:DIR, ...).")
@click.option("--preset", type=click.Choice(["quick", "full"]), default="quick",
              show_default=True, help="Schedule: quick (demo/CI) or full (reference).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run directory to create (or to continue with --resume).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="JSON file overriding preset values (unknown keys are errors).")
@click.option("--width", type=float, default=1.0, show_default=True,
              help="Multiplier on every selector/classifier channel count.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--compare", is_flag=True,
              help="Also train the baselines/ablations and write a comparison table.")
@click.option("--widths", default=None, help="With --compare: widths, e.g. 0.25,0.5,1.")
@click.option("--smoothing", type=click.Choice(["none", "gaussian"]), default="none",
              show_default=True,
              help="Train for randomized smoothing: 'gaussian' adds N(0, sigma^2) noise to "
                   "every training window (a fresh draw per epoch, every stage).")
@click.option("--sigma", type=float, default=None,
              help="With --smoothing: noise std in normalised input units.")
@click.option("--quiet", is_flag=True, help="No progress bars (CI).")
def train(dataset, preset, out_dir, config_file, width, seed, resume, compare, widths,
          smoothing, sigma, quiet):
    """Train DiTMoS and write a run directory (config, models, export, metrics.json)."""
    overrides = None
    if smoothing == "none" and sigma is not None:
        raise DitmosError("--sigma only applies together with --smoothing gaussian")
    if smoothing != "none":
        if sigma is None:
            raise DitmosError(f"--smoothing {smoothing} needs --sigma (normalised input units)")
        overrides = {"smoothing": {"method": smoothing, "sigma": sigma}}
    ws = _widths(widths)
    if ws is not None and not compare:
        raise DitmosError("--widths only applies together with --compare")
    if compare and importlib.util.find_spec("ditmos.training.compare") is None:
        raise DitmosError("--compare is not available in this installation "
                          "(ditmos.training.compare is missing)")
    from ditmos.training import train_run

    run_dir = train_run(dataset, preset, out_dir, config_file=config_file, width=width,
                        seed=seed, resume=resume, quiet=quiet, overrides=overrides)
    import json

    m = json.loads((run_dir / "metrics.json").read_text())
    t = m["test"]["float"]
    click.echo(f"{run_dir}: test accuracy DiTMoS {t['ditmos']:.4f} (union {t['union']:.4f}, "
               f"strong {t['baselines']['strong']:.4f}); {m['model']['params']} params, "
               f"{m['model']['macs']} MACs/inference")
    if compare:
        from ditmos.training.compare import run_compare

        kwargs = {"widths": ws} if ws is not None else {}
        out = run_compare(run_dir, quiet=quiet, **kwargs)
        click.echo(f"comparison written to {out}")
