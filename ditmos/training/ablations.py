"""Ablations of DiTMoS (docs/method.md): each one is a full DiTMoS run with one part of
the method switched off through a config override, on the same data, split
and seed as the reference run.

``random_split``
    classifiers are pre-trained on a random partition of the training set
    instead of KMeans clusters of the strong model's features
    (``split.method = "random"``).
``no_adversarial``
    no adversarial alternation: the run ends after classifier and selector
    pre-training (``adversarial.rounds = 0``).
``no_aggregation``
    classifiers do not read the selector's feature maps
    (``architecture.shared_blocks = []``); they become independent CNNs of the
    same block pattern (fewer MACs, since the concatenated channels are gone).
``no_generalist``
    no generalist stage: the heads start from random weights and the run
    has no single-network fallback (``generalist.epochs = 0``).
``no_fallback``
    the generalist initialises the heads but is not a model-selection
    candidate itself (``generalist.fallback = false``).
``kmeans_split``
    the reference's routing targets: KMeans clusters of the strong model's
    features, the selector trained towards the best classifier per sample
    (``split.method = "kmeans"``, ``routing.target = "best_classifier"``).
``no_overlap``
    class-pure pre-training: every head only sees its own cluster
    (``classifier_pretrain.out_weight = 0``).
``no_restarts``
    one generalist initialisation instead of the best of several on
    validation (``generalist.restarts = 1``).
``distill``
    the generalist is also distilled from the strong model
    (``generalist.distill = 0.5``).
``weight_average``
    the generalist ends with the mean weights of its last half of epochs
    instead of its best epoch on validation
    (``generalist.average_epochs = epochs // 2``).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from ditmos.errors import DitmosError

ABLATIONS = (
    "random_split",
    "no_adversarial",
    "no_aggregation",
    "no_generalist",
    "no_fallback",
    "kmeans_split",
    "no_overlap",
    "no_restarts",
    "distill",
    "weight_average",
)


def ablation_overrides(name: str, base: dict) -> dict:
    """Config override (to deep-merge over the base config) for ablation ``name``.

    ``base`` is the reference run's resolved config (its architecture is copied
    because the config loader replaces ``architecture`` as a whole)."""
    if name == "random_split":
        return {"split": {"method": "random"}}
    if name == "no_adversarial":
        return {"adversarial": {"rounds": 0}}
    if name == "no_aggregation":
        arch = copy.deepcopy(base["architecture"])
        arch["shared_blocks"] = []
        return {"architecture": arch}
    if name == "no_generalist":
        return {"generalist": {"epochs": 0}}
    if name == "no_fallback":
        return {"generalist": {"fallback": False}}
    if name == "kmeans_split":
        return {"split": {"method": "kmeans"}, "routing": {"target": "best_classifier"}}
    if name == "no_overlap":
        return {"classifier_pretrain": {"out_weight": 0.0}}
    if name == "no_restarts":
        return {"generalist": {"restarts": 1}}
    if name == "distill":
        return {"generalist": {"distill": 0.5}}
    if name == "weight_average":
        return {"generalist": {"average_epochs": max(1, int(base["generalist"]["epochs"]) // 2)}}
    raise DitmosError(f"unknown ablation '{name}'; choose one of {list(ABLATIONS)}")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "architecture":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def write_ablation_config(name: str, dataset: str, preset: str, path, *, config_file=None) -> Path:
    """Write the config file of ablation ``name``: the user's ``config_file``
    (if any) with the ablation's override on top."""
    from ditmos.training.config import load_config_file, resolve_config

    user = load_config_file(config_file) if config_file is not None else {}
    base = resolve_config(dataset, preset, config_file=config_file)
    cfg = _merge(user, ablation_overrides(name, base))
    for key in ("dataset", "preset", "width", "seed"):
        cfg.pop(key, None)  # given to train_run explicitly
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def run_ablation(
    name: str,
    dataset: str,
    preset: str,
    out_dir,
    *,
    config_file=None,
    width: float = 1.0,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
) -> Path:
    """Train the full DiTMoS run of ablation ``name`` into ``out_dir``."""
    from ditmos.training import train_run

    out_dir = Path(out_dir)
    cfg_path = write_ablation_config(
        name, dataset, preset, out_dir.parent / f"{out_dir.name}.config.json", config_file=config_file
    )
    return Path(
        train_run(dataset, preset, out_dir, config_file=cfg_path, width=width, seed=seed, resume=resume, quiet=quiet)
    )
