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
"""

from __future__ import annotations

import json
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
        fn = tf.function(lambda v: tf.argmax(target.logits(v, view), axis=1),
                         reduce_retracing=True)
        target.__dict__["_predict_fn"] = fn
    outs = [np.asarray(fn(tf.constant(x[i:i + batch], tf.float32)))
            for i in range(0, len(x), batch)]
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
            raise DitmosError(f"{run_dir} has no export/export.json: is it a finished "
                              f"'ditmos train' run directory?") from None
        K = int(export["K"])
        try:
            sel = keras.models.load_model(models / "selector.keras", compile=False)
            cls_models = [keras.models.load_model(models / f"classifier_{k}.keras", compile=False)
                          for k in range(K)]
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


def single_target(run_dir) -> KerasTarget:
    """The single CNN (``models/single.keras``) of a robust-training run."""
    import keras

    path = Path(run_dir) / "models" / "single.keras"
    if not path.is_file():
        raise DitmosError(f"{path} not found: is {run_dir} a finished 'ditmos train --model "
                          f"single' run directory?")
    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as e:
        raise DitmosError(f"cannot load {path}: {e}") from None
    return KerasTarget(model, name="single")
