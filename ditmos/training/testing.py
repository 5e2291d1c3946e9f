"""Test helpers other stages' tests can use (e.g. as a session fixture).

``tiny_run(tmp_dir)`` trains a real but very short DiTMoS run on a subset of
the shipped hapt data (600 training windows, 300 val, 300 test; K = 3;
every stage runs) and returns the run directory.  Calling it again with the
same directory reuses the finished run.
"""

from __future__ import annotations

from pathlib import Path

TINY_OVERRIDES = {
    "subset": 600,
    "architecture": None,  # filled in by tiny_config()
    "strong": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 0.003,
               "lr_halve_every": 0},
    "split": {"method": "kmeans", "n_init": 2, "max_iter": 50},
    "classifier_pretrain": {"epochs": 3, "batch_size": 32, "optimizer": "adam", "lr": 0.003,
                            "lr_halve_every": 0},
    "selector_pretrain": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 0.003,
                          "lr_halve_every": 0},
    "adversarial": {"rounds": 1, "selector_epochs": 1, "classifier_epochs": 1,
                    "batch_size": 64, "optimizer": "adam", "lr": 0.002, "lr_halve_every": 0},
}


def tiny_config() -> dict:
    """Config overrides of the tiny run: hapt subset, K = 3, a small strong model."""
    from ditmos.models.arch import default_architecture_dict

    arch = default_architecture_dict("har")
    arch["K"] = 3
    arch["strong"] = {"blocks": [{"filters": 16, "kernel": 9, "pool": 2},
                                 {"filters": 16, "kernel": 5, "pool": 2}], "fc": [32]}
    cfg = dict(TINY_OVERRIDES)
    cfg["architecture"] = arch
    return cfg


def tiny_run(tmp_dir, *, seed: int = 0) -> Path:
    """Train (or reuse) the tiny run in ``tmp_dir/run``; returns the run directory."""
    from ditmos.training.run import train_run

    run_dir = Path(tmp_dir) / "run"
    if (run_dir / "metrics.json").exists():
        return run_dir
    return train_run("hapt", "quick", run_dir, seed=seed, quiet=True,
                     resume=(run_dir / "config.json").exists(), overrides=tiny_config())
