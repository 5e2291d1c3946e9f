"""Train and evaluate the baselines DiTMoS is compared against (docs/method.md).

Same data, same split, same seed as the DiTMoS run; every trained baseline is
selected on the VALIDATION split (best epoch by validation accuracy) and the
test split is only evaluated, never looked at for a decision.

Baselines (names are the keys of ``metrics["test"]["float"]["baselines"]``):

``weak_equal_macs``
    one single CNN (the selector's block pattern, depth and width searched)
    with the MACs per inference of selector + one classifier (±10 %).
``equal_params``
    one single CNN with the parameters (flash) of the whole DiTMoS set
    (selector + K classifiers) (±10 %).
``strong``
    the strong model the run trained for data splitting (from the run).
``ensemble_average``
    the K trained DiTMoS classifiers, softmax-averaged (all K run).
``soft_moe``
    a soft-gated mixture of experts: a selector-shaped gating network and K
    classifier-shaped experts, gate-weighted sum of the experts, trained end to
    end (all K experts run).
``early_exit``
    a multi-exit CNN (input-adaptive): it stops at the first exit whose softmax
    confidence reaches a threshold.  The threshold is chosen on VALIDATION as
    the most accurate one whose average MACs stay within the DiTMoS budget
    (selector + one classifier); test accuracy and average test MACs are
    reported.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ditmos.errors import DitmosError
from ditmos.training.config import BASELINE_KEYS
from ditmos.models.baselines import (
    ConvNetSpec,
    Cost,
    build_convnet,
    build_early_exit,
    build_moe,
    count_cost,
    early_exit_costs,
    search_budget_spec,
    spec_cost,
    spec_from_net,
)

BASELINE_NAMES = ("weak_equal_macs", "equal_params", "strong", "ensemble_average", "soft_moe", "early_exit")
TRAINED = ("weak_equal_macs", "equal_params", "soft_moe", "early_exit")

# Training schedule of the trained baselines per preset.  ``depths`` lists the
# depths tried for the budget-matched single networks: one candidate per depth
# is trained and the best on validation is kept.
DEFAULTS = {
    "quick": {
        "epochs": 20,
        "batch_size": 64,
        "lr": 3e-3,
        "depths": [2, 3],
        "tolerance": 0.10,
        "early_exit_mac_factor": 2.0,
    },
    "full": {
        "epochs": 60,
        "batch_size": 64,
        "lr": 2e-3,
        "depths": [2, 3, 4],
        "tolerance": 0.10,
        "early_exit_mac_factor": 2.0,
    },
}
_KEYS = BASELINE_KEYS


def baseline_config(preset: str = "quick", overrides: dict | None = None) -> dict:
    """Defaults for ``preset`` with ``overrides`` applied and validated."""
    if preset not in DEFAULTS:
        raise DitmosError(f"unknown baseline preset '{preset}'; choose one of {sorted(DEFAULTS)}")
    cfg = dict(DEFAULTS[preset])
    cfg["only"] = list(BASELINE_NAMES)
    for key, value in (overrides or {}).items():
        if key not in _KEYS:
            raise DitmosError(f"unknown baseline config key '{key}'; allowed: {sorted(_KEYS)}")
        cfg[key] = value
    for key in ("epochs", "batch_size"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
            raise DitmosError(f"baseline config '{key}' must be an integer >= 1, got {cfg[key]!r}")
    if not (isinstance(cfg["lr"], (int, float)) and cfg["lr"] > 0):
        raise DitmosError(f"baseline config 'lr' must be a positive number, got {cfg['lr']!r}")
    unknown = sorted(set(cfg["only"]) - set(BASELINE_NAMES))
    if unknown:
        raise DitmosError(f"unknown baseline(s) {unknown}; choose from {list(BASELINE_NAMES)}")
    return cfg


# --------------------------------------------------------------------------- #
# The budget: what DiTMoS costs
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Budget:
    """DiTMoS's costs at one width, in the baselines' cost model."""

    input_shape: tuple[int, int]
    num_classes: int
    K: int
    selector: ConvNetSpec
    classifier: ConvNetSpec
    shared_side: dict[int, int] = field(default_factory=dict)

    @property
    def selector_cost(self) -> Cost:
        return spec_cost(self.selector, self.input_shape, self.K)

    @property
    def classifier_cost(self) -> Cost:
        return spec_cost(self.classifier, self.input_shape, self.num_classes, side=self.shared_side)

    @property
    def inference_macs(self) -> int:
        """Selector + one classifier (all classifiers have the same shape)."""
        return self.selector_cost.macs + self.classifier_cost.macs

    @property
    def total(self) -> Cost:
        c = self.classifier_cost
        return self.selector_cost + Cost(self.K * c.macs, self.K * c.params, self.K * c.biases)

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "K": self.K,
            "selector": self.selector.to_dict(),
            "classifier": self.classifier.to_dict(),
            "shared_side": {str(k): v for k, v in self.shared_side.items()},
            "inference_macs": self.inference_macs,
            "total_params": self.total.params,
            "total_flash_bytes": self.total.flash_bytes,
        }


def budget_from_architecture(arch, input_shape: Sequence[int], num_classes: int) -> Budget:
    """Budget of a :class:`ditmos.models.arch.Architecture` (already width-scaled)."""
    side = {b: arch.selector.blocks[b - 1].filters for b in arch.shared_blocks}
    return Budget(
        input_shape=(int(input_shape[0]), int(input_shape[1])),
        num_classes=int(num_classes),
        K=int(arch.K),
        selector=spec_from_net(arch.selector),
        classifier=spec_from_net(arch.classifier),
        shared_side=side,
    )


# --------------------------------------------------------------------------- #
# Training helpers
# --------------------------------------------------------------------------- #


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        from rich.console import Console

        Console(stderr=True).print(msg, highlight=False)


def _predict(model, x: np.ndarray, batch: int = 1024):
    """Model outputs on ``x`` (list for multi-output models), inference mode."""
    outs = None
    for i in range(0, len(x), batch):
        o = model(x[i : i + batch], training=False)
        o = [np.asarray(t) for t in o] if isinstance(o, (list, tuple)) else [np.asarray(o)]
        outs = [[t] for t in o] if outs is None else [acc + [t] for acc, t in zip(outs, o)]
    return [np.concatenate(parts) for parts in outs]


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def _fit(
    model,
    data,
    *,
    cfg: dict,
    seed: int,
    n_outputs: int = 1,
    score: Callable[[list[np.ndarray]], float] | None = None,
    quiet: bool = True,
    label: str = "",
) -> dict:
    """Train with Adam + cosine decay; keep the weights of the epoch with the
    best validation score (default: accuracy of the last output)."""
    import keras

    keras.utils.set_random_seed(seed)
    x, y = data.x_train, np.asarray(data.y_train)
    steps = math.ceil(len(x) / cfg["batch_size"]) * cfg["epochs"]
    opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(cfg["lr"], steps))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=opt, loss=[loss] * n_outputs if n_outputs > 1 else loss)
    if score is None:

        def score(outs):
            return _accuracy(outs[-1], data.y_val)

    best = {"score": -1.0, "epoch": 0, "weights": None}

    class _KeepBest(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            s = score(_predict(self.model, data.x_val))
            if s > best["score"]:
                best.update(score=s, epoch=epoch + 1, weights=self.model.get_weights())
            _log(
                quiet,
                f"  {label} epoch {epoch + 1}/{cfg['epochs']}: loss "
                f"{(logs or {}).get('loss', float('nan')):.4f}, val {s:.4f}",
            )

    t0 = time.perf_counter()
    targets = [y] * n_outputs if n_outputs > 1 else y
    model.fit(
        x, targets, batch_size=cfg["batch_size"], epochs=cfg["epochs"], shuffle=True, verbose=0, callbacks=[_KeepBest()]
    )
    model.set_weights(best["weights"])
    return {"best_epoch": best["epoch"], "epochs": cfg["epochs"], "train_seconds": round(time.perf_counter() - t0, 2)}


def _result(val_acc: float, test_acc: float, cost: Cost, **extra) -> dict:
    return {
        "val_accuracy": round(val_acc, 6),
        "test_accuracy": round(test_acc, 6),
        "params": int(cost.params),
        "macs": int(cost.macs),
        "flash_bytes": int(cost.flash_bytes),
        **extra,
    }


# --------------------------------------------------------------------------- #
# Early exit: threshold on validation
# --------------------------------------------------------------------------- #


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def exit_thresholds(threshold, n_early: int) -> list[float]:
    """One confidence threshold per early exit: a single number (shared by
    every early exit) or a sequence of ``n_early`` numbers; ``None`` or
    +inf = that exit never answers."""
    if isinstance(threshold, (list, tuple, np.ndarray)):
        ts = [float("inf") if t is None else float(t) for t in threshold]
        if len(ts) != n_early:
            raise DitmosError(f"{len(ts)} exit thresholds for {n_early} early exits")
        return ts
    return [float("inf") if threshold is None else float(threshold)] * n_early


def format_thresholds(threshold) -> str:
    """``0.4783`` for a shared threshold, ``0.9012 / 0.6133`` per early exit
    (``never`` for an exit that never answers)."""
    if isinstance(threshold, (list, tuple, np.ndarray)):
        return " / ".join("never" if t is None or not np.isfinite(float(t)) else f"{float(t):.4f}" for t in threshold)
    return "never" if threshold is None or not np.isfinite(float(threshold)) else f"{float(threshold):.4f}"


def apply_threshold(
    exit_logits: Sequence[np.ndarray], threshold, exit_macs: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and per-sample MACs when every sample leaves at the first
    exit i whose max softmax probability is >= its threshold (``threshold``:
    one number for every early exit, or one per early exit; the last exit
    always answers).  Returns (predictions, exit index per sample)."""
    if len(exit_logits) != len(exit_macs):
        raise DitmosError(f"{len(exit_logits)} exits but {len(exit_macs)} exit costs")
    thresholds = exit_thresholds(threshold, len(exit_logits) - 1)
    n = len(exit_logits[0])
    chosen = np.full(n, len(exit_logits) - 1)
    done = np.zeros(n, dtype=bool)
    for i, logits in enumerate(exit_logits[:-1]):
        stop = (~done) & (_softmax(logits).max(axis=-1) >= thresholds[i])
        chosen[stop] = i
        done |= stop
    stacked = np.stack([np.argmax(z, axis=-1) for z in exit_logits])  # [E, N]
    return stacked[chosen, np.arange(n)], chosen


def choose_threshold(
    val_exit_logits: Sequence[np.ndarray], y_val: np.ndarray, exit_macs: Sequence[int], mac_budget: float
) -> dict:
    """The confidence threshold, chosen on VALIDATION data only: the most
    accurate threshold whose average MACs are within ``mac_budget`` (ties ->
    fewer MACs).  If no threshold meets the budget, the cheapest one."""
    confs = np.concatenate([_softmax(z).max(axis=-1) for z in val_exit_logits[:-1]])
    grid = np.unique(np.concatenate([np.quantile(confs, np.linspace(0, 1, 201)), [0.0, 1.0, np.inf]]))
    macs = np.asarray(exit_macs, dtype=np.float64)
    rows = []
    for t in grid:
        pred, chosen = apply_threshold(val_exit_logits, float(t), exit_macs)
        rows.append((float(np.mean(pred == y_val)), float(macs[chosen].mean()), float(t)))
    feasible = [r for r in rows if r[1] <= mac_budget]
    if feasible:
        acc, avg, t = max(feasible, key=lambda r: (r[0], -r[1]))
    else:
        acc, avg, t = min(rows, key=lambda r: (r[1], -r[0]))
    return {"threshold": t, "val_accuracy": acc, "val_avg_macs": avg, "within_budget": bool(feasible)}


# --------------------------------------------------------------------------- #
# The baselines
# --------------------------------------------------------------------------- #


def _train_budget_matched(
    data,
    budget: Budget,
    cfg: dict,
    seed: int,
    metric: str,
    target: int,
    quiet: bool,
    label: str,
    keep: dict | None = None,
) -> dict:
    import keras

    matches = search_budget_spec(
        budget.selector,
        budget.input_shape,
        budget.num_classes,
        target=target,
        metric=metric,
        depths=cfg["depths"],
        tolerance=cfg["tolerance"],
    )
    best = None
    tried = []
    for m in matches:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = build_convnet(m.spec, budget.input_shape, budget.num_classes, name=label)
        info = _fit(model, data, cfg=cfg, seed=seed, quiet=quiet, label=f"{label} d{m.spec.depth}")
        val = _accuracy(_predict(model, data.x_val)[0], data.y_val)
        tried.append({"spec": m.spec.to_dict(), "ratio": round(m.ratio, 4), "val_accuracy": val})
        if best is None or val > best[0]:
            best = (val, m, model, info)
    val, m, model, info = best
    cost = count_cost(model)
    if cost != m.cost:
        raise AssertionError(f"analytical cost {m.cost} != counted {cost} for {m.spec}")
    test = _accuracy(_predict(model, data.x_test)[0], data.y_test)
    if keep is not None:
        keep[label] = model
    return _result(
        val,
        test,
        cost,
        budget_metric=metric,
        budget_target=int(target),
        budget_ratio=round(m.ratio, 4),
        spec=m.spec.to_dict(),
        candidates=tried,
        **info,
    )


def _train_moe(data, budget: Budget, cfg: dict, seed: int, quiet: bool) -> dict:
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_moe(budget.selector, budget.classifier, budget.K, budget.input_shape, budget.num_classes)
    info = _fit(model, data, cfg=cfg, seed=seed, quiet=quiet, label="soft_moe")
    val = _accuracy(_predict(model, data.x_val)[0], data.y_val)
    test = _accuracy(_predict(model, data.x_test)[0], data.y_test)
    return _result(
        val,
        test,
        count_cost(model),
        gate=budget.selector.to_dict(),
        expert=budget.classifier.to_dict(),
        experts=budget.K,
        **info,
    )


def early_exit_spec(budget: Budget, cfg: dict) -> tuple[ConvNetSpec, float]:
    """Backbone of the early-exit network, with a full-depth cost of
    ``early_exit_mac_factor`` x the DiTMoS inference MACs.

    Early exits only save work when the first blocks are cheap, so the backbone
    doubles its channels per block (1x, 2x, 4x, ...) and halves the first
    kernel of the selector's pattern; kernels, pools and FC width otherwise
    follow the selector."""
    sel = budget.selector
    kernels = (max(3, sel.kernels[0] // 2),) + tuple(sel.kernels[1:])
    template = ConvNetSpec(
        channels=tuple(2**i for i in range(sel.depth)),
        kernels=kernels,
        pools=sel.pools,
        fc=sel.fc or 64,
        padding=sel.padding,
    )
    target = int(cfg["early_exit_mac_factor"] * budget.inference_macs)
    matches = search_budget_spec(
        template,
        budget.input_shape,
        budget.num_classes,
        target=target,
        metric="macs",
        depths=[sel.depth],
        fc_choices=[template.fc],
        tolerance=max(cfg["tolerance"], 0.25),
    )
    return matches[0].spec, matches[0].ratio


def _train_early_exit(data, budget: Budget, cfg: dict, seed: int, quiet: bool, keep: dict | None = None) -> dict:
    import keras

    spec, ratio = early_exit_spec(budget, cfg)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_early_exit(spec, budget.input_shape, budget.num_classes)
    # Epoch selection: the mean validation accuracy over the exits.
    info = _fit(
        model,
        data,
        cfg=cfg,
        seed=seed,
        n_outputs=spec.depth,
        quiet=quiet,
        label="early_exit",
        score=lambda outs: float(np.mean([_accuracy(o, data.y_val) for o in outs])),
    )
    if keep is not None:
        keep["early_exit"] = model
    return {**evaluate_early_exit(model, spec, data, budget), "backbone_ratio": round(ratio, 4), **info}


def evaluate_early_exit(model, spec: ConvNetSpec, data, budget: Budget) -> dict:
    """Pick the exit threshold on the validation split (:func:`choose_threshold`),
    then apply it unchanged to the test split."""
    exit_macs = [c.macs for c in early_exit_costs(spec, budget.input_shape, budget.num_classes)]
    val_outs = _predict(model, data.x_val)
    choice = choose_threshold(val_outs, np.asarray(data.y_val), exit_macs, budget.inference_macs)
    test_outs = _predict(model, data.x_test)
    pred, chosen = apply_threshold(test_outs, choice["threshold"], exit_macs)
    test_acc = float(np.mean(pred == np.asarray(data.y_test)))
    avg_macs = float(np.asarray(exit_macs, dtype=np.float64)[chosen].mean())
    fractions = np.bincount(chosen, minlength=spec.depth) / len(chosen)
    res = _result(
        choice["val_accuracy"],
        test_acc,
        count_cost(model),
        spec=spec.to_dict(),
        threshold=choice["threshold"],
        threshold_within_budget=choice["within_budget"],
        val_avg_macs=round(choice["val_avg_macs"], 1),
        avg_macs=round(avg_macs, 1),
        max_macs=int(exit_macs[-1]),
        exit_macs=exit_macs,
        exit_fractions=[round(float(f), 4) for f in fractions],
        exit_test_accuracy=[round(_accuracy(o, data.y_test), 6) for o in test_outs],
    )
    # The comparable per-inference figure of an adaptive network is its average.
    res["macs"] = int(round(avg_macs))
    return res


def train_baselines(
    data,
    *,
    budget: Budget,
    config: dict | None = None,
    seed: int = 0,
    quiet: bool = False,
    run_extras: dict | None = None,
    keep_models: dict | None = None,
) -> dict:
    """Train and evaluate the baselines on ``data`` (an object with normalised
    ``x_train, y_train, x_val, y_val, x_test, y_test``, e.g. a RunData).

    ``config`` is a baseline config (see :func:`baseline_config`; missing keys
    take the quick defaults).  ``run_extras`` carries what only a DiTMoS run
    has: ``{"strong": {...}, "ensemble_average": {...}}`` as made by
    :func:`run_extras`; those entries are copied into the result.
    ``keep_models`` (a dict), when given, receives the trained Keras model of
    every single and early-exit network by name (to save them for deployment).

    Returns ``{name: {"val_accuracy", "test_accuracy", "params", "macs",
    "flash_bytes", ...}}`` in :data:`BASELINE_NAMES` order."""
    cfg = baseline_config("quick", config)
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if len(x) == 0 or len(x) != len(y):
            raise DitmosError(f"baseline data: the {split} split is empty or x/y lengths differ")
    if tuple(data.x_train.shape[1:]) != tuple(budget.input_shape):
        raise DitmosError(
            f"baseline data windows are {tuple(data.x_train.shape[1:])} but the "
            f"budget was made for {tuple(budget.input_shape)}"
        )
    out: dict[str, dict] = {}
    for name in BASELINE_NAMES:
        if name not in cfg["only"]:
            continue
        t0 = time.perf_counter()
        if name == "weak_equal_macs":
            _log(quiet, f"baseline {name}: target {budget.inference_macs} MACs")
            out[name] = _train_budget_matched(
                data, budget, cfg, seed, "macs", budget.inference_macs, quiet, name, keep_models
            )
        elif name == "equal_params":
            _log(quiet, f"baseline {name}: target {budget.total.params} params")
            out[name] = _train_budget_matched(
                data, budget, cfg, seed, "params", budget.total.params, quiet, name, keep_models
            )
        elif name == "soft_moe":
            out[name] = _train_moe(data, budget, cfg, seed, quiet)
        elif name == "early_exit":
            out[name] = _train_early_exit(data, budget, cfg, seed, quiet, keep_models)
        elif run_extras and name in run_extras:
            out[name] = dict(run_extras[name])
        else:
            continue
        _log(
            quiet,
            f"baseline {name}: val {out[name]['val_accuracy']:.4f} test "
            f"{out[name]['test_accuracy']:.4f} ({time.perf_counter() - t0:.1f} s)",
        )
    return out


# --------------------------------------------------------------------------- #
# Baselines that come from a DiTMoS run: the strong model, the K-ensemble
# --------------------------------------------------------------------------- #


def _load_keras(path: Path):
    import keras

    if not path.is_file():
        raise DitmosError(f"run model {path} is missing; train the run first (ditmos train)")
    return keras.models.load_model(path, compile=False)


def _single_output(out):
    if isinstance(out, dict):
        return np.asarray(out["logits"])
    if isinstance(out, (list, tuple)):
        return np.asarray(out[0])
    return np.asarray(out)


def _run_model(model, x: np.ndarray, batch: int = 1024, feed=None):
    """Outputs of a run model whose inputs are a dict (``window`` [+ features])."""
    outs = []
    for i in range(0, len(x), batch):
        inputs = {"window": x[i : i + batch]}
        if feed is not None:
            inputs.update({k: v[i : i + batch] for k, v in feed.items()})
        outs.append(model(inputs, training=False))
    if isinstance(outs[0], dict):
        return {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]}
    return np.concatenate([_single_output(o) for o in outs])


def classifier_logits(run_dir, x: np.ndarray, K: int) -> np.ndarray:
    """Logits ``[N, K, classes]`` of every trained DiTMoS classifier of a run
    (each reading the selector's shared feature maps)."""
    models = Path(run_dir) / "models"
    selector = _load_keras(models / "selector.keras")
    sel = _run_model(selector, x)
    feed = {f"sel_{k}": v for k, v in sel.items() if k.startswith("feat_")}
    out = []
    for k in range(K):
        clf = _load_keras(models / f"classifier_{k}.keras")
        spec = clf.input
        names = set(spec) if isinstance(spec, dict) else {t.name for t in clf.inputs}
        res = _run_model(clf, x, feed={n: v for n, v in feed.items() if n in names} or None)
        out.append(_single_output(res))
    return np.stack(out, axis=1)


def run_extras(run_dir, data, budget: Budget) -> dict:
    """The ``strong`` and ``ensemble_average`` baselines of a trained DiTMoS
    run on the run's own split.  The accuracies the run already wrote into
    ``metrics.json`` (``[split]["float"]["baselines"]``) are reused; otherwise
    the saved Keras models are evaluated on ``data``."""
    run_dir = Path(run_dir)
    metrics = getattr(data, "metrics", None)
    if metrics is None and (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())

    def stored(name):
        try:
            return (
                float(metrics["val"]["float"]["baselines"][name]),
                float(metrics["test"]["float"]["baselines"][name]),
            )
        except (KeyError, TypeError):
            return None

    out = {}
    strong_path = run_dir / "models" / "strong.keras"
    accs = stored("strong")
    if accs is not None or strong_path.is_file():
        strong = _load_keras(strong_path) if strong_path.is_file() else None
        if accs is None:
            accs = (
                _accuracy(_single_output(_run_model(strong, data.x_val)), data.y_val),
                _accuracy(_single_output(_run_model(strong, data.x_test)), data.y_test),
            )
        if strong is not None:
            cost = count_cost(strong)
        else:
            from ditmos.training.config import architecture

            arch = architecture(json.loads((run_dir / "config.json").read_text()))
            cost = spec_cost(spec_from_net(arch.strong), budget.input_shape, budget.num_classes)
        out["strong"] = _result(*accs, cost, source="run")
    accs = stored("ensemble_average")
    if accs is None:
        val_l = classifier_logits(run_dir, data.x_val, budget.K)
        test_l = classifier_logits(run_dir, data.x_test, budget.K)
        accs = (
            _accuracy(_softmax(val_l).mean(axis=1), data.y_val),
            _accuracy(_softmax(test_l).mean(axis=1), data.y_test),
        )
    out["ensemble_average"] = _result(*accs, budget.total, members=budget.K, source="run")
    return out
