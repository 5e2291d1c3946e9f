"""Reading a run directory back (docs/artefacts.md section 2)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.jsonio import read_json


@dataclass
class RunData:
    """A run's normalised data splits plus its config and export info."""

    run_dir: Path
    config: dict
    class_names: list[str]
    export: dict
    normalization: dict
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    metrics: dict | None = field(default=None)

    @property
    def input_shape(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_run_data(run_dir) -> RunData:
    """Reload the dataset named in ``config.json``, apply ``splits.npz`` and the saved normalisation."""
    from ditmos.data import Normalizer, Splits, load_dataset

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DitmosError(f"run directory {run_dir} does not exist")
    hint = f"is {run_dir} a finished `ditmos train` run directory?"
    cfg = read_json(run_dir / "config.json", hint)
    single = [run_dir / "robust.json", run_dir / "smoothing.json"]
    single = [p for p in single if p.is_file()]
    if not (run_dir / "export" / "export.json").exists() and single:
        # a single-CNN run (ditmos train --model single --robust MODE / --smoothing METHOD)
        info = read_json(single[0], hint)
        export = {"model": "single", "input_shape": info["input_shape"]}
    else:
        export = read_json(run_dir / "export" / "export.json", hint)
    norm = Normalizer.load(run_dir / "normalization.json")
    splits = Splits.load(run_dir / "splits.npz")
    ds = load_dataset(cfg["dataset"])
    n = len(ds.y)
    for name in ("train", "val", "test"):
        idx = getattr(splits, name)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise DitmosError(
                f"{run_dir / 'splits.npz'}: '{name}' indices do not fit dataset "
                f"'{cfg['dataset']}' ({n} windows); was it trained on other data?"
            )
    if list(ds.X.shape[1:]) != list(export["input_shape"]):
        raise DitmosError(
            f"dataset '{cfg['dataset']}' now has windows {list(ds.X.shape[1:])} "
            f"but {run_dir} was trained on {export['input_shape']}"
        )
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    arrays = {}
    for name in ("train", "val", "test"):
        idx = getattr(splits, name)
        arrays[f"x_{name}"] = norm.apply(ds.X[idx])
        arrays[f"y_{name}"] = ds.y[idx].astype(np.int64)
    return RunData(
        run_dir=run_dir,
        config=cfg,
        class_names=list(ds.class_names),
        export=export,
        normalization=norm.to_dict(),
        metrics=metrics,
        **arrays,
    )


def write_model_run(run_dir, *, config: dict, splits, normalizer, model, name: str) -> None:
    """The files a single-model run (robust or smoothing training) starts with,
    each written atomically: versions.json, splits.npz, normalization.json,
    config.json and models/NAME.keras.  The caller writes its own summary
    file last; that file marks the run as finished."""
    import io

    from ditmos.training.checkpoint import atomic_write_bytes, atomic_write_json
    from ditmos.training.run import _versions

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "versions.json", _versions())
    buf = io.BytesIO()
    np.savez(buf, train=splits.train, val=splits.val, test=splits.test)
    atomic_write_bytes(run_dir / "splits.npz", buf.getvalue())
    atomic_write_json(run_dir / "normalization.json", normalizer.to_dict())
    atomic_write_json(run_dir / "config.json", config)
    (run_dir / "models").mkdir(exist_ok=True)
    tmp = run_dir / "models" / f".{name}.tmp.keras"
    model.save(tmp)
    tmp.replace(run_dir / "models" / f"{name}.keras")
