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
@click.option("--model", "model_kind", type=click.Choice(["ditmos", "single"]),
              default="ditmos", show_default=True,
              help="ditmos, or the equal-MACs single CNN baseline (for --robust).")
@click.option("--robust", "robust_mode", default=None,
              type=click.Choice(["none", "linf", "l2", "l1", "max", "avg", "eat", "ramp"]),
              help="Adversarial training (with --model single): PGD on one norm (linf, l2, "
                   "l1), the worst (max) or mean (avg) over the three, E-AT (eat), RAMP "
                   "(ramp), or none (standard training in the same loop).")
@click.option("--pair", default=None, metavar="Q,R",
              help="RAMP key pair, e.g. 'linf,l1' (default: a cheap proxy of the RAMP rule).")
@click.option("--quiet", is_flag=True, help="No progress bars (CI).")
def train(dataset, preset, out_dir, config_file, width, seed, resume, compare, widths,
          model_kind, robust_mode, pair, quiet):
    """Train DiTMoS and write a run directory (config, models, export, metrics.json).

    \b
    With --model single --robust MODE: adversarially train the single CNN
    with the MACs of DiTMoS's selector + one classifier (quick schedule)
    and write RUN/models/single.keras and RUN/robust.json; attack it with
    'ditmos robust attack RUN'. Hyper-parameters: the "robust" section of
    --config (e.g. {"robust": {"epochs": 20, "attack_steps": 5}}).
    """
    if model_kind == "single" or robust_mode is not None:
        if model_kind != "single":
            raise DitmosError("--robust is available for --model single only (adversarial "
                              "training of DiTMoS itself is not implemented yet)")
        if resume or compare or widths or width != 1.0 or preset != "quick":
            raise DitmosError("--model single takes only --dataset, --out, --config, --seed, "
                              "--robust, --pair, --quiet")
        if pair is not None and robust_mode != "ramp":
            raise DitmosError("--pair only applies to --robust ramp")
        from ditmos.robust.training import train_single_robust

        run_dir = train_single_robust(dataset, out_dir, mode=robust_mode or "none", seed=seed,
                                      config_file=config_file, pair=pair, quiet=quiet)
        import json

        r = json.loads((run_dir / "robust.json").read_text())["cheap_pgd"]["test"]
        click.echo(f"{run_dir}: test clean {r['clean']:.4f}; cheap PGD linf {r['linf']:.4f} "
                   f"l2 {r['l2']:.4f} l1 {r['l1']:.4f} union {r['union']:.4f} "
                   f"(full attack: ditmos robust attack {run_dir})")
        return
    ws = _widths(widths)
    if ws is not None and not compare:
        raise DitmosError("--widths only applies together with --compare")
    if compare and importlib.util.find_spec("ditmos.training.compare") is None:
        raise DitmosError("--compare is not available in this installation "
                          "(ditmos.training.compare is missing)")
    from ditmos.training import train_run

    run_dir = train_run(dataset, preset, out_dir, config_file=config_file, width=width,
                        seed=seed, resume=resume, quiet=quiet)
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
