"""Training configuration: presets (``quick``, ``full``), overrides, validation.

A config is a plain JSON-able dict.  ``resolve_config`` starts from the preset,
deep-merges the user's ``--config`` file over it (unknown keys are errors, at
any depth), applies ``--width`` and ``--seed`` and validates everything before
any training starts.  The resolved dict is what ``config.json`` stores.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from ditmos.errors import DitmosError
from ditmos.training import augment
from ditmos.models.arch import (
    Architecture,
    architecture_from_dict,
    check_fits,
    default_architecture_dict,
    family_for_dataset,
)

PRESETS = ("quick", "full")
OPTIMIZERS = ("sgd_nesterov", "adam")
SPLIT_METHODS = ("kmeans", "class_kmeans", "random", "confusion")
ROUTING_TARGETS = ("best_classifier", "cluster")

# The generalist stage (off when epochs = 0): the selector's shared blocks and
# ONE classifier head trained together on all training data -- a single
# network with the selector as its trunk -- then copied into the K heads.
_GENERALIST_OFF = {
    "epochs": 0,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 0.003,
    "lr_halve_every": 6,
    "distill": 0.0,
    "temperature": 4.0,
    "fallback": True,
    "freeze_trunk": True,
    "restarts": 1,
    "probe_epochs": 0,
}
# optional generalist keys (absent = off), left out of the presets so that runs
# started before they existed still resume: "average_epochs" (0),
# "label_smoothing" (0), "precise_bn" (false)

# The full schedule.  The authors' reference schedule (SGD at batch 8, 30
# classifier + 20 selector pre-training epochs, 40 rounds of 6 + 6
# adversarial epochs) trains every head from scratch; here the heads start
# from the generalist, so pre-training fine-tunes and a few rounds at batch 32
# suffice.  The reference schedule is still reachable through a config file.
# The strong model's validation accuracy plateaus within ~10 epochs on hapt.
_FULL = {
    "strong": {"epochs": 15, "batch_size": 64, "optimizer": "adam", "lr": 0.002, "lr_halve_every": 5},
    "split": {"method": "confusion", "n_init": 50, "max_iter": 300},
    "generalist": dict(_GENERALIST_OFF, epochs=60, lr=0.002, lr_halve_every=20, restarts=3, probe_epochs=5),
    "classifier_pretrain": {
        "epochs": 10,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 0.001,
        "lr_halve_every": 5,
        "out_weight": 0.3,
    },
    "routing": {"target": "cluster"},
    "selector_pretrain": {"epochs": 10, "batch_size": 32, "optimizer": "adam", "lr": 0.002, "lr_halve_every": 5},
    "adversarial": {
        "rounds": 10,
        "selector_epochs": 2,
        "classifier_epochs": 2,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 0.001,
        "lr_halve_every": 10,
    },
    "loss_weights": {"union": 0.1, "overlap": 0.03, "single": 0.1, "selection": 1.0},
    "bn_momentum": 0.9,
    "eval_batch_size": 1024,
    # small batches make every op tiny: one intra-op thread halves the CPU time
    # per step (thread-pool hand-offs dominate otherwise); 0 = TensorFlow's default
    "threads": 1,
}

# Demo/CI schedule: large batches, few epochs, same stages and losses; about
# two minutes on hapt on two cores (`ditmos bench train`).  The heads start
# from the generalist, so their pre-training is a short fine-tune.
_QUICK = {
    "strong": {"epochs": 2, "batch_size": 128, "optimizer": "adam", "lr": 0.004, "lr_halve_every": 2},
    "split": {"method": "confusion", "n_init": 4, "max_iter": 100},
    # restarts: at width 0.125 a generalist whose few channels die at
    # initialisation stays near 55% on hapt; the best of 3 starts does not
    "generalist": dict(_GENERALIST_OFF, epochs=20, restarts=3, probe_epochs=3),
    "classifier_pretrain": {
        "epochs": 4,
        "batch_size": 64,
        "optimizer": "adam",
        "lr": 0.003,
        "lr_halve_every": 2,
        "out_weight": 0.3,
    },
    "routing": {"target": "cluster"},
    "selector_pretrain": {"epochs": 3, "batch_size": 128, "optimizer": "adam", "lr": 0.003, "lr_halve_every": 3},
    "adversarial": {
        "rounds": 3,
        "selector_epochs": 1,
        "classifier_epochs": 1,
        "batch_size": 128,
        "optimizer": "adam",
        "lr": 0.002,
        "lr_halve_every": 4,
    },
    "loss_weights": {"union": 0.1, "overlap": 0.03, "single": 0.1, "selection": 1.0},
    "bn_momentum": 0.9,
    "eval_batch_size": 1024,
    "threads": 0,
}

_SCHEDULES = {"quick": _QUICK, "full": _FULL}

_STAGE_KEYS = {"epochs", "batch_size", "optimizer", "lr", "lr_halve_every"}
# the comparison's baselines (`train --compare`): their schedule, see
# ditmos.training.baselines.DEFAULTS
BASELINE_KEYS = {"epochs", "batch_size", "lr", "depths", "tolerance", "early_exit_mac_factor", "only"}
_ALLOWED = {
    "dataset": None,
    "preset": None,
    "seed": None,
    "width": None,
    "subset": None,
    # the data split's seed: fixed by default, so that --seed varies only the
    # initialisation and the training order, not which subjects are tested
    "split_seed": None,
    "architecture": None,
    "strong": _STAGE_KEYS,
    "split": {"method", "n_init", "max_iter"},
    "generalist": _STAGE_KEYS
    | {
        "distill",
        "temperature",
        "fallback",
        "freeze_trunk",
        "restarts",
        "probe_epochs",
        "average_epochs",
        "label_smoothing",
        "precise_bn",
    },
    "classifier_pretrain": _STAGE_KEYS | {"out_weight"},
    "routing": {"target"},
    "selector_pretrain": _STAGE_KEYS,
    "adversarial": {
        "rounds",
        "selector_epochs",
        "classifier_epochs",
        "batch_size",
        "optimizer",
        "lr",
        "lr_halve_every",
    },
    "loss_weights": {"union", "overlap", "single", "selection"},
    "bn_momentum": None,
    "eval_batch_size": None,
    "threads": None,
    # training for randomized smoothing (docs/smoothing.md); absent = plain training
    "smoothing": {"method", "sigma"},
    # augmentation of the strong model's and the generalist's training windows
    # (ditmos.training.augment); absent = none
    "augment": {"shift", "scale", "offset", "jitter"},
    # the schedule of the baselines `train --compare` trains beside DiTMoS
    "baselines": BASELINE_KEYS,
}
SMOOTHING_METHODS = ("none", "gaussian")


def preset_config(dataset: str, preset: str) -> dict:
    if preset not in _SCHEDULES:
        raise DitmosError(f"unknown preset '{preset}'; choose one of {list(PRESETS)}")
    cfg = {
        "dataset": dataset,
        "preset": preset,
        "seed": 0,
        "split_seed": 0,
        "width": 1.0,
        "subset": None,
        "architecture": default_architecture_dict(family_for_dataset(dataset)),
    }
    cfg.update(copy.deepcopy(_SCHEDULES[preset]))
    return cfg


def _merge(base: dict, over: dict, where: str) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "architecture":
            out[k] = _merge(out[k], v, f"{where}.{k}" if where else k)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _check_unknown(over: dict, source: str) -> None:
    if not isinstance(over, dict):
        raise DitmosError(f"{source} must hold a JSON object at top level")
    for k, v in over.items():
        if k not in _ALLOWED:
            raise DitmosError(f"unknown key '{k}' in {source}; allowed: {sorted(_ALLOWED)}")
        allowed = _ALLOWED[k]
        if allowed is not None:
            if not isinstance(v, dict):
                raise DitmosError(f"'{k}' in {source} must be an object")
            bad = sorted(set(v) - allowed)
            if bad:
                raise DitmosError(f"unknown key(s) {bad} in '{k}' of {source}; allowed: {sorted(allowed)}")


def load_config_file(path) -> dict:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise DitmosError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DitmosError(f"config file {p} is not valid JSON (line {e.lineno}: {e.msg})") from None
    _check_unknown(data, f"config file {p}")
    return data


def _num(v, where: str, lo: float, hi: float, integer: bool = False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if integer:
        ok = ok and isinstance(v, int)
    if not ok or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        raise DitmosError(f"config '{where}' must be {kind} in [{lo}, {hi}], got {v!r}")
    return v


def validate_schedule(cfg: dict) -> None:
    for stage in ("strong", "generalist", "classifier_pretrain", "selector_pretrain"):
        s = cfg[stage]
        missing = _STAGE_KEYS - set(s)
        if missing:
            raise DitmosError(f"config '{stage}' is missing {sorted(missing)}")
        _num(s["epochs"], f"{stage}.epochs", 0, 10000, True)
        _num(s["batch_size"], f"{stage}.batch_size", 1, 1 << 16, True)
        _num(s["lr"], f"{stage}.lr", 1e-8, 10.0)
        _num(s["lr_halve_every"], f"{stage}.lr_halve_every", 0, 10000, True)
        if s["optimizer"] not in OPTIMIZERS:
            raise DitmosError(f"config '{stage}.optimizer' must be one of {list(OPTIMIZERS)}, got {s['optimizer']!r}")
    g = cfg["generalist"]
    _num(g["distill"], "generalist.distill", 0.0, 1.0)
    _num(g["temperature"], "generalist.temperature", 0.1, 100.0)
    _num(g.get("restarts", 1), "generalist.restarts", 1, 100, True)
    _num(g.get("probe_epochs", 0), "generalist.probe_epochs", 0, 10000, True)
    _num(g.get("average_epochs", 0), "generalist.average_epochs", 0, 10000, True)
    _num(g.get("label_smoothing", 0.0), "generalist.label_smoothing", 0.0, 0.5)
    for k in ("fallback", "freeze_trunk", "precise_bn"):
        if not isinstance(g.get(k, False), bool):
            raise DitmosError(f"config 'generalist.{k}' must be true or false, got {g[k]!r}")
    _num(cfg["classifier_pretrain"].get("out_weight", 0.0), "classifier_pretrain.out_weight", 0.0, 1.0)
    if cfg["routing"]["target"] not in ROUTING_TARGETS:
        raise DitmosError(
            f"config 'routing.target' must be one of {list(ROUTING_TARGETS)}, got {cfg['routing']['target']!r}"
        )
    adv = cfg["adversarial"]
    for k in ("rounds", "selector_epochs", "classifier_epochs", "lr_halve_every"):
        _num(adv[k], f"adversarial.{k}", 0, 10000, True)
    _num(adv["batch_size"], "adversarial.batch_size", 1, 1 << 16, True)
    _num(adv["lr"], "adversarial.lr", 1e-8, 10.0)
    if adv["optimizer"] not in OPTIMIZERS:
        raise DitmosError(f"config 'adversarial.optimizer' must be one of {list(OPTIMIZERS)}")
    if cfg["split"]["method"] not in SPLIT_METHODS:
        raise DitmosError(f"config 'split.method' must be one of {list(SPLIT_METHODS)}, got {cfg['split']['method']!r}")
    _num(cfg["split"]["n_init"], "split.n_init", 1, 1000, True)
    _num(cfg["split"]["max_iter"], "split.max_iter", 1, 100000, True)
    for k, v in cfg["loss_weights"].items():
        _num(v, f"loss_weights.{k}", 0.0, 1000.0)
    _num(cfg["bn_momentum"], "bn_momentum", 0.0, 0.9999)
    _num(cfg["eval_batch_size"], "eval_batch_size", 1, 1 << 20, True)
    _num(cfg.get("threads", 0), "threads", 0, 1024, True)
    _num(cfg["seed"], "seed", 0, 2**31 - 1, True)
    _num(cfg["split_seed"], "split_seed", 0, 2**31 - 1, True)
    _num(cfg["width"], "width", 1e-3, 16.0)
    if cfg.get("subset") is not None:
        _num(cfg["subset"], "subset", 10, 10**9, True)


def resolve_config(
    dataset: str,
    preset: str,
    *,
    config_file=None,
    width: float | None = None,
    seed: int | None = None,
    overrides: dict | None = None,
) -> dict:
    """Preset + config file + explicit arguments -> validated config dict.

    Shape checks against the data happen later in :func:`check_against_data`.
    """
    cfg = preset_config(dataset, preset)
    if config_file is not None:
        cfg = _merge(cfg, load_config_file(config_file), "")
    if overrides:
        _check_unknown(overrides, "the overrides")
        cfg = _merge(cfg, overrides, "")
    cfg["dataset"], cfg["preset"] = dataset, preset
    if width is not None:
        cfg["width"] = width
    if seed is not None:
        cfg["seed"] = seed
    validate_schedule(cfg)
    _validate_smoothing(cfg)
    augment.validate(cfg.get("augment"))
    architecture(cfg)  # validates the architecture block
    if cfg.get("baselines"):  # values checked now, not after DiTMoS trained
        from ditmos.training.baselines import baseline_config

        baseline_config(preset if preset in _SCHEDULES else "quick", cfg["baselines"])
    return cfg


def _validate_smoothing(cfg: dict) -> None:
    sm = cfg.get("smoothing")
    if sm is None:
        return
    method = sm.get("method", "none")
    if method not in SMOOTHING_METHODS:
        raise DitmosError(f"config 'smoothing.method' must be one of {list(SMOOTHING_METHODS)}, got {method!r}")
    if method != "none":
        _num(sm.get("sigma"), "smoothing.sigma", 1e-6, 10.0)


def smoothing_sigma(cfg: dict) -> float:
    """Std of the Gaussian noise added to training windows (0 = none)."""
    sm = cfg.get("smoothing") or {}
    return float(sm.get("sigma", 0.0)) if sm.get("method", "none") == "gaussian" else 0.0


def architecture(cfg: dict) -> Architecture:
    return architecture_from_dict(cfg["architecture"], width=float(cfg["width"]))


def check_against_data(cfg: dict, input_shape: tuple[int, int], n_train: int, num_classes: int) -> None:
    """Reject configs that cannot work on this data, before any training."""
    arch = architecture(cfg)
    check_fits(arch, input_shape)
    # each cluster must be able to fill at least one pre-training batch on average
    per_cluster = n_train // arch.K
    need = max(2, min(cfg["classifier_pretrain"]["batch_size"], 8))
    if per_cluster < need:
        raise DitmosError(
            f"K = {arch.K} is too large for {n_train} training samples: each cluster would "
            f"hold about {per_cluster} samples (need at least {need}); lower architecture.K"
        )
    if num_classes < 2:
        raise DitmosError(f"the dataset has {num_classes} class; DiTMoS needs at least 2")
