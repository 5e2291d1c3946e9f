"""``ditmos bench certify``: float-smoothing time / integer-smoothing time.

Both smoothers produce the class counts of ``n`` noisy predictions for the
same test windows of a quantised run, in one process, one after the other:

- float: Gaussian noise (numpy float32) + the float Keras DiTMoS, batched in
  TensorFlow (1000 windows per call);
- integer: the 32-bit integer generator and table noise + the generated int8
  C model (reference kernels) compiled on the host, as in ``ditmos certify
  --int8``.

Each side is timed over ``--repeat`` passes (the best pass counts) after one
untimed warm-up window; the ratio > 1 means integer smoothing is faster.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--sigma", type=float, default=0.25, show_default=True,
              help="Noise std in normalised input units.")
@click.option("--n", "n", type=int, default=10000, show_default=True,
              help="Noisy predictions per window.")
@click.option("--samples", type=int, default=5, show_default=True,
              help="Test windows (evenly spread over the test split).")
@click.option("--repeat", type=int, default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def command(run_dir, sigma, n, samples, repeat, as_json):
    """Time float vs integer-only smoothing on the same windows; print the ratio."""
    from ditmos.errors import DitmosError
    from ditmos.smoothing.certify import check_sigma
    from ditmos.smoothing.run import sample_indices, window_seed
    from ditmos.smoothing.smoothers import FloatModel, FloatSmoother, IntSmoother
    from ditmos.training.rundir import load_run_data

    check_sigma(sigma)
    if n < 1 or samples < 1 or repeat < 1:
        raise DitmosError("--n, --samples and --repeat must be >= 1")
    run_dir = Path(run_dir)
    data = load_run_data(run_dir)
    idx = sample_indices(len(data.y_test), samples)
    x = data.x_test[idx]
    fsm = FloatSmoother(FloatModel(run_dir), sigma)
    ism = IntSmoother(run_dir / "int8", sigma)
    try:
        x_q = ism.quantize(x)
        fsm.counts(x[0], min(n, 1000), np.random.default_rng(0))  # warm-up (tracing)
        ism.counts(x_q[0], 10, 0)

        def run_float():
            for j, i in enumerate(idx):
                fsm.counts(x[j], n, np.random.default_rng([0, int(i)]))

        def run_int():
            for j, i in enumerate(idx):
                ism.counts(x_q[j], n, window_seed(0, int(i)))

        t_float = _best(run_float, repeat)
        t_int = _best(run_int, repeat)
    finally:
        ism.close()
    res = {"run": str(run_dir), "sigma": sigma, "n": n, "samples": int(len(idx)),
           "repeat": repeat, "float_seconds": t_float, "int_seconds": t_int,
           "float_ms_per_prediction": 1e3 * t_float / (n * len(idx)),
           "int_ms_per_prediction": 1e3 * t_int / (n * len(idx)),
           "ratio_float_over_int": t_float / t_int}
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    click.echo(f"{len(idx)} windows x {n} noisy predictions, best of {repeat}")
    click.echo(f"float smoothing (TensorFlow, batched):     {t_float:8.2f} s  "
               f"({res['float_ms_per_prediction']:.4f} ms/prediction)")
    click.echo(f"integer smoothing (generated int8 C, host): {t_int:8.2f} s  "
               f"({res['int_ms_per_prediction']:.4f} ms/prediction)")
    click.echo(f"ratio float / integer: {res['ratio_float_over_int']:.2f}x")
