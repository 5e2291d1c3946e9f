"""``ditmos robust``: adversarial robustness of a trained run."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from ditmos.errors import DitmosError
from ditmos.jsonio import write_json

FORMAT = "ditmos-robust-attack/1"


def _atomic_npz(path: Path, **arrays) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.group()
def robust() -> None:
    """Adversarial robustness: attacks on every l_p norm and union accuracy.

    \b
    Radii are in normalised input units (zero mean, unit std per channel on
    the training split). Defaults depend on the window size d = T*C:
    l_inf 0.1, l_2 = 0.1*sqrt(d)/3.5, l_1 = l_2*sqrt(d)/2.3.
    """


@robust.command("attack")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--eps", "eps_text", default=None, metavar="NORM=R,...",
              help="Radii, e.g. 'linf=0.1,l2=0.8,l1=9'; unnamed norms keep their defaults.")
@click.option("--steps", default=20, show_default=True, type=click.IntRange(0),
              help="PGD steps per restart.")
@click.option("--restarts", default=2, show_default=True, type=click.IntRange(1),
              help="PGD restarts (the first starts at the clean window).")
@click.option("--queries", default=300, show_default=True, type=click.IntRange(0),
              help="Square-attack queries (gradient-free l_inf check).")
@click.option("--samples", default=None, type=click.IntRange(1),
              help="Attack only the first N test windows (default: the whole test split).")
@click.option("--int8/--no-int8", "with_int8", default=True, show_default=True,
              help="Also classify the adversarial windows with the int8 TFLM reference "
                   "(needs 'ditmos quantize RUN_DIR' first) and run Square on it directly.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quiet", is_flag=True, help="No progress lines.")
def attack(run_dir: Path, eps_text, steps, restarts, queries, samples, with_int8, seed,
           quiet) -> None:
    """Attack RUN_DIR's DiTMoS model on the test split with PGD (l_inf, l_2,
    l_1; through the held route and through a soft-routing surrogate) and
    Square (l_inf), and report clean, per-norm and union accuracy.

    Writes RUN_DIR/robust/attack.json and RUN_DIR/robust/adversarial.npz
    (the adversarial windows at each full radius, for on-device checks).

    \b
    Example:
      ditmos robust attack runs/hapt --samples 500 --eps linf=0.1
    """
    from ditmos.robust.evaluate import AttackBudget, parse_eps, union_robustness
    from ditmos.robust.targets import DitmosTarget
    from ditmos.training.rundir import load_run_data

    data = load_run_data(run_dir)
    x, y = data.x_test, data.y_test
    if samples:
        x, y = x[:samples], y[:samples]
    radii = parse_eps(eps_text, data.input_shape)
    budget = AttackBudget(steps=steps, restarts=restarts, square_queries=queries)
    int8_dir = run_dir / "int8"
    if with_int8 and not (int8_dir / "manifest.json").is_file():
        raise DitmosError(f"{int8_dir}/manifest.json not found: run 'ditmos quantize {run_dir}' "
                          f"first, or pass --no-int8")
    target = DitmosTarget.from_run(run_dir)
    t0 = time.monotonic()

    def progress(norm, frac):
        if not quiet:
            click.echo(f"  {norm}: radius {frac:g} x {radii[norm]:g} done "
                       f"({time.monotonic() - t0:.0f} s)", err=True)

    if not quiet:
        click.echo(f"attacking {len(x)} test windows of {run_dir} "
                   f"(radii {', '.join(f'{k}={v:g}' for k, v in radii.items())})", err=True)
    res, advs = union_robustness(target, x, y, radii, budget=budget, seed=seed, progress=progress)
    out = {"format": FORMAT, "model": "ditmos", "split": "test", "seed": seed,
           "float": res.to_dict(), "seconds": round(time.monotonic() - t0, 1)}
    if with_int8:
        from ditmos.robust.int8 import int8_robustness

        out["int8"] = int8_robustness(int8_dir, x, y, advs, radii, queries=queries, seed=seed)
    folder = run_dir / "robust"
    folder.mkdir(exist_ok=True)
    _atomic_npz(folder / "adversarial.npz", y=y, clean=x, **advs)
    write_json(folder / "attack.json", out, indent=2)
    click.echo(format_table(out))
    click.echo(f"wrote {folder / 'attack.json'}")


def format_table(out: dict) -> str:
    rows = [("float", out["float"])]
    if "int8" in out:
        rows.append(("int8 (float adv.)", out["int8"]["transfer"]))
        if "square" in out["int8"]:
            rows.append(("int8 (Square on int8)", out["int8"]["square"]))
    lines = ["| model | clean | linf | l2 | l1 | union |", "|---|---|---|---|---|---|"]
    for name, r in rows:
        rob = r["robust"]
        cells = [f"{100 * rob[k]:.2f}" if k in rob else "—" for k in ("linf", "l2", "l1")]
        union = "—" if r.get("union") is None else f"{100 * r['union']:.2f}"
        lines.append(f"| {name} | {100 * r['clean']:.2f} | {' | '.join(cells)} | {union} |")
    return "\n".join(lines)
