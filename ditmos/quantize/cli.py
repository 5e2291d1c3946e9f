"""``ditmos quantize RUN_DIR``."""

from __future__ import annotations

import click


@click.command("quantize")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--calibration-samples",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Training windows used to calibrate the int8 ranges.",
)
@click.option(
    "--calibration-noise",
    default=0.0,
    show_default=True,
    type=float,
    metavar="SIGMA",
    help="Also calibrate on a copy of the calibration windows under Gaussian "
    "noise of this std (normalised units): for a model certified with "
    "randomized smoothing at that sigma (DiTMoS runs).",
)
@click.option(
    "--method",
    default="ditmos",
    show_default=True,
    help="Which method of RUN_DIR's comparison (`ditmos train --compare`) to "
    "convert: ditmos, an ablation_<name>, weak_equal_macs, equal_params or "
    "early_exit. Its int8/ goes into that method's own run directory.",
)
@click.option("--quiet", is_flag=True, help="No progress output (for CI).")
def quantize(run_dir: str, calibration_samples: int, calibration_noise: float, method: str, quiet: bool) -> None:
    """Convert RUN_DIR's selector and classifiers to full-int8 TFLite.

    Writes RUN_DIR/int8/ (one .tflite per sub-model and manifest.json), runs the
    composed int8 inference on the test split in the TFLM interpreter and
    records float vs int8 accuracy in RUN_DIR/metrics.json.  With --method a
    single CNN or the early-exit CNN of the comparison becomes one int8
    network (with an int8 confidence output per exit); an ablation is a
    DiTMoS run like RUN_DIR.  The path of the int8 directory is printed.
    """
    from ditmos.quantize.run import quantize_run

    out = quantize_run(
        run_dir,
        calibration_samples=calibration_samples,
        quiet=quiet,
        method=method,
        calibration_noise=calibration_noise,
    )
    click.echo(str(out))
