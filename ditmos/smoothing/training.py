"""Training a base classifier for randomized smoothing: Gaussian augmentation
and SmoothMix (``ditmos train --model single --smoothing gaussian|smoothmix``).

The model is the single CNN of the equal-MACs baseline (the network that
``ditmos train --model single --robust`` trains), so smoothing-trained and
adversarially trained models are the same architecture.

Both methods draw ``m`` Gaussian noises ``d_1 .. d_m ~ N(0, sigma^2 I)`` per
training window and per step (sigma in normalised input units) and share the
noisy cross-entropy ``mean_i CE(f(x + d_i), y)``:

``gaussian``  that loss alone (Gaussian data augmentation, Cohen et al.).
``smoothmix`` adds SmoothMix's calibration term (Jeong et al., 2021):

  * ``F(x) = mean_i softmax(f(x + d_i))`` approximates the smoothed
    classifier's soft output with the same noises;
  * an adversary walks ``T`` normalised-gradient steps of size ``a`` on
    ``-log F(x)_y`` (model in inference mode, no norm ball, no clipping: the
    windows are z-scored, not images in [0, 1]) to ``x_T``;
  * per window ``lam ~ U[0, 1/2]``, ``x_mix = (1 - lam) x + lam x_T`` and the
    soft target ``y_mix = (1 - lam) F(x) + lam / C`` (``C`` classes; ``F(x)``
    keeps its gradient);
  * loss += ``eta * w * mean_i[1[argmax F(x) = y] KL(y_mix || softmax(f(x_mix + d_i)))]``
    with the warm-up ``w = min(1, epoch / warmup_epochs)`` (epochs from 1).

So the smoothed classifier is pushed to become gradually less confident
along the direction where its confidence drops fastest, instead of staying
over-confident right up to its decision boundary.

The epoch kept is the best on a fixed VALIDATION subset by a cheap Monte-Carlo
ACR: ``val_noises`` noisy predictions per window, ``R = sigma Phi^-1(pA)`` with
the empirical top-class share ``pA`` clipped below 1 (0 when wrong or when
``pA <= 1/2``).  The certificate itself comes from ``ditmos certify``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError

METHODS = ("gaussian", "smoothmix")
FORMAT = "ditmos-smoothing-train/1"

# Hyper-parameters (the "smoothing" section of --config may override them).
DEFAULTS = {
    "epochs": 10,
    "batch_size": 64,
    "lr": 3e-3,
    "noises": 2,  # m: noises per window (both methods)
    "steps": 4,  # T: SmoothMix adversary steps
    "step_size": None,  # a: None = 2 * sigma (the CIFAR-10 setting a = 0.5 at sigma 0.25 ... 2 at 1)
    "eta": 1.0,  # weight of the mixup KL term (1: chosen on hapt validation at sigma 2, docs/smoothing.md)
    "warmup_epochs": 3,  # epochs over which the mixup weight ramps up to 1
    "mix_step": 0,  # 0: mix from x itself; 1: one-step adversary (see adversary())
    "val_samples": 500,  # validation windows of the model-selection score
    "val_noises": 256,  # noisy predictions per validation window
}


def _tf():
    import tensorflow as tf

    return tf


class SmoothingTrainer:
    """Training of a Keras classifier ``model`` (window -> logits) for smoothing."""

    def __init__(
        self, model, method: str, sigma: float, hp: dict, num_classes: int, *, steps_total: int, seed: int = 0
    ):
        import keras

        if method not in METHODS:
            raise DitmosError(f"unknown smoothing method {method!r}; choose one of {', '.join(METHODS)}")
        self.tf = tf = _tf()
        self.model, self.method, self.sigma = model, method, float(sigma)
        self.hp = dict(hp)
        self.m = int(hp["noises"])
        self.T = int(hp["steps"])
        self.a = float(hp["step_size"]) if hp.get("step_size") is not None else 2.0 * self.sigma
        self.eta = float(hp["eta"])
        self.mix_step = int(hp.get("mix_step", 0))
        if self.mix_step not in (0, 1) or self.mix_step >= max(1, self.T):
            raise DitmosError(
                f"config 'smoothing.mix_step' must be 0 or 1 (and below 'steps'), got {hp.get('mix_step')}"
            )
        self.C = int(num_classes)
        self.rng = np.random.default_rng([seed, 17])
        tf.random.set_seed(seed)
        sched = keras.optimizers.schedules.CosineDecay(float(hp["lr"]), max(1, steps_total))
        self.opt = keras.optimizers.Adam(sched)
        self._step = None

    # -- the smoothed soft output and the adversary --------------------- #
    def _noisy(self, x, noise):
        """``x`` [B, ...] and noise [m, B, ...] -> the m*B noisy windows (noise-major)."""
        tf = self.tf
        return tf.reshape(x[None] + noise, tf.concat([[-1], tf.shape(x)[1:]], 0))

    def _soft(self, x, noise, training):
        """``F(x)`` [B, C] and the per-noise logits [m, B, C]."""
        tf = self.tf
        z = self.model(self._noisy(x, noise), training=training)
        z = tf.reshape(z, [self.m, -1, self.C])
        return tf.reduce_mean(tf.nn.softmax(z), axis=0), z

    def adversary(self, x, y, noise, w):
        """``T`` normalised-gradient ascent steps of size ``a`` on ``-log F(x)_y``.

        Returns ``(x_0, x_T)``: the clean side of the mixup and the adversarial
        end.  With ``mix_step`` 0 the clean side is ``x``; with 1 (the paper's
        one-step adversary) it is the point after the first step, pulled back
        into the l2 ball of radius ``w * a`` around ``x`` (``w`` the warm-up
        weight), and the noisy cross-entropy is taken there as well."""
        tf = self.tf
        onehot = tf.one_hot(y, self.C)
        xa, x0 = x, x
        for i in range(self.T):  # T is small: unrolled in the traced graph
            if i == self.mix_step and i > 0:
                x0 = xa
            with tf.GradientTape() as tape:
                tape.watch(xa)
                f, _ = self._soft(xa, noise, False)
                loss = -tf.reduce_sum(tf.math.log(tf.reduce_sum(f * onehot, 1) + 1e-10))
            g = tape.gradient(loss, xa)
            gn = tf.sqrt(tf.reduce_sum(tf.square(g), axis=[1, 2], keepdims=True))
            xa = xa + self.a * g / (gn + 1e-12)
        if self.mix_step:
            d = x0 - x
            dn = tf.sqrt(tf.reduce_sum(tf.square(d), axis=[1, 2], keepdims=True))
            cap = w * self.a * self.mix_step
            x0 = x + d * tf.minimum(1.0, cap / (dn + 1e-12))
        return tf.stop_gradient(x0), tf.stop_gradient(xa)

    def _loss(self, x, y, w):
        tf = self.tf
        shape = tf.concat([[self.m], tf.shape(x)], 0)
        noise = tf.random.normal(shape, stddev=self.sigma)
        if self.method == "smoothmix" and self.mix_step:
            x, xt = self.adversary(x, y, noise, w)
        f_clean, z = self._soft(x, noise, True)
        ym = tf.tile(y, [self.m])
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ym, tf.reshape(z, [-1, self.C])))
        if self.method == "gaussian":
            return ce, ce
        if not self.mix_step:
            _, xt = self.adversary(x, y, noise, w)
        lam = tf.random.uniform([tf.shape(x)[0], 1, 1], 0.0, 0.5)
        x_mix = (1.0 - lam) * x + lam * xt
        lam2 = lam[:, :, 0]
        y_mix = (1.0 - lam2) * f_clean + lam2 / float(self.C)
        z_mix = tf.reshape(self.model(self._noisy(x_mix, noise), training=True), [self.m, -1, self.C])
        logp = tf.nn.log_softmax(z_mix)
        kl = tf.reduce_sum(y_mix[None] * (tf.math.log(y_mix[None] + 1e-10) - logp), axis=2)
        good = tf.cast(tf.argmax(f_clean, 1, output_type=tf.int64) == tf.cast(y, tf.int64), tf.float32)
        mix = tf.reduce_mean(kl * good[None])
        return ce + self.eta * w * mix, ce

    def _step_fn(self):
        if self._step is None:
            tf, model, opt = self.tf, self.model, self.opt

            @tf.function(reduce_retracing=True, autograph=False)
            def step(x, y, w):
                with tf.GradientTape() as tape:
                    loss, ce = self._loss(x, y, w)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
                return loss, ce

            self._step = step
        return self._step

    def train_epoch(self, x, y, epoch: int) -> dict:
        """One epoch (``epoch`` counts from 1)."""
        tf = self.tf
        w = min(1.0, epoch / max(1, int(self.hp["warmup_epochs"])))
        bs = int(self.hp["batch_size"])
        order = self.rng.permutation(len(x))
        losses, ces = [], []
        for i in range(0, len(x), bs):
            idx = order[i : i + bs]
            if len(idx) < 2:  # batch-norm statistics need two windows
                continue
            loss, ce = self._step_fn()(tf.constant(x[idx]), tf.constant(y[idx]), tf.constant(w, tf.float32))
            losses.append(float(loss))
            ces.append(float(ce))
        return {"loss": float(np.mean(losses)), "noisy_ce": float(np.mean(ces)), "mix_weight": w}


def mc_acr(model, x, y, sigma: float, noises: int, seed: int, batch: int = 2048) -> dict:
    """Monte-Carlo stand-in for certification (model selection only): per
    window ``noises`` noisy predictions; ``pA`` = empirical share of the top
    class (at most ``1 - 1/(2 noises)``); radius ``sigma Phi^-1(pA)`` if the
    top class is right and ``pA > 1/2``."""
    from scipy.stats import norm

    rng = np.random.default_rng([seed, 23])
    per = max(1, batch // noises)
    tops, shares = [], []
    for j in range(0, len(x), per):
        xb = x[j : j + per]
        noisy = (
            (xb[:, None] + sigma * rng.standard_normal((len(xb), noises, *x.shape[1:])))
            .astype(np.float32)
            .reshape(-1, *x.shape[1:])
        )
        z = np.asarray(model(noisy, training=False))
        pred = np.argmax(z, 1).reshape(len(xb), noises)
        cnt = np.stack([np.bincount(p, minlength=z.shape[1]) for p in pred])
        tops.append(np.argmax(cnt, 1))
        shares.append(cnt.max(1) / noises)
    tops, shares = np.concatenate(tops), np.minimum(np.concatenate(shares), 1 - 0.5 / noises)
    ok = (tops == y) & (shares > 0.5)
    r = np.where(ok, sigma * norm.ppf(np.clip(shares, 0.5, None)), 0.0)
    return {"acr": float(r.mean()), "smoothed_accuracy": float(np.mean(tops == y))}


def train_single_smoothing(
    dataset: str, out_dir, *, method: str, sigma: float, seed: int = 0, config_file=None, quiet: bool = False
) -> Path:
    """Train the equal-MACs single CNN for smoothing into a new run directory:
    config.json, splits.npz, normalization.json, models/single.keras and
    smoothing.json (method, sigma, hyper-parameters, per-epoch history)."""

    import keras

    from ditmos.robust.training import _build_single
    from ditmos.training.checkpoint import atomic_write_json
    from ditmos.training.config import resolve_config
    from ditmos.training.run import prepare_data
    from ditmos.training.rundir import write_model_run

    if method not in METHODS:
        raise DitmosError(f"unknown smoothing method {method!r}; choose one of {', '.join(METHODS)}")
    if not (isinstance(sigma, (int, float)) and 0 < sigma <= 10):
        raise DitmosError(f"--sigma must lie in (0, 10], got {sigma}")
    run_dir = Path(out_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise DitmosError(f"{run_dir} exists and is not empty; choose a new --out directory")
    user = json.loads(Path(config_file).read_text()) if config_file else {}
    sm = user.pop("smoothing", {}) or {}
    unknown = sorted(set(sm) - set(DEFAULTS))
    if unknown:
        raise DitmosError(f"unknown 'smoothing' config key(s) {unknown}; allowed: {sorted(DEFAULTS)}")
    hp = {**DEFAULTS, **sm}
    for k in ("epochs", "batch_size", "noises", "val_samples", "val_noises"):
        if int(hp[k]) < 1:
            raise DitmosError(f"config 'smoothing.{k}' must be >= 1, got {hp[k]}")
    cfg = resolve_config(dataset, "quick", seed=seed, overrides=user)

    tf = _tf()
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    ds, splits, norm, data = prepare_data(cfg)
    input_shape = tuple(int(v) for v in ds.X.shape[1:])
    match, build = _build_single(cfg, input_shape, data["num_classes"])
    for k in ("x_train", "x_val", "x_test"):
        data[k] = data[k].astype(np.float32)

    def log(msg):
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    keras.utils.set_random_seed(seed)
    model = build()
    n_batches = math.ceil(len(data["x_train"]) / int(hp["batch_size"]))
    trainer = SmoothingTrainer(
        model, method, sigma, hp, data["num_classes"], steps_total=n_batches * int(hp["epochs"]), seed=seed
    )
    vi = np.sort(np.random.default_rng([seed, 3]).permutation(len(data["x_val"]))[: int(hp["val_samples"])])
    xv, yv = data["x_val"][vi], data["y_val"][vi]
    history, best = [], None
    t0 = time.monotonic()
    for ep in range(1, int(hp["epochs"]) + 1):
        info = trainer.train_epoch(data["x_train"], data["y_train"], ep)
        val = mc_acr(model, xv, yv, sigma, int(hp["val_noises"]), seed)
        history.append(
            {
                "epoch": ep,
                **{k: round(v, 5) for k, v in info.items()},
                **{f"val_{k}": round(v, 5) for k, v in val.items()},
            }
        )
        if best is None or val["acr"] > best[0]:
            best = (val["acr"], ep, model.get_weights())
        log(
            f"{method} epoch {ep}/{hp['epochs']}: loss {info['loss']:.4f}, val MC ACR "
            f"{val['acr']:.4f}, val smoothed acc {val['smoothed_accuracy']:.4f} "
            f"({time.monotonic() - t0:.0f} s)"
        )
    model.set_weights(best[2])
    seconds = time.monotonic() - t0
    hp_out = {**hp, "step_size": trainer.a}
    summary = {
        "format": FORMAT,
        "model": "single",
        "method": method,
        "sigma": float(sigma),
        "sigma_units": "normalised input (z-scored per channel)",
        "dataset": cfg["dataset"],
        "seed": seed,
        "input_shape": list(input_shape),
        "class_names": list(data["class_names"]),
        "spec": match.spec.to_dict(),
        "macs": int(match.cost.macs),
        "params": int(match.cost.params),
        "hyper": hp_out,
        "best_epoch": best[1],
        "train_seconds": round(seconds, 1),
        "history": history,
    }
    write_model_run(run_dir, config=cfg, splits=splits, normalizer=norm, model=model, name="single")
    atomic_write_json(run_dir / "smoothing.json", summary)  # last: marks the run as finished
    return run_dir
