"""``ditmos bench certify``: float-smoothing time / integer-smoothing time.

Both smoothers produce the class counts of ``n`` noisy predictions for the
same test windows of a quantised run, in one process, one after the other,
each at its best batched setting and with the same number of threads
(``--threads``, default 1, for TensorFlow and LiteRT alike):

- float: Gaussian noise (numpy float32) + the float Keras DiTMoS in
  TensorFlow, ``--float-batch`` noisy windows per call, hard routing as on
  the device (the selector on every window, each classifier only on the
  windows routed to it);
- integer, batched: the device's 32-bit integer generator and table noise
  (its C code compiled on the host), then the int8 sub-models in LiteRT's
  optimised integer kernels, ``--int-batch`` noisy windows per call
  (``ditmos/smoothing/batched.py``), as ``ditmos certify --int8`` does;
- integer, C: the same noise and the generated int8 C model (reference
  kernels), one noisy window after the other, i.e. the device's vote loop
  compiled on the host (one thread).

The two integer engines must give identical counts (checked here, an error
otherwise).  Each side is also timed generating its noise alone (same
windows, same draws), so the model's share of the time is visible.

Each side is timed over ``--repeat`` passes (the best pass counts) after one
untimed warm-up window, in wall-clock time and in CPU time of the process
(all threads).  On a shared, loaded machine the CPU-time ratio is the
steadier measure of the work each side does; both are printed.  A ratio > 1
means integer smoothing is faster.
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
@click.option("--sigma", type=float, default=0.25, show_default=True, help="Noise std in normalised input units.")
@click.option("--n", "n", type=int, default=10000, show_default=True, help="Noisy predictions per window.")
@click.option(
    "--samples", type=int, default=5, show_default=True, help="Test windows (evenly spread over the test split)."
)
@click.option("--repeat", type=int, default=2, show_default=True)
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="Threads of both sides (TensorFlow's intra- and inter-op pools, LiteRT's "
    "interpreter); the C engine always runs one.",
)
@click.option(
    "--float-batch", type=int, default=10000, show_default=True, help="Noisy windows per TensorFlow call (float side)."
)
@click.option(
    "--int-batch",
    type=int,
    default=2000,
    show_default=True,
    help="Noisy windows per LiteRT call (batched integer side).",
)
@click.option(
    "--no-c", "no_c", is_flag=True, help="Skip the (slow) C engine: no check of the batched counts against it."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def command(run_dir, sigma, n, samples, repeat, threads, float_batch, int_batch, no_c, as_json):
    """Time float vs integer-only smoothing on the same windows; print the ratio."""
    from ditmos.errors import DitmosError
    from ditmos.smoothing.certify import check_sigma
    from ditmos.smoothing.run import sample_indices, window_seed
    from ditmos.smoothing.smoothers import FloatModel, FloatSmoother, IntSmoother
    from ditmos.training.rundir import load_run_data

    check_sigma(sigma)
    for name, v in (
        ("--n", n),
        ("--samples", samples),
        ("--repeat", repeat),
        ("--threads", threads),
        ("--float-batch", float_batch),
        ("--int-batch", int_batch),
    ):
        if v < 1:
            raise DitmosError(f"{name} must be >= 1, got {v}")
    run_dir = Path(run_dir)
    data = load_run_data(run_dir)
    idx = sample_indices(len(data.y_test), samples)
    x = data.x_test[idx]
    import tensorflow as tf

    tf_threads = True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already running in this process (in-process use)
        tf_threads = False
    fsm = FloatSmoother(FloatModel(run_dir, batch=float_batch), sigma)
    ism = IntSmoother(run_dir / "int8", sigma, engine="batched", chunk=int_batch, threads=threads)
    counts = {"batched": [], "c": []}
    try:
        x_q = ism.quantize(x)
        fsm.counts(x[0], min(n, float_batch), np.random.default_rng(0))  # warm-up (tracing)
        if not no_c:
            ism.counts(x_q[0], 10, 0, engine="c")
        ism.counts(x_q[0], min(n, int_batch), 0, engine="batched")

        def run_float():
            for j, i in enumerate(idx):
                fsm.counts(x[j], n, np.random.default_rng([0, int(i)]))

        def float_noise():
            for j, i in enumerate(idx):
                rng = np.random.default_rng([0, int(i)])
                for off in range(0, n, float_batch):
                    b = min(float_batch, n - off)
                    x[j][None] + (rng.standard_normal((b, *x[j].shape), dtype=np.float32) * np.float32(sigma))

        def int_noise():
            for j, i in enumerate(idx):
                for off in range(0, n, int_batch):
                    ism.noisy(x_q[j], min(int_batch, n - off), window_seed(0, int(i)), off)

        def run_int(engine):
            def run():
                counts[engine] = [
                    ism.counts(x_q[j], n, window_seed(0, int(i)), engine=engine) for j, i in enumerate(idx)
                ]

            return run

        (w_float, c_float) = _best(run_float, repeat)
        (w_fnoise, c_fnoise) = _best(float_noise, repeat)
        (w_bat, c_bat) = _best(run_int("batched"), repeat)
        (w_inoise, c_inoise) = _best(int_noise, repeat)
        (w_int, c_int) = _best(run_int("c"), repeat) if not no_c else (None, None)
    finally:
        ism.close()
    for a, b in zip(counts["batched"], counts["c"]):
        if not np.array_equal(a, b):
            raise DitmosError(f"batched integer counts {a.tolist()} differ from the C model's {b.tolist()}")
    preds = n * len(idx)
    res = {
        "run": str(run_dir),
        "sigma": sigma,
        "n": n,
        "samples": int(len(idx)),
        "repeat": repeat,
        "threads": threads,
        "float_batch": float_batch,
        "int_batch": int_batch,
        "tensorflow_threads_applied": tf_threads,
        "integer_counts_identical": None if no_c else True,
    }
    rows = [
        ("float", "float smoothing (TensorFlow, routed)", w_float, c_float),
        ("float_noise", "  of which the Gaussian noise", w_fnoise, c_fnoise),
        ("batched", "integer smoothing (batched, LiteRT int8)", w_bat, c_bat),
        ("batched_noise", "  of which the integer noise", w_inoise, c_inoise),
    ]
    if not no_c:
        rows.append(("int", "integer smoothing (generated int8 C, host)", w_int, c_int))
    for k, _, w, c in rows:
        res[f"{k}_wall_seconds"], res[f"{k}_cpu_seconds"] = w, c
        res[f"{k}_cpu_ms_per_prediction"] = 1e3 * c / preds
    res["ratio_wall_float_over_batched"] = w_float / w_bat
    res["ratio_cpu_float_over_batched"] = c_float / c_bat
    if not no_c:
        res["ratio_wall_float_over_int"] = w_float / w_int
        res["ratio_cpu_float_over_int"] = c_float / c_int
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    click.echo(
        f"{len(idx)} windows x {n} noisy predictions, best of {repeat}, {threads} "
        f"thread(s); batches: float {float_batch}, integer {int_batch}"
    )
    if not tf_threads:
        click.echo("note: TensorFlow was already initialised in this process; --threads was not applied to it")
    click.echo(f"{'':48s}{'wall s':>9s}{'CPU s':>9s}{'CPU ms/prediction':>19s}")
    for k, label, w, c in rows:
        click.echo(f"{label:48s}{w:9.2f}{c:9.2f}{res[k + '_cpu_ms_per_prediction']:19.4f}")
    if not no_c:
        click.echo("integer counts: batched == C on every window")
    click.echo(
        f"ratio float / integer batched: wall {res['ratio_wall_float_over_batched']:.2f}x, "
        f"CPU {res['ratio_cpu_float_over_batched']:.2f}x"
    )
    if not no_c:
        click.echo(
            f"ratio float / integer C:       wall {res['ratio_wall_float_over_int']:.2f}x, "
            f"CPU {res['ratio_cpu_float_over_int']:.2f}x"
        )
