"""``train_run``: one DiTMoS training run from dataset spec to run directory.

Writes the run directory of docs/artefacts.md section 2.  Every stage is
resumable; with ``resume=True`` an interrupted run continues from its last
checkpoint and (op determinism is switched on) ends in the same metrics as an
uninterrupted run with the same seed.
"""

from __future__ import annotations

import io
import json
import platform
import time
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.training.checkpoint import atomic_write_bytes, atomic_write_json
from ditmos.training.config import architecture, check_against_data, resolve_config
from ditmos.training.progress import Reporter

_RUN_FILES = ("config.json", "splits.npz", "normalization.json")


def _versions() -> dict:
    import keras
    import sklearn
    import tensorflow as tf

    import ditmos

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "ditmos": ditmos.__version__,
    }


def _subset(splits, n_train: int, seed: int):
    """Deterministic subset: ``n_train`` training windows, n_train//2 of val and test."""
    from ditmos.data import Splits

    rng = np.random.default_rng([seed, 7])

    def pick(a, n):
        return np.sort(rng.permutation(a)[:n])

    return Splits(
        train=pick(splits.train, n_train),
        val=pick(splits.val, max(n_train // 2, 1)),
        test=pick(splits.test, max(n_train // 2, 1)),
    )


def split_seed(cfg: dict) -> int:
    """The seed of the data split: ``split_seed`` (fixed, 0 by default), not the
    training seed, so that runs of several seeds are tested on the same subjects."""
    return int(cfg.get("split_seed", 0))


def prepare_data(cfg: dict, run_dir: Path | None = None, *, reuse: bool = False):
    """Load the dataset, split it (or reuse ``splits.npz``), fit/apply normalisation."""
    from ditmos.data import Normalizer, Splits, load_dataset, make_splits

    ds = load_dataset(cfg["dataset"])
    if reuse and run_dir is not None:
        splits = Splits.load(run_dir / "splits.npz")
        norm = Normalizer.load(run_dir / "normalization.json")
    else:
        splits = make_splits(ds, split_seed(cfg))
        if cfg.get("subset"):
            splits = _subset(splits, int(cfg["subset"]), split_seed(cfg))
        norm = Normalizer.fit(ds.X[splits.train])
    data = {"num_classes": len(ds.class_names), "class_names": list(ds.class_names)}
    for name in ("train", "val", "test"):
        idx = getattr(splits, name)
        data[f"x_{name}"] = norm.apply(ds.X[idx])
        data[f"y_{name}"] = ds.y[idx].astype(np.int64)
    return ds, splits, norm, data


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
    overrides: dict | None = None,
) -> Path:
    """Train DiTMoS on ``dataset`` with ``preset`` into ``out_dir``; returns the run dir.

    ``overrides`` is a config fragment merged last (same keys as a config file).
    """
    run_dir = Path(out_dir)
    cfg = resolve_config(dataset, preset, config_file=config_file, width=width, seed=seed, overrides=overrides)
    existing = run_dir / "config.json"
    reuse = False
    if existing.exists():
        if not resume:
            raise DitmosError(
                f"{run_dir} already holds a training run (config.json); pass "
                f"--resume to continue it or choose another --out"
            )
        old = json.loads(existing.read_text())
        if old != cfg:
            diff = sorted(k for k in set(old) | set(cfg) if old.get(k) != cfg.get(k))
            raise DitmosError(f"cannot resume {run_dir}: its config.json differs from this command's config in {diff}")
        reuse = all((run_dir / f).exists() for f in _RUN_FILES)
    elif run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise DitmosError(f"{run_dir} exists and is not empty; choose a new --out directory")

    import tensorflow as tf

    threads = int(cfg.get("threads", 0))
    thread_note = None
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already running in this process
            if tf.config.threading.get_intra_op_parallelism_threads() != threads:
                thread_note = f"threads={threads} not applied: TensorFlow was already initialised in this process"
    tf.config.experimental.enable_op_determinism()
    tf.random.set_seed(int(cfg["seed"]))

    ds, splits, norm, data = prepare_data(cfg, run_dir, reuse=reuse)
    input_shape = tuple(int(v) for v in ds.X.shape[1:])
    check_against_data(cfg, input_shape, len(splits.train), data["num_classes"])

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    if not reuse:
        atomic_write_json(run_dir / "versions.json", _versions())
        buf = io.BytesIO()
        np.savez(buf, train=splits.train, val=splits.val, test=splits.test)
        atomic_write_bytes(run_dir / "splits.npz", buf.getvalue())
        atomic_write_json(run_dir / "normalization.json", norm.to_dict())
        atomic_write_json(run_dir / "config.json", cfg)  # last: marks the run as started

    from ditmos.training.stages import STAGE_FUNCTIONS, STAGES, Trainer

    rep = Reporter(run_dir / "train.log", quiet)
    arch = architecture(cfg)
    split_note = "predefined split" if ds.split is not None else f"split seed {split_seed(cfg)}"
    rep.log(
        f"run {run_dir}: dataset {cfg['dataset']} {input_shape} x {len(ds.class_names)} "
        f"classes, preset {preset}, K={arch.K}, width {cfg['width']}, seed {cfg['seed']} "
        f"({split_note}); "
        f"train/val/test {len(splits.train)}/{len(splits.val)}/{len(splits.test)}"
    )
    if thread_note:
        rep.log(thread_note)
    tr = Trainer(cfg, arch, data, run_dir, rep)
    if resume and tr.resume():
        rep.log(f"resuming at stage {tr.progress['stage']} epoch {tr.progress['epoch']}")
    t0 = time.monotonic()
    for stage in STAGES:
        STAGE_FUNCTIONS[stage](tr)
    from ditmos.training.metrics import compute_metrics
    from ditmos.training.export import export_models

    rep.start_stage("export", 1)
    keras_params = export_models(tr, run_dir, input_shape, data["class_names"])
    rep.advance()
    rep.end_stage()
    metrics = compute_metrics(tr, data, input_shape, keras_params)
    metrics["timing"] = {
        "stage_seconds_this_process": rep.stage_times,
        "stage_cpu_seconds_this_process": rep.stage_cpu,
        "total_seconds_this_process": time.monotonic() - t0,
    }
    atomic_write_json(run_dir / "metrics.json", metrics)
    t = metrics["test"]["float"]
    rep.log(
        f"test: DiTMoS {t['ditmos']:.4f}, union {t['union']:.4f}, strong "
        f"{t['baselines']['strong']:.4f}, classifiers alone "
        f"{', '.join(f'{a:.3f}' for a in t['classifiers'])}"
    )
    return run_dir
