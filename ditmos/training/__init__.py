"""ditmos.training: the DiTMoS training stages, run directory and CLI.

``train_run(dataset, preset, out_dir, ...)`` trains a run (see
``ditmos.training.run``); ``ditmos.training.rundir.load_run_data(run_dir)``
reloads its data.  TensorFlow is imported only when training starts.
"""

from __future__ import annotations


def train_run(
    dataset: str,
    preset: str,
    out_dir,
    *,
    config_file=None,
    width: float = 1.0,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    overrides=None,
):
    from ditmos.training.run import train_run as _train_run

    return _train_run(
        dataset,
        preset,
        out_dir,
        config_file=config_file,
        width=width,
        seed=seed,
        resume=resume,
        quiet=quiet,
        overrides=overrides,
    )


__all__ = ["train_run"]
