"""``ditmos bench certify``: float-smoothing time / integer-smoothing time.

Every side produces the class counts of ``n`` noisy predictions for the same
test windows of a quantised run, in one process, with the same number of
threads (``--threads``, default 1, for TensorFlow and LiteRT alike; the C
engines run one):

- float: Gaussian noise (numpy float32) + the float Keras DiTMoS in
  TensorFlow, ``--float-batch`` noisy windows per call, hard routing as on
  the device (the selector on every window, each classifier only on the
  windows routed to it);
- integer, fast (the headline): the device's vote loop, one C call per
  window, with the AVX2 twin of the device's integer noise and the generated
  int8 C model built with the host kernel set at ``-O3 -march=native``
  (``ditmos/smoothing/fast.py``);
- integer, batched: the device's noise, then the int8 sub-models in LiteRT's
  optimised integer kernels, ``--int-batch`` noisy windows per call
  (``ditmos/smoothing/batched.py``; ``--no-litert`` skips it);
- integer, reference C: the device's vote loop, portable noise and the
  generated C model with the reference kernels, i.e. what the device runs,
  compiled on the host (``--no-c`` skips it).

All integer engines must give identical counts on every window (checked
here, an error otherwise; the reference C engine is the judge when it runs).
Each side is also timed generating its noise alone (same windows, same
draws), so the model's share of the time is visible.

The passes are interleaved (float, fast, batched, reference, then again),
``--repeat`` times after one untimed warm-up window, and the best pass of
each side counts, in wall-clock time and in CPU time of the process (all
threads), so a change of load on a shared machine hits every side alike.
The CPU-time ratio is the steadier measure of the work each side does; both
are printed.  A ratio > 1 means integer smoothing is faster.
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
@click.option("--repeat", type=int, default=2, show_default=True, help="Timed passes per side (the best counts).")
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="Threads of the float and LiteRT sides (TensorFlow's intra- and inter-op "
    "pools, LiteRT's interpreter); the C engines always run one.",
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
    "--no-c", "no_c", is_flag=True, help="Skip the (slow) reference C engine, the judge of the integer counts."
)
@click.option("--no-litert", "no_litert", is_flag=True, help="Skip the batched LiteRT integer engine.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def command(run_dir, sigma, n, samples, repeat, threads, float_batch, int_batch, no_c, no_litert, as_json):
    """Time float vs integer-only smoothing on the same windows; print the ratios."""
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
    also = () if no_litert else ("batched",)
    ism = IntSmoother(run_dir / "int8", sigma, engine="fast", chunk=int_batch, threads=threads, also=also)
    engines = ["fast", *([] if no_litert else ["batched"]), *([] if no_c else ["c"])]
    counts: dict[str, list] = {e: [] for e in engines}
    try:
        x_q = ism.quantize(x)
        fsm.counts(x[0], min(n, float_batch), np.random.default_rng(0))  # warm-up (tracing)
        for e in engines:
            ism.counts(x_q[0], min(n, int_batch if e == "batched" else 10), 0, engine=e)

        def run_float():
            for j, i in enumerate(idx):
                fsm.counts(x[j], n, np.random.default_rng([0, int(i)]))

        def float_noise():
            for j, i in enumerate(idx):
                rng = np.random.default_rng([0, int(i)])
                for off in range(0, n, float_batch):
                    b = min(float_batch, n - off)
                    x[j][None] + (rng.standard_normal((b, *x[j].shape), dtype=np.float32) * np.float32(sigma))

        def int_noise(engine, batch):
            def run():
                for j, i in enumerate(idx):
                    for off in range(0, n, batch):
                        ism.noisy(x_q[j], min(batch, n - off), window_seed(0, int(i)), off, engine=engine)

            return run

        def run_int(engine):
            def run():
                counts[engine] = [
                    ism.counts(x_q[j], n, window_seed(0, int(i)), engine=engine) for j, i in enumerate(idx)
                ]

            return run

        passes = {"float": run_float, "float_noise": float_noise, "fast": run_int("fast")}
        passes["fast_noise"] = int_noise("fast", min(n, 1000))
        if not no_litert:
            passes["batched"] = run_int("batched")
            passes["batched_noise"] = int_noise("c", int_batch)
        if not no_c:
            passes["int"] = run_int("c")
        best = {k: (float("inf"), float("inf")) for k in passes}
        for _ in range(repeat):
            for k, fn in passes.items():
                w, c = _best(fn, 1)
                best[k] = (min(best[k][0], w), min(best[k][1], c))
    finally:
        ism.close()
    judge = "c" if not no_c else "fast"
    for e in engines:
        for j, (a, b) in enumerate(zip(counts[e], counts[judge])):
            if not np.array_equal(a, b):
                raise DitmosError(
                    f"window {int(idx[j])}: {e} integer counts {a.tolist()} differ from "
                    f"the {judge} engine's {b.tolist()}"
                )
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
        "integer_engines": engines,
        "integer_counts_identical": True if len(engines) > 1 else None,  # None: nothing to compare
    }
    labels = {
        "float": "float smoothing (TensorFlow, routed)",
        "float_noise": "  of which the Gaussian noise",
        "fast": "integer smoothing (fast C engine, AVX2)",
        "fast_noise": "  of which the integer noise",
        "batched": "integer smoothing (batched, LiteRT int8)",
        "batched_noise": "  of which the integer noise",
        "int": "integer smoothing (reference C, as on device)",
    }
    rows = [(k, labels[k], *best[k]) for k in passes]
    for k, _, w, c in rows:
        res[f"{k}_wall_seconds"], res[f"{k}_cpu_seconds"] = w, c
        res[f"{k}_cpu_ms_per_prediction"] = 1e3 * c / preds
    for k in ("fast", "batched", "int"):
        if k in passes:
            res[f"ratio_wall_float_over_{k}"] = best["float"][0] / best[k][0]
            res[f"ratio_cpu_float_over_{k}"] = best["float"][1] / best[k][1]
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    click.echo(
        f"{len(idx)} windows x {n} noisy predictions, best of {repeat} interleaved passes, {threads} "
        f"thread(s) for TensorFlow/LiteRT; batches: float {float_batch}, LiteRT {int_batch}"
    )
    if not tf_threads:
        click.echo("note: TensorFlow was already initialised in this process; --threads was not applied to it")
    click.echo(f"{'':48s}{'wall s':>9s}{'CPU s':>9s}{'CPU ms/prediction':>19s}")
    for k, label, w, c in rows:
        click.echo(f"{label:48s}{w:9.2f}{c:9.2f}{res[k + '_cpu_ms_per_prediction']:19.4f}")
    if len(engines) > 1:
        click.echo(f"integer counts: {' == '.join(engines)} on every window")
    for k, name in (("fast", "fast C"), ("batched", "batched LiteRT"), ("int", "reference C")):
        if k in passes:
            click.echo(
                f"ratio float / integer {name + ':':16s} wall {res[f'ratio_wall_float_over_{k}']:.2f}x, "
                f"CPU {res[f'ratio_cpu_float_over_{k}']:.2f}x"
            )
