"""What an attack attacks: differentiable float views of a trained model.

A *target* is a callable ``target(x) -> logits`` on a float32 tensor
``[B, T, C]`` of normalised windows, built from TensorFlow ops so attacks can
take gradients, plus ``predict(x) -> int64 [B]``, the decision rule of the
model that ships.  Robust accuracy is always decided by ``predict`` (the real
model); the differentiable view only steers the attack.

DiTMoS routes each window with a hard argmax, which has no useful gradient.
It is attacked through two views and the worse of the two counts:

* ``route="held"``: the route of the current iterate is computed without
  gradient and held; the loss is the routed classifier's cross-entropy, whose
  gradient still flows through the selector features the classifier reads.
* ``route="soft"``: a differentiable surrogate, the mixture
  ``sum_k softmax(route)_k * softmax(logits_k)``; its log is used as logits,
  so the attack can move a window to a weaker classifier.

A multi-exit network (``ditmos train --method early_exit``) answers at the
first exit whose max softmax probability reaches the threshold chosen on
validation.  :class:`MultiExitTarget` is attacked through that exit policy:

* ``policy``: the exit the policy takes on the current iterate is held
  (no gradient through the choice); the loss is that exit's cross-entropy;
* ``soft``: a differentiable surrogate of the policy: exit i stops with
  probability ``sigmoid((conf_i - threshold) / 0.05)`` given that no earlier
  exit stopped; the log of the resulting mixture of the exits' softmaxes is
  used as logits, so the attack can push a window to another exit;
* ``all``: the summed cross-entropy of every exit (all exits jointly);
* ``exit_1`` .. ``exit_E``: one exit's cross-entropy alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError


def _tf():
    import tensorflow as tf

    return tf


def _compiled_predict(target, x: np.ndarray, view: str, batch: int) -> np.ndarray:
    """Class predictions through one compiled graph per target."""
    tf = _tf()
    fn = target.__dict__.get("_predict_fn")
    if fn is None:
        fn = tf.function(lambda v: tf.argmax(target.logits(v, view), axis=1), reduce_retracing=True)
        target.__dict__["_predict_fn"] = fn
    outs = [np.asarray(fn(tf.constant(x[i : i + batch], tf.float32))) for i in range(0, len(x), batch)]
    return np.concatenate(outs).astype(np.int64) if outs else np.zeros(0, np.int64)


class KerasTarget:
    """A single-output Keras classifier (window -> logits)."""

    def __init__(self, model, name: str = "model"):
        self.model = model
        self.name = name
        self.views = ("plain",)

    def logits(self, x, view: str = "plain"):
        out = self.model(x, training=False)
        if isinstance(out, dict):
            out = out["logits"] if "logits" in out else next(iter(out.values()))
        if isinstance(out, (list, tuple)):
            out = out[-1]
        return out

    def logits_and_predict(self, x, view: str = "plain"):
        """The view's logits and the model's decision from one forward pass."""
        z = self.logits(x, view)
        return z, _tf().argmax(z, axis=1)

    def predict(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        return _compiled_predict(self, x, "plain", batch)


class DitmosTarget:
    """The composed DiTMoS model (selector + K classifiers) of a run directory."""

    def __init__(self, selector, classifiers: list, shared_blocks: list[int], name: str = "ditmos"):
        self.selector = selector
        self.classifiers = list(classifiers)
        self.shared = list(shared_blocks)
        self.name = name
        self.views = ("held", "soft")

    @classmethod
    def from_run(cls, run_dir) -> "DitmosTarget":
        import keras

        run_dir = Path(run_dir)
        models = run_dir / "models"
        try:
            export = json.loads((run_dir / "export" / "export.json").read_text())
        except FileNotFoundError:
            raise DitmosError(
                f"{run_dir} has no export/export.json: is it a finished 'ditmos train' run directory?"
            ) from None
        K = int(export["K"])
        try:
            sel = keras.models.load_model(models / "selector.keras", compile=False)
            cls_models = [keras.models.load_model(models / f"classifier_{k}.keras", compile=False) for k in range(K)]
        except (OSError, ValueError) as e:
            raise DitmosError(f"cannot load the Keras models in {models}: {e}") from None
        return cls(sel, cls_models, export.get("shared_blocks", []))

    def _parts(self, x):
        tf = _tf()
        sel = self.selector({"window": x}, training=False)
        feeds = {f"sel_feat_{b}": sel[f"feat_{b}"] for b in self.shared}
        all_logits = []
        for clf in self.classifiers:
            out = clf({"window": x, **feeds}, training=False)
            all_logits.append(out["logits"] if isinstance(out, dict) else out)
        return sel["route"], tf.stack(all_logits, axis=1)  # [B, K], [B, K, n]

    @staticmethod
    def _view(route, per, view: str):
        tf = _tf()
        if view == "held":
            k = tf.stop_gradient(tf.argmax(route, axis=1, output_type=tf.int32))
            return tf.gather(per, k, axis=1, batch_dims=1)
        if view == "soft":
            w = tf.nn.softmax(route, axis=1)[:, :, None]
            mix = tf.reduce_sum(w * tf.nn.softmax(per, axis=2), axis=1)
            return tf.math.log(mix + 1e-12)
        raise ValueError(f"unknown view {view!r}")

    def logits(self, x, view: str = "held"):
        route, per = self._parts(x)
        return self._view(route, per, view)

    def logits_and_predict(self, x, view: str = "held"):
        """The view's logits and the routed decision (argmax route, then that
        classifier's argmax) from one forward pass."""
        tf = _tf()
        route, per = self._parts(x)
        held = self._view(route, per, "held")
        z = held if view == "held" else self._view(route, per, view)
        return z, tf.argmax(held, axis=1)

    def predict(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        return _compiled_predict(self, x, "held", batch)


class MultiExitTarget:
    """A multi-exit Keras model (window -> list of exit logits) with its exit
    policy: stop at the first exit whose max softmax probability is >= its
    threshold (``threshold``: one number for every early exit, or one per
    early exit); the last exit always answers.  ``exit_macs[i]`` is the
    cumulative cost of stopping at exit i."""

    TEMPERATURE = 0.05  # of the soft policy's stop probabilities
    DOS_MARGIN = 0.1  # late_exit_loss pushes log-confidence this far below the threshold

    def __init__(self, model, threshold, exit_macs, name: str = "early_exit"):
        from ditmos.training.baselines import exit_thresholds

        self.model = model
        self.n_exits = len(model.outputs)
        self.thresholds = exit_thresholds(threshold, self.n_exits - 1)
        shared = len(set(self.thresholds)) <= 1 and not isinstance(threshold, (list, tuple, np.ndarray))
        self.threshold = float(self.thresholds[0]) if shared and self.thresholds else list(self.thresholds)
        self.exit_macs = np.asarray(exit_macs, np.int64)
        if len(self.exit_macs) != self.n_exits:
            raise DitmosError(f"{self.n_exits} exits but {len(self.exit_macs)} exit costs")
        self.name = name
        self.views = ("policy", "soft", "all") + tuple(f"exit_{i + 1}" for i in range(self.n_exits))

    def outputs(self, x):
        out = self.model(x, training=False)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def _stop(self, outs):
        """Hard stop decision per early exit, [B, E-1] booleans (float32 rule)."""
        tf = _tf()
        conf = tf.stack([tf.reduce_max(tf.nn.softmax(z), axis=1) for z in outs[:-1]], axis=1)
        return conf >= tf.constant([self.thresholds], conf.dtype)

    def logits(self, x, view: str = "policy"):
        tf = _tf()
        outs = self.outputs(x)
        if view == "policy":
            if self.n_exits == 1:
                return outs[0]
            stop = tf.concat([self._stop(outs), tf.ones_like(self._stop(outs)[:, :1])], axis=1)
            k = tf.stop_gradient(tf.argmax(tf.cast(stop, tf.int32), axis=1, output_type=tf.int32))
            return tf.gather(tf.stack(outs, axis=1), k, axis=1, batch_dims=1)
        if view == "soft":
            probs = [tf.nn.softmax(z) for z in outs]
            remain = tf.ones_like(probs[0][:, :1])
            mix = tf.zeros_like(probs[0])
            for i, p in enumerate(probs):
                if i == len(probs) - 1:
                    s = tf.ones_like(remain)
                else:
                    s = tf.sigmoid((tf.reduce_max(p, axis=1, keepdims=True) - self.thresholds[i]) / self.TEMPERATURE)
                mix += remain * s * p
                remain = remain * (1.0 - s)
            return tf.math.log(mix + 1e-12)
        if view.startswith("exit_"):
            i = int(view.split("_", 1)[1])
            if not 1 <= i <= self.n_exits:
                raise ValueError(f"unknown view {view!r}")
            return outs[i - 1]
        raise ValueError(f"unknown view {view!r}")

    def loss(self, x, y, view: str = "policy"):
        """Per-window attack loss of ``view`` (see the module docstring)."""
        tf = _tf()
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits
        if view == "all":
            return tf.add_n([ce(labels=y, logits=z) for z in self.outputs(x)])
        return ce(labels=y, logits=self.logits(x, view))

    def late_exit_loss(self, x):
        """What the latency attack maximises: minus the summed excess of every
        early exit's log-confidence over ``log(threshold) - DOS_MARGIN``
        (zero once every early exit is that far below its threshold; an exit
        that always or never answers is left out)."""
        tf = _tf()
        outs = self.outputs(x)
        live = [i for i, t in enumerate(self.thresholds) if 0.0 < t <= 1.0]
        if self.n_exits == 1 or not live:
            return tf.zeros(tf.shape(x)[:1])  # nothing to force: one path only
        excess = [
            tf.nn.relu(
                tf.reduce_max(tf.nn.log_softmax(outs[i]), axis=1)
                - (float(np.log(self.thresholds[i])) - self.DOS_MARGIN)
            )
            for i in live
        ]
        return -tf.add_n(excess)

    def exit_outputs(self, x: np.ndarray, batch: int = 512) -> list[np.ndarray]:
        tf = _tf()
        fn = self.__dict__.get("_outs_fn")
        if fn is None:
            fn = tf.function(lambda v: self.outputs(v), reduce_retracing=True)
            self.__dict__["_outs_fn"] = fn
        parts = [
            [np.asarray(t) for t in fn(tf.constant(x[i : i + batch], tf.float32))] for i in range(0, len(x), batch)
        ]
        return [np.concatenate(p) for p in zip(*parts)]

    def decide(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predictions, exit index) of the real exit policy."""
        from ditmos.training.baselines import apply_threshold

        x = np.asarray(x, np.float32)
        if len(x) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        pred, chosen = apply_threshold(self.exit_outputs(x), self.thresholds, self.exit_macs)
        return pred.astype(np.int64), chosen.astype(np.int64)

    def predict(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        return self.decide(x)[0]

    def exits(self, x: np.ndarray) -> np.ndarray:
        return self.decide(x)[1]

    def macs(self, x: np.ndarray) -> np.ndarray:
        """MACs the policy spends on each window."""
        return self.exit_macs[self.exits(x)]


def _export_info(run_dir) -> dict:
    path = Path(run_dir) / "export" / "export.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DitmosError(f"cannot read {path}: {e}") from None


def _exported_network(run_dir):
    """``(model taking any batch size, export.json)`` of a comparison's
    network run, whose only model is ``export/network.keras`` (batch 1)."""
    import keras

    from ditmos.models.keras_models import with_batch
    from ditmos.training.network_run import MODEL_FILE

    path = Path(run_dir) / "export" / MODEL_FILE
    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as e:
        raise DitmosError(f"cannot load {path}: {e}") from None
    return with_batch(model, None), _export_info(run_dir)


def _comparison_network(run_dir) -> bool:
    from ditmos.training.network_run import is_network_run

    return not (Path(run_dir) / "robust.json").is_file() and is_network_run(run_dir)


def single_target(run_dir) -> KerasTarget:
    """The single CNN of a robust-training run (``models/single.keras``) or of
    a comparison's network run (``export/network.keras``)."""
    import keras

    if _comparison_network(run_dir):
        model, info = _exported_network(run_dir)
        return KerasTarget(model, name=str(info.get("method", "single")))
    path = Path(run_dir) / "models" / "single.keras"
    if not path.is_file():
        raise DitmosError(f"{path} not found: is {run_dir} a finished 'ditmos train --model single' run directory?")
    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as e:
        raise DitmosError(f"cannot load {path}: {e}") from None
    return KerasTarget(model, name="single")


def early_exit_target(run_dir) -> MultiExitTarget:
    """The multi-exit CNN of a ``ditmos train --method early_exit`` run, with
    the exit threshold its training chose on validation."""
    import keras

    run_dir = Path(run_dir)
    if _comparison_network(run_dir):
        model, info = _exported_network(run_dir)
        if info.get("exit_thresholds") is not None:  # one per early exit (null: never)
            return MultiExitTarget(model, list(info["exit_thresholds"]), info["exit_macs"])
        never = info.get("exit_threshold_never") or info.get("exit_threshold") is None
        return MultiExitTarget(model, math.inf if never else float(info["exit_threshold"]), info["exit_macs"])
    path = run_dir / "models" / "early_exit.keras"
    if not path.is_file():
        raise DitmosError(
            f"{path} not found: is {run_dir} a finished 'ditmos train --method early_exit' run directory?"
        )
    try:
        info = json.loads((run_dir / "robust.json").read_text())
        policy = info["exit_policy"]
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError, KeyError) as e:
        raise DitmosError(f"cannot load the multi-exit run {run_dir}: {e}") from None
    return MultiExitTarget(model, policy_thresholds(policy), info["exit_macs"])


def policy_thresholds(policy: dict):
    """The exit thresholds of a robust run's ``exit_policy``: its per-exit
    list ``thresholds`` (null = never), else the shared ``threshold``."""
    if policy.get("thresholds") is not None:
        return [float("inf") if t is None else float(t) for t in policy["thresholds"]]
    return float(policy["threshold"])


def run_model_kind(run_dir) -> str:
    """Which model a run directory holds: ``ditmos``, ``single`` or
    ``early_exit`` (from its files)."""
    from ditmos.training.network_run import is_network_run

    run_dir = Path(run_dir)
    if not (run_dir / "robust.json").is_file():
        if is_network_run(run_dir):  # a network of a comparison (RUN/compare/.../METHOD)
            return "early_exit" if len(_export_info(run_dir).get("outputs") or []) > 1 else "single"
        return "ditmos"
    if (run_dir / "export" / "export.json").is_file() and not is_network_run(run_dir):
        return "ditmos"
    try:
        kind = json.loads((run_dir / "robust.json").read_text()).get("model", "single")
    except (OSError, ValueError) as e:
        raise DitmosError(f"cannot read {run_dir / 'robust.json'}: {e}") from None
    return kind if kind in ("single", "early_exit") else "single"


def load_target(run_dir, kind: str = "auto"):
    """``(kind, target)`` for the model of ``run_dir`` (``kind="auto"``:
    :func:`run_model_kind`)."""
    found = run_model_kind(run_dir)
    if kind == "auto":
        kind = found
    elif kind != found:
        raise DitmosError(f"{run_dir} holds a '{found}' model, not '{kind}'; pass --model {found} or auto")
    if kind == "single":
        return kind, single_target(run_dir)
    if kind == "early_exit":
        return kind, early_exit_target(run_dir)
    return kind, DitmosTarget.from_run(run_dir)
