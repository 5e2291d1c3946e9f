"""``ditmos bench certify``: float-smoothing time / integer-smoothing time.

Both smoothers produce the class counts of ``n`` noisy predictions for the
same test windows of a quantised run, in one process, one after the other:

- float: Gaussian noise (numpy float32) + the float Keras DiTMoS, batched in
  TensorFlow (1000 windows per call);
- integer: the 32-bit integer generator and table noise + the generated int8
  C model (reference kernels) compiled on the host, as in ``ditmos certify
  --int8``.

Each side is timed over ``--repeat`` passes (the best pass counts) after one
untimed warm-up window, in wall-clock time and in CPU time of the process
(all threads: TensorFlow uses every core, the C loop one).  On a shared,
loaded machine the CPU-time ratio is the steadier measure of the work each
side does; both are printed.  A ratio > 1 means integer smoothing is faster.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np


def _best(fn, repeat: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds) over ``repeat`` passes."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


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

        (w_float, c_float) = _best(run_float, repeat)
        (w_int, c_int) = _best(run_int, repeat)
    finally:
        ism.close()
    preds = n * len(idx)
    res = {"run": str(run_dir), "sigma": sigma, "n": n, "samples": int(len(idx)),
           "repeat": repeat,
           "float_wall_seconds": w_float, "int_wall_seconds": w_int,
           "float_cpu_seconds": c_float, "int_cpu_seconds": c_int,
           "float_cpu_ms_per_prediction": 1e3 * c_float / preds,
           "int_cpu_ms_per_prediction": 1e3 * c_int / preds,
           "ratio_wall_float_over_int": w_float / w_int,
           "ratio_cpu_float_over_int": c_float / c_int}
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    click.echo(f"{len(idx)} windows x {n} noisy predictions, best of {repeat}")
    click.echo(f"{'':44s}{'wall s':>9s}{'CPU s':>9s}{'CPU ms/prediction':>19s}")
    click.echo(f"{'float smoothing (TensorFlow, batched)':44s}{w_float:9.2f}{c_float:9.2f}"
               f"{res['float_cpu_ms_per_prediction']:19.4f}")
    click.echo(f"{'integer smoothing (generated int8 C, host)':44s}{w_int:9.2f}{c_int:9.2f}"
               f"{res['int_cpu_ms_per_prediction']:19.4f}")
    click.echo(f"ratio float / integer: wall {res['ratio_wall_float_over_int']:.2f}x, "
               f"CPU {res['ratio_cpu_float_over_int']:.2f}x")
