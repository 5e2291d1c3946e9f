"""``ditmos quantize RUN_DIR``."""

from __future__ import annotations

import click


@click.command("quantize")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--calibration-samples", default=500, show_default=True, type=click.IntRange(min=1),
              help="Training windows used to calibrate the int8 ranges.")
@click.option("--quiet", is_flag=True, help="No progress output (for CI).")
def quantize(run_dir: str, calibration_samples: int, quiet: bool) -> None:
    """Convert RUN_DIR's selector and classifiers to full-int8 TFLite.

    Writes RUN_DIR/int8/ (one .tflite per sub-model and manifest.json), runs the
    composed int8 inference on the test split in the TFLM interpreter and
    records float vs int8 accuracy in RUN_DIR/metrics.json.
    """
    from ditmos.quantize.run import quantize_run

    out = quantize_run(run_dir, calibration_samples=calibration_samples, quiet=quiet)
    click.echo(str(out))
