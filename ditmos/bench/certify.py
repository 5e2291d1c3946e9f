"""``ditmos bench certify``: float-smoothing time / integer-smoothing time.

Both smoothers produce the class counts of ``n`` noisy predictions for the
same test windows of a quantised run, in one process, one after the other:

- float: Gaussian noise (numpy float32) + the float Keras DiTMoS, batched in
  TensorFlow (1000 windows per call);
- integer, batched: the device's 32-bit integer generator and table noise
  (its C code compiled on the host) for all ``n`` noisy windows at once, then
  the int8 sub-models in LiteRT's optimised integer kernels over the whole
  batch (``ditmos/smoothing/batched.py``), as ``ditmos certify --int8`` does;
- integer, C: the same noise and the generated int8 C model (reference
  kernels), one noisy window after the other, i.e. the device's vote loop
  compiled on the host.

The three give their class counts for the same windows; the two integer
engines must give identical counts (checked here, an error otherwise).

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
@click.option("--threads", type=int, default=None,
              help="TensorFlow threads of the float side (default: TensorFlow's choice, "
                   "every core); the integer side runs in one thread.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def command(run_dir, sigma, n, samples, repeat, threads, as_json):
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
    if threads is not None:
        if threads < 1:
            raise DitmosError("--threads must be >= 1")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    fsm = FloatSmoother(FloatModel(run_dir), sigma)
    ism = IntSmoother(run_dir / "int8", sigma, engine="batched")
    counts = {"batched": [], "c": []}
    try:
        x_q = ism.quantize(x)
        fsm.counts(x[0], min(n, 1000), np.random.default_rng(0))  # warm-up (tracing)
        ism.counts(x_q[0], 10, 0, engine="c")
        ism.counts(x_q[0], 10, 0, engine="batched")

        def run_float():
            for j, i in enumerate(idx):
                fsm.counts(x[j], n, np.random.default_rng([0, int(i)]))

        def run_int(engine):
            def run():
                counts[engine] = [ism.counts(x_q[j], n, window_seed(0, int(i)), engine=engine)
                                  for j, i in enumerate(idx)]
            return run

        (w_float, c_float) = _best(run_float, repeat)
        (w_bat, c_bat) = _best(run_int("batched"), repeat)
        (w_int, c_int) = _best(run_int("c"), repeat)
    finally:
        ism.close()
    for a, b in zip(counts["batched"], counts["c"]):
        if not np.array_equal(a, b):
            raise DitmosError(f"batched integer counts {a.tolist()} differ from the C model's "
                              f"{b.tolist()}")
    preds = n * len(idx)
    res = {"run": str(run_dir), "sigma": sigma, "n": n, "samples": int(len(idx)),
           "repeat": repeat, "float_threads": threads, "integer_counts_identical": True,
           "float_wall_seconds": w_float, "batched_wall_seconds": w_bat,
           "int_wall_seconds": w_int,
           "float_cpu_seconds": c_float, "batched_cpu_seconds": c_bat, "int_cpu_seconds": c_int,
           "float_cpu_ms_per_prediction": 1e3 * c_float / preds,
           "batched_cpu_ms_per_prediction": 1e3 * c_bat / preds,
           "int_cpu_ms_per_prediction": 1e3 * c_int / preds,
           "ratio_wall_float_over_batched": w_float / w_bat,
           "ratio_cpu_float_over_batched": c_float / c_bat,
           "ratio_wall_float_over_int": w_float / w_int,
           "ratio_cpu_float_over_int": c_float / c_int}
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    click.echo(f"{len(idx)} windows x {n} noisy predictions, best of {repeat}")
    click.echo(f"{'':48s}{'wall s':>9s}{'CPU s':>9s}{'CPU ms/prediction':>19s}")
    for label, w, c, k in (("float smoothing (TensorFlow, batched)", w_float, c_float, "float"),
                           ("integer smoothing (batched, LiteRT int8)", w_bat, c_bat, "batched"),
                           ("integer smoothing (generated int8 C, host)", w_int, c_int, "int")):
        click.echo(f"{label:48s}{w:9.2f}{c:9.2f}{res[k + '_cpu_ms_per_prediction']:19.4f}")
    click.echo("integer counts: batched == C on every window")
    click.echo(f"ratio float / integer batched: wall {res['ratio_wall_float_over_batched']:.2f}x, "
               f"CPU {res['ratio_cpu_float_over_batched']:.2f}x")
    click.echo(f"ratio float / integer C:       wall {res['ratio_wall_float_over_int']:.2f}x, "
               f"CPU {res['ratio_cpu_float_over_int']:.2f}x")
