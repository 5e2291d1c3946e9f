"""Test helpers other stages' tests can use (e.g. as a session fixture).

``tiny_run(tmp_dir)`` trains a real but very short DiTMoS run on a subset of
the shipped hapt data (600 training windows, 300 val, 300 test; K = 3;
every stage runs) and returns the run directory.  Calling it again with the
same directory reuses the finished run.  ``tiny_run(tmp_dir, dataset="fsdd")``
does the same on the shipped fsdd MFCC frames with the dataset's own
architecture family (``mfcc``), also K = 3 and a small strong model.
"""

from __future__ import annotations

from pathlib import Path

TINY_OVERRIDES = {
    "subset": 600,
    "architecture": None,  # filled in by tiny_config()
    "strong": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 0.003, "lr_halve_every": 0},
    "split": {"method": "confusion", "n_init": 2, "max_iter": 50},
    "generalist": {
        "epochs": 2,
        "batch_size": 64,
        "optimizer": "adam",
        "lr": 0.003,
        "lr_halve_every": 0,
        "restarts": 1,
        "probe_epochs": 0,
    },
    "classifier_pretrain": {"epochs": 3, "batch_size": 32, "optimizer": "adam", "lr": 0.003, "lr_halve_every": 0},
    "selector_pretrain": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 0.003, "lr_halve_every": 0},
    "adversarial": {
        "rounds": 1,
        "selector_epochs": 1,
        "classifier_epochs": 1,
        "batch_size": 64,
        "optimizer": "adam",
        "lr": 0.002,
        "lr_halve_every": 0,
    },
}


# A small strong model per architecture family (the presets' strong models
# take minutes to train; the tiny run only needs one that trains).
_TINY_STRONG = {
    "har": {"blocks": [{"filters": 16, "kernel": 9, "pool": 2}, {"filters": 16, "kernel": 5, "pool": 2}], "fc": [32]},
    "mfcc": {"blocks": [{"filters": 16, "kernel": 3, "pool": 2}, {"filters": 16, "kernel": 3, "pool": 2}], "fc": [32]},
}


def tiny_config(dataset: str = "hapt") -> dict:
    """Config overrides of the tiny run: a subset of ``dataset``, the dataset's
    architecture family with K = 3 and a small strong model."""
    from ditmos.models.arch import default_architecture_dict, family_for_dataset

    family = family_for_dataset(dataset)
    arch = default_architecture_dict(family)
    arch["K"] = 3
    arch["strong"] = dict(_TINY_STRONG[family])
    cfg = dict(TINY_OVERRIDES)
    cfg["architecture"] = arch
    return cfg


def tiny_run(tmp_dir, *, seed: int = 0, dataset: str = "hapt") -> Path:
    """Train (or reuse) the tiny run of ``dataset`` in ``tmp_dir/run``; returns
    the run directory."""
    from ditmos.training.run import train_run

    run_dir = Path(tmp_dir) / "run"
    if (run_dir / "metrics.json").exists():
        return run_dir
    return train_run(
        dataset,
        "quick",
        run_dir,
        seed=seed,
        quiet=True,
        resume=(run_dir / "config.json").exists(),
        overrides=tiny_config(dataset),
    )
