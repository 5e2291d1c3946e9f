"""Adversarial training against one or several l_p norms (``ditmos train --robust``),
of the single CNN (``--method single``, below) or, RDI-Nets style, of the
multi-exit CNN of the early-exit baseline (``--method early_exit``,
:class:`MultiExitTrainer`, modes none/linf/l2/l1; docs/robustness.md).

The trained model is the single CNN of the equal-MACs baseline (the
budget-matched network of :mod:`ditmos.training.baselines`: the MACs per
inference of DiTMoS's selector + one classifier), so its robustness can be
compared with every other model of the product.

Modes (radii = the evaluation defaults of :func:`ditmos.robust.evaluate.default_radii`):

``none``   standard training with the same loop (the reference row).
``linf``, ``l2``, ``l1``
           PGD adversarial training on one norm (Madry et al.): cross-entropy
           on the PGD example of that norm.
``max``    per window, the cross-entropy of the worst of the three norms' PGD
           examples.
``avg``    the mean cross-entropy over the three norms' PGD examples.
``eat``    each batch trains on l_inf OR l_1 PGD examples; the norm is drawn
           with probability proportional to (1 - running robust accuracy on
           that norm's training examples), so the weaker norm gets more batches.
``ramp``   RAMP: a key pair of norms (q, r); loss = per-window max of the two
           cross-entropies + lambda * KL(p_q || p_r) over the windows whose
           q-example is still classified correctly (logit pairing); and once
           per epoch gradient projection: from theta_r one natural epoch gives
           theta_n and one RAMP epoch gives theta_a; per weight tensor with
           g_n = theta_n - theta_r, g_a = theta_a - theta_r, c = cos(g_n, g_a):
           theta_{r+1} = theta_r + beta * max(c, 0) * g_n + (1 - beta) * g_a.
           The key pair follows the RAMP v1 rule: the two norms whose
           single-norm AT models are least robust against their own attack
           (``ditmos robust table`` measures this on the validation split of
           its own linf/l2/l1 runs); ``pair="auto"`` uses a cheap proxy: one
           epoch of each single-norm AT from the same initialisation on up to
           2000 training windows, scored on 300 validation windows.
``ibp``, ``cure``
           certified training with interval bounds (l_inf IBP; CURE's l_inf +
           l_2 certified branches with bound alignment and gradient
           projection), :mod:`ditmos.robust.certified`; the epoch kept is the
           best by certified accuracy on validation (l_inf for ibp, union for
           cure) at the certification radii.

Training-time attacks are batched PGD in TensorFlow graphs (few steps, a
random start inside the ball, model in inference mode); l_1 uses a sparse
step on the 5 % largest-gradient coordinates and an exact l_1-ball
projection.  The epoch kept is the best on the VALIDATION split: by clean
accuracy (``none``), by robust accuracy against the mode's own norm
(single-norm modes) or by union accuracy over the three norms (the others),
under a cheap PGD on a fixed validation subset.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError

MODES = ("none", "linf", "l2", "l1", "max", "avg", "eat", "ramp")
METHODS = ("single", "early_exit")
EXIT_ATTACKS = ("max_avg", "max_all", "avg")
THRESHOLD_ON = ("clean", "robust")
#: the comparison method each robust model is (the name its network run carries)
ROBUST_NETWORK_METHOD = {"single": "weak_equal_macs", "early_exit": "early_exit"}
NORMS = ("linf", "l2", "l1")
FORMAT = "ditmos-robust-train/1"

# Hyper-parameters (overridable through the "robust" section of --config).
DEFAULTS = {
    "epochs": 20,
    "batch_size": 64,
    "lr": 3e-3,  # the quick baseline schedule
    "attack_steps": 5,  # PGD steps per training example
    "step_factor": 2.5,  # step size = step_factor * eps / attack_steps
    "l1_sparsity": 0.05,  # share of coordinates moved by one l_1 step
    "ramp_lambda": 2.0,  # weight of the logit-pairing KL (the paper, from scratch)
    "gp_beta": 0.5,  # gradient-projection blend
    "gp": True,  # RAMP: gradient projection once per epoch (False: plain RAMP loss)
    "eat_momentum": 0.9,  # running robust accuracy of E-AT
    "val_samples": 500,  # validation windows scored per epoch
    "val_steps": 10,  # PGD steps of the validation score
    "pair": "auto",  # RAMP key pair: "auto" or e.g. "linf,l1"
    "attack_random_start": True,  # training PGD starts at a random point of the ball (False: at x)
    "ramp_pair_all": False,  # RAMP: the KL term over every window (False: where p_q is right, the paper)
    "init_from": None,  # a finished robust run of the same network to fine-tune (None: from scratch)
    "lr_schedule": "cosine",  # "cosine" (to 0 over the run) or "step" (lr / 10 after each third)
    # multi-exit network (--method early_exit) only:
    "exit_attack": "max_avg",  # training attack on the exits: "max_avg" (RDI-Nets), "max_all"
    # (max_avg's candidates plus the all-exits PGD) or "avg"
    "mac_factor": 2.0,  # full-depth MACs of the backbone / the single CNN's MACs
    "mac_budget": 0.7,  # threshold: avg clean val MACs <= mac_budget x single's MACs
    "threshold_on": "clean",  # threshold picked on clean val accuracy, or "robust": on the
    # share of val windows right clean and under attack
    "exit_thresholds": "shared",  # one confidence threshold for every early exit, or
    # "per_exit": one per early exit, chosen jointly on the same criterion
    "exit_weights": None,  # loss weight of each exit (None: all 1), e.g. [0.5, 1, 2]
}
EXIT_THRESHOLDS = ("shared", "per_exit")


# certified training (--robust ibp|cure, ditmos.robust.certified)
from ditmos.robust.certified import CERT_DEFAULTS, CERT_MODES  # noqa: E402

DEFAULTS.update(CERT_DEFAULTS)
#: every mode of train_robust: the adversarial ones (RobustTrainer) and the certified ones
ALL_MODES = MODES + CERT_MODES


def _tf():
    import tensorflow as tf

    return tf


# --------------------------------------------------------------------------- #
# Batched PGD in TensorFlow
# --------------------------------------------------------------------------- #


def _flat(t):
    tf = _tf()
    return tf.reshape(t, [tf.shape(t)[0], -1])


def project_l1_tf(v, eps):
    """Euclidean projection of each row of ``v`` [B, D] onto the l_1 ball."""
    tf = _tf()
    a = tf.abs(v)
    u = tf.sort(a, axis=1, direction="DESCENDING")
    cs = tf.cumsum(u, axis=1)
    j = tf.cast(tf.range(1, tf.shape(v)[1] + 1), v.dtype)[None, :]
    cond = u * j > cs - eps
    rho = tf.reduce_max(tf.where(cond, tf.cast(j, tf.int32), 1), axis=1)  # count >= 1
    theta = (tf.gather(cs, rho - 1, axis=1, batch_dims=1) - eps) / tf.cast(rho, v.dtype)
    w = tf.sign(v) * tf.nn.relu(a - theta[:, None])
    inside = tf.reduce_sum(a, axis=1) <= eps
    return tf.where(inside[:, None], v, w)


def _project(delta, norm: str, eps: float):
    tf = _tf()
    if norm == "linf":
        return tf.clip_by_value(delta, -eps, eps)
    f = _flat(delta)
    if norm == "l2":
        n = tf.norm(f, axis=1, keepdims=True)
        f = f * tf.minimum(1.0, eps / tf.maximum(n, 1e-12))
    else:
        f = project_l1_tf(f, eps)
    return tf.reshape(f, tf.shape(delta))


def _random_start(shape, norm: str, eps: float):
    tf = _tf()
    if norm == "linf":
        return tf.random.uniform(shape, -eps, eps)
    g = (
        tf.random.normal(shape)
        if norm == "l2"
        else tf.math.log(tf.random.uniform(shape, 1e-6, 1.0)) * tf.sign(tf.random.uniform(shape, -1, 1))
    )
    f = _flat(g)
    scale = tf.random.uniform([tf.shape(f)[0], 1], 0, 1)
    if norm == "l2":
        f = f / (tf.norm(f, axis=1, keepdims=True) + 1e-12) * eps * scale
    else:
        f = f / (tf.reduce_sum(tf.abs(f), axis=1, keepdims=True) + 1e-12) * eps * scale
    return tf.reshape(f, shape)


def _ascent(g, norm: str, alpha: float, l1_sparsity: float):
    tf = _tf()
    if norm == "linf":
        return alpha * tf.sign(g)
    f = _flat(g)
    if norm == "l2":
        s = alpha * f / (tf.norm(f, axis=1, keepdims=True) + 1e-12)
    else:
        k = max(1, int(math.ceil(l1_sparsity * int(g.shape[1]) * int(g.shape[2]))))
        a = tf.abs(f)
        kth = tf.math.top_k(a, k=k).values[:, -1:]
        mask = tf.cast(a >= kth, f.dtype)
        s = tf.sign(f) * mask * alpha / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
    return tf.reshape(s, tf.shape(g))


def ce_objective(outputs, y):
    """Per-window cross-entropy of a single-output model."""
    return _tf().nn.sparse_softmax_cross_entropy_with_logits(y, outputs)


def exit_ce(outputs, y):
    """``[E, B]`` cross-entropy of every exit of a multi-exit model."""
    tf = _tf()
    return tf.stack([tf.nn.sparse_softmax_cross_entropy_with_logits(y, z) for z in outputs])


def all_exits_objective(outputs, y):
    """The sum over exits of their cross-entropies (RDI-Nets' average-exit
    attack up to the constant 1/E)."""
    return _tf().reduce_sum(exit_ce(outputs, y), axis=0)


def exit_objective(k: int):
    """The cross-entropy of exit ``k`` (0-based) only."""

    def objective(outputs, y):
        return _tf().nn.sparse_softmax_cross_entropy_with_logits(y, outputs[k])

    return objective


def pgd_tf(
    model,
    x,
    y,
    *,
    norm: str,
    eps: float,
    steps: int,
    step_factor: float = 2.5,
    l1_sparsity: float = 0.05,
    random_start: bool = True,
    objective=ce_objective,
):
    """PGD on ``objective(model(x), y)`` (per-window loss; default the
    cross-entropy of a single-output model) in inference mode, all in TF ops
    (call it inside a ``tf.function``).  Returns the last iterate."""
    tf = _tf()
    alpha = step_factor * eps / max(steps, 1)
    delta = _project(_random_start(tf.shape(x), norm, eps), norm, eps) if random_start else tf.zeros_like(x)
    delta = tf.ensure_shape(delta, x.shape)

    def body(i, d):
        with tf.GradientTape() as tape:
            tape.watch(d)
            loss = tf.reduce_sum(objective(model(x + d, training=False), y))
        g = tape.gradient(loss, d)
        return i + 1, tf.ensure_shape(_project(d + _ascent(g, norm, alpha, l1_sparsity), norm, eps), x.shape)

    # an explicit graph loop (small graphs trace fast; no AutoGraph needed)
    _, delta = tf.while_loop(lambda i, d: i < steps, body, (tf.constant(0), delta))
    return tf.stop_gradient(x + delta)


# --------------------------------------------------------------------------- #
# The trainer
# --------------------------------------------------------------------------- #

LR_SCHEDULES = ("cosine", "step")


def lr_schedule(hp: dict, steps_total: int):
    """The learning-rate schedule of ``hp``: ``cosine`` decays ``lr`` to 0 over
    the run; ``step`` (RAMP's fine-tuning schedule) divides it by 10 after the
    first and after the second third of the run's steps."""
    import keras

    lr, n = float(hp["lr"]), max(1, int(steps_total))
    if hp.get("lr_schedule", "cosine") == "step":
        cuts = sorted({max(1, n // 3), max(1, (2 * n) // 3)})
        return keras.optimizers.schedules.PiecewiseConstantDecay(cuts, [lr / 10**i for i in range(len(cuts) + 1)])
    return keras.optimizers.schedules.CosineDecay(lr, n)


class RobustTrainer:
    """Adversarial training of a Keras classifier ``model`` (window -> logits)."""

    def __init__(
        self,
        model,
        radii: dict[str, float],
        mode: str,
        hp: dict,
        *,
        steps_total: int,
        pair: tuple[str, str] | None = None,
        seed: int = 0,
    ):
        import keras

        tf = _tf()
        if mode not in MODES:
            raise DitmosError(f"unknown robust mode {mode!r}; choose one of {', '.join(MODES)}")
        self.model, self.radii, self.mode, self.hp = model, dict(radii), mode, dict(hp)
        self.pair = tuple(pair) if pair else ("linf", "l1")
        self.rng = np.random.default_rng([seed, 11])
        sched = lr_schedule(hp, steps_total)
        self.opt = keras.optimizers.Adam(sched)
        # RAMP's natural branch keeps its own optimiser state.
        self.opt_nat = keras.optimizers.Adam(sched) if mode == "ramp" and hp.get("gp", True) else None
        self.eat_acc = {"linf": 0.0, "l1": 0.0}
        self._steps: dict = {}
        self._tf = tf

    # -- losses ---------------------------------------------------------- #
    def _adv(self, x, y, norm):
        return pgd_tf(
            self.model,
            x,
            y,
            norm=norm,
            eps=float(self.radii[norm]),
            steps=int(self.hp["attack_steps"]),
            step_factor=float(self.hp["step_factor"]),
            l1_sparsity=float(self.hp["l1_sparsity"]),
            random_start=bool(self.hp.get("attack_random_start", True)),
        )

    def _loss(self, kind: str, x, y):
        tf = self._tf
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits
        if kind == "none":
            z = self.model(x, training=True)
            return tf.reduce_mean(ce(y, z)), tf.reduce_mean(tf.cast(tf.argmax(z, 1) == y, tf.float32))
        if kind in NORMS:
            z = self.model(self._adv(x, y, kind), training=True)
            return tf.reduce_mean(ce(y, z)), tf.reduce_mean(tf.cast(tf.argmax(z, 1) == y, tf.float32))
        if kind in ("max", "avg"):
            xs = tf.concat([self._adv(x, y, n) for n in NORMS], axis=0)
            z = self.model(xs, training=True)
            losses = tf.reshape(ce(tf.tile(y, [3]), z), [3, -1])
            red = tf.reduce_max(losses, axis=0) if kind == "max" else tf.reduce_mean(losses, axis=0)
            return tf.reduce_mean(red), tf.constant(0.0)
        if kind == "ramp":
            q, r = self.pair
            b = tf.shape(x)[0]
            z = self.model(tf.concat([self._adv(x, y, q), self._adv(x, y, r)], axis=0), training=True)
            zq, zr = z[:b], z[b:]
            l_max = tf.reduce_mean(tf.maximum(ce(y, zq), ce(y, zr)))
            lq, lr_ = tf.nn.log_softmax(zq), tf.nn.log_softmax(zr)
            kl = tf.reduce_sum(tf.exp(lq) * (lq - lr_), axis=1)
            gamma = tf.cast(tf.argmax(zq, 1) == y, tf.float32)
            if self.hp.get("ramp_pair_all", False):
                gamma = tf.ones_like(gamma)
            l_kl = tf.reduce_sum(kl * gamma) / tf.maximum(tf.reduce_sum(gamma), 1.0)
            return l_max + float(self.hp["ramp_lambda"]) * l_kl, tf.constant(0.0)
        raise ValueError(kind)

    def _step_fn(self, kind: str, natural: bool = False):
        key = (kind, natural)
        if key not in self._steps:
            tf = self._tf
            opt = self.opt_nat if natural else self.opt
            model = self.model

            @tf.function(reduce_retracing=True, autograph=False)
            def step(x, y):
                with tf.GradientTape() as tape:
                    loss, acc = self._loss(kind, x, y)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
                return loss, acc

            self._steps[key] = step
        return self._steps[key]

    # -- epochs ---------------------------------------------------------- #
    def _batches(self, n: int, bs: int):
        order = self.rng.permutation(n)
        return [order[i : i + bs] for i in range(0, n, bs)]

    def _epoch(self, x, y, kind: str, natural: bool = False) -> float:
        tf = self._tf
        losses = []
        for idx in self._batches(len(x), int(self.hp["batch_size"])):
            xb, yb = tf.constant(x[idx]), tf.constant(y[idx])
            k = kind
            if kind == "eat":
                w = np.array([1.0 - self.eat_acc["linf"], 1.0 - self.eat_acc["l1"]]) + 1e-3
                k = "linf" if self.rng.random() < w[0] / w.sum() else "l1"
            loss, acc = self._step_fn(k, natural)(xb, yb)
            if kind == "eat":
                m = float(self.hp["eat_momentum"])
                self.eat_acc[k] = m * self.eat_acc[k] + (1 - m) * float(acc)
            losses.append(float(loss))
        return float(np.mean(losses))

    def train_epoch(self, x, y) -> dict:
        if self.mode != "ramp" or not self.hp.get("gp", True):
            return {"loss": self._epoch(x, y, self.mode)}
        # RAMP with gradient projection (once per epoch, per weight tensor)
        m = self.model
        theta_r = [v.numpy() for v in m.trainable_variables]
        rest_r = [v.numpy() for v in m.non_trainable_variables]
        nat_loss = self._epoch(x, y, "none", natural=True)
        theta_n = [v.numpy() for v in m.trainable_variables]
        for v, w in zip(m.trainable_variables, theta_r):
            v.assign(w)
        for v, w in zip(m.non_trainable_variables, rest_r):
            v.assign(w)
        adv_loss = self._epoch(x, y, "ramp")
        beta = float(self.hp["gp_beta"])
        coss = []
        for v, r, n in zip(m.trainable_variables, theta_r, theta_n):
            a = v.numpy()
            if a.ndim == 0 or a.size == 1:
                continue  # scalar tensors keep theta_a
            gn, ga = (n - r).ravel().astype(np.float64), (a - r).ravel().astype(np.float64)
            den = np.linalg.norm(gn) * np.linalg.norm(ga)
            c = float(gn @ ga / den) if den > 0 else 0.0
            coss.append(c)
            v.assign((r + beta * max(c, 0.0) * (n - r) + (1 - beta) * (a - r)).astype(a.dtype))
        # BN statistics (non-trainable) keep theta_a's values
        return {"loss": adv_loss, "natural_loss": nat_loss, "gp_mean_cos": float(np.mean(coss)) if coss else 0.0}


def exit_weights(weights, n_exits: int) -> list[float]:
    """The loss weight of each exit: ``None`` = all 1, else ``n_exits``
    non-negative numbers, not all 0."""
    if weights is None:
        return [1.0] * n_exits
    ok = isinstance(weights, (list, tuple)) and len(weights) == n_exits
    vals = []
    if ok:
        try:
            vals = [float(v) for v in weights]
        except (TypeError, ValueError):
            ok = False
    if not ok or any(not math.isfinite(v) or v < 0 for v in vals) or not any(vals):
        raise DitmosError(
            f"robust 'exit_weights' must be a list of {n_exits} non-negative numbers "
            f"(one per exit, not all 0), got {weights!r}"
        )
    return vals


class MultiExitTrainer:
    """RDI-Nets adversarial training of a multi-exit Keras model (window ->
    list of exit logits, :func:`ditmos.models.baselines.build_early_exit`).

    Loss per batch: ``0.5 * sum_i w_i CE(z_i(x), y) + 0.5 * sum_i w_i CE(z_i(x_adv), y)``
    over the exits i (weights ``exit_weights``, default all 1; ``mode="none"``:
    the clean term alone, unhalved).  ``x_adv`` comes from an attack on every exit:
    ``exit_attack="max_avg"`` runs one PGD per exit (each maximising that
    exit's cross-entropy) and keeps, per window, the candidate with the
    largest summed cross-entropy over all exits; ``"max_all"`` adds the
    PGD on the summed cross-entropy to those candidates; ``"avg"`` is that
    PGD alone (cheaper, weaker)."""

    MODES = ("none", "linf", "l2", "l1")

    def __init__(self, model, radii: dict[str, float], mode: str, hp: dict, *, steps_total: int, seed: int = 0):
        import keras

        if mode not in self.MODES:
            raise DitmosError(
                f"robust mode {mode!r} is not available for the multi-exit "
                f"network; choose one of {', '.join(self.MODES)}"
            )
        if hp.get("exit_attack") not in EXIT_ATTACKS:
            raise DitmosError(
                f"robust 'exit_attack' must be one of {', '.join(EXIT_ATTACKS)}, got {hp.get('exit_attack')!r}"
            )
        self.model, self.radii, self.mode, self.hp = model, dict(radii), mode, dict(hp)
        self.n_exits = len(model.outputs)
        self.weights = exit_weights(hp.get("exit_weights"), self.n_exits)
        self.rng = np.random.default_rng([seed, 11])
        self.opt = keras.optimizers.Adam(lr_schedule(hp, steps_total))
        self._step = None

    def adversarial(self, x, y):
        """The training attack's windows (TF ops; call inside a tf.function)."""
        tf = _tf()
        norm = self.mode
        kw = dict(
            norm=norm,
            eps=float(self.radii[norm]),
            steps=int(self.hp["attack_steps"]),
            step_factor=float(self.hp["step_factor"]),
            l1_sparsity=float(self.hp["l1_sparsity"]),
        )
        if self.hp["exit_attack"] == "avg":
            return pgd_tf(self.model, x, y, objective=all_exits_objective, **kw)
        cands = [pgd_tf(self.model, x, y, objective=exit_objective(k), **kw) for k in range(self.n_exits)]
        if self.hp["exit_attack"] == "max_all":
            cands.append(pgd_tf(self.model, x, y, objective=all_exits_objective, **kw))
        b = tf.shape(x)[0]
        outs = self.model(tf.concat(cands, axis=0), training=False)
        total = tf.reshape(all_exits_objective(outs, tf.tile(y, [len(cands)])), [len(cands), b])
        pick = tf.argmax(total, axis=0, output_type=tf.int32)
        stacked = tf.stack(cands, axis=1)  # [B, E, T, C]
        return tf.stop_gradient(tf.gather(stacked, pick, axis=1, batch_dims=1))

    def _loss(self, x, y):
        tf = _tf()
        w = tf.constant(self.weights, tf.float32)[:, None]
        if self.mode == "none":
            return tf.reduce_mean(tf.reduce_sum(w * exit_ce(self.model(x, training=True), y), axis=0))
        xa = self.adversarial(x, y)
        outs = self.model(tf.concat([x, xa], axis=0), training=True)
        per = tf.reduce_sum(w * exit_ce(outs, tf.tile(y, [2])), axis=0)
        # the clean and the adversarial half, each summed over exits, averaged over windows
        return 0.5 * tf.reduce_sum(per) / tf.cast(tf.shape(x)[0], per.dtype)

    def train_epoch(self, x, y) -> dict:
        tf = _tf()
        if self._step is None:
            model, opt = self.model, self.opt

            @tf.function(reduce_retracing=True, autograph=False)
            def step(xb, yb):
                with tf.GradientTape() as tape:
                    loss = self._loss(xb, yb)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
                return loss

            self._step = step
        order = self.rng.permutation(len(x))
        bs = int(self.hp["batch_size"])
        losses = [
            float(self._step(tf.constant(x[order[i : i + bs]]), tf.constant(y[order[i : i + bs]])))
            for i in range(0, len(x), bs)
        ]
        return {"loss": float(np.mean(losses))}


# --------------------------------------------------------------------------- #
# Validation score (cheap PGD on a fixed subset)
# --------------------------------------------------------------------------- #


def _n_outputs(model) -> int:
    return len(model.outputs)


def robust_correct(
    model, x, y, radii, norms, *, steps: int, batch: int = 500, l1_sparsity: float = 0.05
) -> dict[str, np.ndarray]:
    """Per-window correctness clean and under a cheap PGD of each norm:
    ``[N]`` booleans for a single-output model; ``[E, N]`` (every exit) for a
    multi-exit model, attacked with the all-exits objective."""
    tf = _tf()
    multi = _n_outputs(model) > 1
    objective = all_exits_objective if multi else ce_objective
    cache = model.__dict__.setdefault("_ditmos_val_fns", {})

    def correct(outs, yb):
        outs = outs if multi else [outs]
        return np.stack([np.argmax(np.asarray(z), 1) == yb for z in outs])

    out = {"clean": [], **{n: [] for n in norms}}
    for i in range(0, len(x), batch):
        xb, yb = tf.constant(x[i : i + batch]), tf.constant(y[i : i + batch])
        out["clean"].append(correct(model(xb, training=False), y[i : i + batch]))
        for n in norms:
            key = (n, steps, float(radii[n]))
            if key not in cache:
                cache[key] = tf.function(
                    lambda a, b, n=n: model(
                        pgd_tf(
                            model,
                            a,
                            b,
                            norm=n,
                            eps=float(radii[n]),
                            steps=steps,
                            l1_sparsity=l1_sparsity,
                            objective=objective,
                        ),
                        training=False,
                    ),
                    reduce_retracing=True,
                    autograph=False,
                )
            out[n].append(correct(cache[key](xb, yb), y[i : i + batch]))
    res = {k: np.concatenate(v, axis=1) for k, v in out.items()}
    return res if multi else {k: v[0] for k, v in res.items()}


def validation_score(mode: str, model, x, y, radii, hp) -> dict:
    """Clean and cheap-PGD accuracies and the score that picks the epoch: the
    share of windows right clean and under the mode's norm(s) (a multi-exit
    model: averaged over its exits)."""
    norms = () if mode == "none" else ((mode,) if mode in NORMS else NORMS)
    ok = robust_correct(model, x, y, radii, norms, steps=int(hp["val_steps"]), l1_sparsity=float(hp["l1_sparsity"]))
    res = {k: float(v.mean()) for k, v in ok.items()}
    allok = ok["clean"].copy()
    for n in norms:
        allok &= ok[n]
    res["score"] = float(allok.mean())
    return res


def per_exit_grid(val_outs, max_points: int = 2000) -> list[tuple[float, ...]]:
    """Candidate per-exit thresholds: for each early exit, quantiles of its
    max softmax probability on the validation windows (plus +inf: the exit
    never answers), every combination over the early exits, at most about
    ``max_points`` combinations."""
    from ditmos.training.baselines import _softmax

    n_early = len(val_outs) - 1
    per = max(2, int(math.floor(max_points ** (1.0 / max(1, n_early)))) - 1)
    axes = []
    for z in val_outs[:-1]:
        conf = _softmax(z).max(axis=-1)
        axes.append(np.unique(np.concatenate([np.quantile(conf, np.linspace(0, 1, per)), [np.inf]])))
    mesh = np.meshgrid(*axes, indexing="ij")
    return [tuple(float(v) for v in row) for row in np.stack([m.ravel() for m in mesh], axis=1)]


def _exit_index(confs: np.ndarray, thresholds) -> np.ndarray:
    """Exit taken per window: ``confs`` [E-1, N] max softmax probabilities of
    the early exits, one threshold per early exit (the last exit answers
    the rest).  The rule of :func:`ditmos.training.baselines.apply_threshold`."""
    stop = confs >= np.asarray(thresholds, np.float64)[:, None]
    stop = np.concatenate([stop, np.ones((1, confs.shape[1]), bool)])
    return np.argmax(stop, axis=0)


def choose_exit_thresholds(
    val_outs, y_val, exit_macs, mac_budget: float, *, sub_outs=None, ys=None, adv_outs=(), max_points: int = 2000
) -> dict:
    """One confidence threshold per early exit, chosen on VALIDATION data
    only among :func:`per_exit_grid`'s combinations: the combination whose
    average clean MACs on the validation windows ``val_outs`` stay within
    ``mac_budget`` and which scores best; if none fits, the cheapest.

    Score: without ``adv_outs``, clean validation accuracy (ties: fewer
    MACs).  With ``adv_outs`` (exit outputs of attacked copies of the
    validation subset ``sub_outs``/``ys``), the share of that subset the
    policy answers correctly clean and on every attacked copy (ties: higher
    clean validation accuracy, then fewer MACs)."""
    from ditmos.training.baselines import _softmax

    macs = np.asarray(exit_macs, np.float64)
    y_val = np.asarray(y_val)

    def prepared(outs):
        return (
            np.stack([_softmax(z).max(axis=-1) for z in outs[:-1]]),
            np.stack([np.argmax(z, axis=-1) for z in outs]),
        )

    val = prepared(val_outs)
    subs = [prepared(o) for o in ([sub_outs] if adv_outs else []) + list(adv_outs)]
    rows = []
    for t in per_exit_grid(val_outs, max_points):
        chosen = _exit_index(val[0], t)
        acc = float(np.mean(val[1][chosen, np.arange(len(chosen))] == y_val))
        avg = float(macs[chosen].mean())
        if subs:
            ok = np.ones(len(ys), bool)
            for conf, pred in subs:
                e = _exit_index(conf, t)
                ok &= pred[e, np.arange(len(e))] == ys
            score = float(ok.mean())
        else:
            score = acc
        rows.append((score, acc, avg, t))
    feasible = [r for r in rows if r[2] <= mac_budget]
    if feasible:
        score, acc, avg, t = max(feasible, key=lambda r: (r[0], r[1], -r[2]))
    else:
        score, acc, avg, t = min(rows, key=lambda r: (r[2], -r[0]))
    out = {
        "threshold": [float(v) for v in t],
        "val_accuracy": acc,
        "val_avg_macs": avg,
        "within_budget": bool(feasible),
        "candidates": len(rows),
    }
    if subs:
        out["val_robust_score"] = score
    return out


def choose_robust_threshold(
    model, x_val, y_val, xs, ys, radii, mode: str, hp: dict, exit_macs, mac_budget: float
) -> dict:
    """The exit threshold chosen for robustness, on VALIDATION data only.

    On the subset ``xs, ys`` (of the validation split) the mode's attack is
    run once per exit (that exit's cross-entropy) and once on all exits
    jointly, each a cheap PGD independent of the threshold.  For every
    candidate threshold a window of the subset counts as right when the exit
    policy answers it correctly clean and on every one of those adversarial
    windows; the threshold kept is the one with the most such windows whose
    average clean MACs on the whole validation split stay within
    ``mac_budget`` (ties: higher clean accuracy, then fewer MACs); if none
    fits, the cheapest.  The attacks do not see the threshold, so this is an
    estimate of robustness under the policy attack, not a bound."""
    from ditmos.training.baselines import _softmax, apply_threshold

    tf = _tf()
    if mode not in NORMS:
        raise DitmosError(
            f"robust 'threshold_on': 'robust' needs a single-norm mode ({', '.join(NORMS)}), not {mode!r}"
        )
    n_exits = _n_outputs(model)
    objectives = [exit_objective(k) for k in range(n_exits)] + [all_exits_objective]
    kw = dict(norm=mode, eps=float(radii[mode]), steps=int(hp["val_steps"]), l1_sparsity=float(hp["l1_sparsity"]))
    adv_outs = []
    for obj in objectives:  # eagerly: a few steps on a few hundred windows, once
        xa = np.concatenate(
            [
                np.asarray(
                    pgd_tf(model, tf.constant(xs[i : i + 500]), tf.constant(ys[i : i + 500]), objective=obj, **kw)
                )
                for i in range(0, len(xs), 500)
            ]
        )
        adv_outs.append(_outputs(model, xa))
    val_outs = _outputs(model, x_val)
    sub_outs = _outputs(model, xs)
    if hp.get("exit_thresholds") == "per_exit":
        choice = choose_exit_thresholds(
            val_outs, y_val, exit_macs, mac_budget, sub_outs=sub_outs, ys=ys, adv_outs=adv_outs
        )
        return {**choice, "robust_windows": int(len(ys)), "attacks": n_exits + 1}
    confs = np.concatenate([_softmax(z).max(axis=-1) for z in val_outs[:-1]])
    grid = np.unique(np.concatenate([np.quantile(confs, np.linspace(0, 1, 201)), [0.0, 1.0, np.inf]]))
    macs = np.asarray(exit_macs, dtype=np.float64)
    rows = []
    for t in grid:
        pred, chosen = apply_threshold(val_outs, float(t), exit_macs)
        ok = apply_threshold(sub_outs, float(t), exit_macs)[0] == ys
        for outs in adv_outs:
            ok &= apply_threshold(outs, float(t), exit_macs)[0] == ys
        rows.append((float(ok.mean()), float(np.mean(pred == y_val)), float(macs[chosen].mean()), float(t)))
    feasible = [r for r in rows if r[2] <= mac_budget]
    if feasible:
        score, acc, avg, t = max(feasible, key=lambda r: (r[0], r[1], -r[2]))
    else:
        score, acc, avg, t = min(rows, key=lambda r: (r[2], -r[0]))
    return {
        "threshold": t,
        "val_accuracy": acc,
        "val_avg_macs": avg,
        "within_budget": bool(feasible),
        "val_robust_score": score,
        "robust_windows": int(len(ys)),
        "attacks": n_exits + 1,
    }


# --------------------------------------------------------------------------- #
# Whole runs
# --------------------------------------------------------------------------- #


def parse_pair(text) -> tuple[str, str] | None:
    if text in (None, "", "auto"):
        return None
    parts = [p.strip() for p in str(text).replace("-", ",").split(",")]
    if len(parts) != 2 or any(p not in NORMS for p in parts) or parts[0] == parts[1]:
        raise DitmosError(
            f"RAMP pair must be two different norms of {', '.join(NORMS)} (e.g. 'linf,l1') or 'auto', got {text!r}"
        )
    return parts[0], parts[1]


def _budget(cfg: dict, input_shape, num_classes: int):
    from ditmos.training.baselines import budget_from_architecture
    from ditmos.training.config import architecture

    return budget_from_architecture(architecture(cfg), input_shape, num_classes)


def _build_single(cfg: dict, input_shape, num_classes: int):
    from ditmos.models.baselines import build_convnet, search_budget_spec
    from ditmos.training.baselines import DEFAULTS as BASE

    budget = _budget(cfg, input_shape, num_classes)
    q = BASE["quick"]
    match = search_budget_spec(
        budget.selector,
        budget.input_shape,
        budget.num_classes,
        target=budget.inference_macs,
        metric="macs",
        depths=q["depths"],
        tolerance=q["tolerance"],
    )[0]
    return match, lambda: build_convnet(match.spec, input_shape, num_classes, name="single")


def _build_early_exit(cfg: dict, input_shape, num_classes: int, mac_factor: float):
    """The multi-exit network of the ``early_exit`` baseline (same builder,
    same backbone rule) with a full-depth cost of ``mac_factor`` x the budget."""
    from ditmos.models.baselines import build_early_exit, early_exit_costs
    from ditmos.training.baselines import DEFAULTS as BASE
    from ditmos.training.baselines import early_exit_spec

    budget = _budget(cfg, input_shape, num_classes)
    spec, ratio = early_exit_spec(
        budget, {"early_exit_mac_factor": float(mac_factor), "tolerance": BASE["quick"]["tolerance"]}
    )
    exit_macs = [int(c.macs) for c in early_exit_costs(spec, input_shape, num_classes)]
    return spec, exit_macs, lambda: build_early_exit(spec, input_shape, num_classes)


def load_init(model, init_dir, *, method: str, dataset: str, normalizer) -> dict:
    """Copy the weights of the finished robust run ``init_dir`` into ``model``
    (fine-tuning).  The run must hold the same kind of network of the same
    dataset with the same normalisation, and its weights the same shapes layer
    by layer; anything else is a clear error.  Returns what robust.json
    records about the starting point."""
    import keras

    src = Path(init_dir)
    info_path = src / "robust.json"
    if not info_path.is_file():
        raise DitmosError(f"init_from {src}: not a finished robust training run (no robust.json)")
    info = json.loads(info_path.read_text())
    if info.get("model") != method or info.get("dataset") != dataset:
        raise DitmosError(
            f"init_from {src}: it trained {info.get('model')!r} on {info.get('dataset')!r}, "
            f"this run trains {method!r} on {dataset!r}"
        )
    try:
        src_norm = json.loads((src / "normalization.json").read_text())
    except (OSError, ValueError) as e:
        raise DitmosError(f"init_from {src}: cannot read normalization.json: {e}") from e
    if src_norm != json.loads(json.dumps(normalizer.to_dict())):
        raise DitmosError(f"init_from {src}: its input normalisation differs from this run's (other data split?)")
    src_model = keras.models.load_model(src / "models" / f"{method}.keras", compile=False)
    shapes_w = [tuple(v.shape) for v in model.weights]
    shapes_h = [tuple(v.shape) for v in src_model.weights]
    if shapes_w != shapes_h:
        raise DitmosError(
            f"init_from {src}: its network differs from the one this run trains "
            f"(spec {info.get('spec', {}).get('channels')} with {len(shapes_h)} weight tensors, "
            f"expected {len(shapes_w)}; first differing shape "
            + next((f"{a} vs {b}" for a, b in zip(shapes_h, shapes_w) if a != b), "count")
            + ")"
        )
    model.set_weights(src_model.get_weights())
    return {"run": str(src), "mode": info.get("mode"), "best_epoch": info.get("best_epoch"), "seed": info.get("seed")}


def proxy_pair(build, data, radii, hp, seed: int) -> tuple[tuple[str, str], dict]:
    """The cheap stand-in for RAMP's v1 rule: one AT epoch per norm from the
    same initialisation on <= 2000 training windows; the two norms with the
    lowest own-norm robust accuracy on 300 validation windows form the pair."""
    import keras

    rng = np.random.default_rng([seed, 5])
    tr = rng.permutation(len(data["x_train"]))[:2000]
    va = rng.permutation(len(data["x_val"]))[:300]
    scores = {}
    for n in NORMS:
        keras.utils.set_random_seed(seed)
        model = build()
        t = RobustTrainer(model, radii, n, hp, steps_total=math.ceil(len(tr) / hp["batch_size"]), seed=seed)
        t.train_epoch(data["x_train"][tr], data["y_train"][tr])
        scores[n] = validation_score(n, model, data["x_val"][va], data["y_val"][va], radii, hp)[n]
    pair = tuple(sorted(NORMS, key=lambda n: (scores[n], NORMS.index(n)))[:2])
    return pair, scores


def train_robust(
    dataset: str,
    out_dir,
    *,
    method: str = "single",
    mode: str,
    seed: int = 0,
    config_file=None,
    overrides: dict | None = None,
    pair=None,
    init_from=None,
    quiet: bool = False,
) -> Path:
    """Adversarially train ``method`` with ``mode`` into a new run directory:
    config.json, splits.npz, normalization.json, models/METHOD.keras and
    robust.json (mode, hyper-parameters, per-epoch history, clean and cheap-PGD
    accuracies of the kept epoch on validation and test; for the multi-exit
    network also its exit costs and the exit threshold chosen on validation).

    ``method="single"``: the equal-MACs single CNN (:class:`RobustTrainer`).
    ``method="early_exit"``: the multi-exit CNN of the ``early_exit``
    baseline, trained RDI-Nets style (:class:`MultiExitTrainer`).

    ``init_from`` (or the ``init_from`` hyper-parameter): fine-tune the
    weights of that finished run instead of a fresh initialisation
    (:func:`load_init`)."""

    import keras

    from ditmos.robust.evaluate import default_radii
    from ditmos.training.checkpoint import atomic_write_json
    from ditmos.training.config import resolve_config
    from ditmos.training.run import prepare_data
    from ditmos.training.rundir import write_model_run

    if method not in METHODS:
        raise DitmosError(f"unknown method {method!r} for robust training; choose one of {', '.join(METHODS)}")
    allowed = ALL_MODES if method == "single" else MultiExitTrainer.MODES
    if mode not in allowed:
        raise DitmosError(
            f"robust mode {mode!r} is not available for --method {method}; choose one of {', '.join(allowed)}"
        )
    if pair is not None and mode != "ramp":
        raise DitmosError("a RAMP key pair only applies to --robust ramp")
    run_dir = Path(out_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise DitmosError(f"{run_dir} exists and is not empty; choose a new --out directory")
    user = json.loads(Path(config_file).read_text()) if config_file else {}
    user.update(overrides or {})
    rob = user.pop("robust", {}) or {}
    unknown = sorted(set(rob) - set(DEFAULTS))
    if unknown:
        raise DitmosError(f"unknown 'robust' config key(s) {unknown}; allowed: {sorted(DEFAULTS)}")
    hp = {**DEFAULTS, **rob}
    if pair is not None:
        hp["pair"] = pair
    if init_from is not None:
        hp["init_from"] = str(init_from)
    pair_t = parse_pair(hp["pair"])
    for key in ("mac_factor", "mac_budget"):
        if not isinstance(hp[key], (int, float)) or isinstance(hp[key], bool) or hp[key] <= 0:
            raise DitmosError(f"robust '{key}' must be a positive number, got {hp[key]!r}")
    if hp["exit_attack"] not in EXIT_ATTACKS:
        raise DitmosError(f"robust 'exit_attack' must be one of {', '.join(EXIT_ATTACKS)}, got {hp['exit_attack']!r}")
    if hp["lr_schedule"] not in LR_SCHEDULES:
        raise DitmosError(f"robust 'lr_schedule' must be one of {', '.join(LR_SCHEDULES)}, got {hp['lr_schedule']!r}")
    if hp["init_from"] is not None and not isinstance(hp["init_from"], str):
        raise DitmosError(f"robust 'init_from' must be a run directory (text) or null, got {hp['init_from']!r}")
    if hp["threshold_on"] not in THRESHOLD_ON:
        raise DitmosError(f"robust 'threshold_on' must be one of {', '.join(THRESHOLD_ON)}, got {hp['threshold_on']!r}")
    if hp["exit_thresholds"] not in EXIT_THRESHOLDS:
        raise DitmosError(
            f"robust 'exit_thresholds' must be one of {', '.join(EXIT_THRESHOLDS)}, got {hp['exit_thresholds']!r}"
        )
    # (the multi-exit keys mean nothing to the single CNN, which ignores them,
    # so that one config serves both methods of a comparison)
    if hp["threshold_on"] == "robust" and method == "early_exit" and mode not in NORMS:
        raise DitmosError(
            f"robust 'threshold_on': 'robust' needs a single-norm mode ({', '.join(NORMS)}), not {mode!r}"
        )
    cfg = resolve_config(dataset, "quick", seed=seed, overrides=user)

    tf = _tf()
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    ds, splits, norm, data = prepare_data(cfg)
    input_shape = tuple(int(v) for v in ds.X.shape[1:])
    radii = default_radii(input_shape)
    cert_radii = None
    if mode in CERT_MODES:
        from ditmos.robust.certified import check_hyper, parse_cert_eps

        if method != "single":
            raise DitmosError(f"--robust {mode} trains the single CNN only (--method single)")
        check_hyper(hp)
        cert_radii = parse_cert_eps(hp["cert_eps"], input_shape)
    match, build = _build_single(cfg, input_shape, data["num_classes"])
    if method == "early_exit":
        ee_spec, exit_macs, build = _build_early_exit(cfg, input_shape, data["num_classes"], hp["mac_factor"])
    for k in ("x_train", "x_val", "x_test"):
        data[k] = data[k].astype(np.float32)

    def log(msg):
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    pair_info = None
    if mode == "ramp":
        if pair_t is None:
            pair_t, sc = proxy_pair(build, data, radii, hp, seed)
            pair_info = {"rule": "proxy (1 AT epoch per norm, 300 val windows)", "scores": sc}
        else:
            pair_info = {"rule": "given"}
        pair_info["pair"] = list(pair_t)
        log(f"RAMP key pair: {pair_t[0]}, {pair_t[1]} ({pair_info['rule']})")

    keras.utils.set_random_seed(seed)
    model = build()
    init_info = None
    if hp["init_from"]:
        init_info = load_init(model, hp["init_from"], method=method, dataset=cfg["dataset"], normalizer=norm)
        log(f"fine-tuning from {hp['init_from']} ({init_info['mode']}, epoch {init_info['best_epoch']})")
    n_batches = math.ceil(len(data["x_train"]) / int(hp["batch_size"]))
    if mode in CERT_MODES:
        from ditmos.robust.certified import CertifiedTrainer

        trainer = CertifiedTrainer(model, cert_radii, mode, hp, steps_per_epoch=n_batches, seed=seed)
    elif method == "single":
        trainer = RobustTrainer(
            model, radii, mode, hp, steps_total=n_batches * int(hp["epochs"]), pair=pair_t, seed=seed
        )
    else:
        trainer = MultiExitTrainer(model, radii, mode, hp, steps_total=n_batches * int(hp["epochs"]), seed=seed)
    vrng = np.random.default_rng([seed, 3])
    vi = np.sort(vrng.permutation(len(data["x_val"]))[: int(hp["val_samples"])])
    xv, yv = data["x_val"][vi], data["y_val"][vi]
    history, best = [], None
    t0 = time.monotonic()
    for ep in range(int(hp["epochs"])):
        info = trainer.train_epoch(data["x_train"], data["y_train"])
        if mode in CERT_MODES:
            from ditmos.robust.certified import certified_validation_score

            val = certified_validation_score(mode, model, xv, yv, cert_radii)
        else:
            val = validation_score(mode, model, xv, yv, radii, hp)
        history.append(
            {
                "epoch": ep + 1,
                **{k: round(v, 5) for k, v in info.items()},
                **{f"val_{k}": round(v, 5) for k, v in val.items()},
            }
        )
        if best is None or val["score"] > best[0]:
            best = (val["score"], ep + 1, model.get_weights())
        log(
            f"{method} {mode} epoch {ep + 1}/{hp['epochs']}: loss {info['loss']:.4f}, val clean "
            f"{val['clean']:.4f}, val score {val['score']:.4f} ({time.monotonic() - t0:.0f} s)"
        )
    model.set_weights(best[2])
    seconds = time.monotonic() - t0

    def accs(x, y):
        r = robust_correct(model, x, y, radii, NORMS, steps=int(hp["val_steps"]), l1_sparsity=float(hp["l1_sparsity"]))
        u = r["clean"] & r["linf"] & r["l2"] & r["l1"]
        if method == "single":
            return {**{k: round(float(v.mean()), 5) for k, v in r.items()}, "union": round(float(u.mean()), 5)}
        # per exit (each exit alone, attacked through the all-exits objective)
        return {
            **{k: [round(float(e), 5) for e in v.mean(axis=1)] for k, v in r.items()},
            "union": [round(float(e), 5) for e in u.mean(axis=1)],
        }

    summary = {
        "format": FORMAT,
        "model": method,
        "mode": mode,
        "dataset": cfg["dataset"],
        "seed": seed,
        "input_shape": list(input_shape),
        "class_names": list(data["class_names"]),
        "radii": radii,
        "hyper": hp,
        "pair": pair_info,
        "init": init_info,
        "best_epoch": best[1],
        "train_seconds": round(seconds, 1),
        "history": history,
    }
    if cert_radii is not None:
        from ditmos.robust.certified import certified_validation_score

        summary["cert_radii"] = cert_radii
        summary["certified"] = {
            k: {a: round(b, 5) for a, b in certified_validation_score(mode, model, xs, ys, cert_radii).items()}
            for k, xs, ys in (("val", data["x_val"], data["y_val"]), ("test", data["x_test"], data["y_test"]))
        }
    if method == "single":
        summary.update(spec=match.spec.to_dict(), macs=int(match.cost.macs), params=int(match.cost.params))
    else:
        from ditmos.models.baselines import count_cost
        from ditmos.training.baselines import apply_threshold, choose_threshold

        budget_macs = float(hp["mac_budget"]) * match.cost.macs
        val_outs = [np.asarray(o) for o in _outputs(model, data["x_val"])]
        if hp["threshold_on"] == "robust":
            log("choosing the exit threshold on robust validation accuracy")
            choice = choose_robust_threshold(
                model, data["x_val"], data["y_val"], xv, yv, radii, mode, hp, exit_macs, budget_macs
            )
        elif hp["exit_thresholds"] == "per_exit":
            choice = choose_exit_thresholds(val_outs, data["y_val"], exit_macs, budget_macs)
        else:
            choice = choose_threshold(val_outs, data["y_val"], exit_macs, budget_macs)
        test_outs = [np.asarray(o) for o in _outputs(model, data["x_test"])]
        pred, chosen = apply_threshold(test_outs, choice["threshold"], exit_macs)
        em = np.asarray(exit_macs, np.float64)
        cost = count_cost(model)
        summary.update(
            spec=ee_spec.to_dict(),
            params=int(cost.params),
            exit_macs=exit_macs,
            max_macs=int(exit_macs[-1]),
            single_macs=int(match.cost.macs),
            exit_policy={
                "rule": "first exit whose max softmax probability >= its threshold (the last exit always answers)",
                **(
                    {"threshold": None, "thresholds": [_finite_or_none(t) for t in choice["threshold"]]}
                    if isinstance(choice["threshold"], list)
                    else {"threshold": choice["threshold"]}
                ),
                "mac_budget": round(budget_macs, 1),
                "chosen_on": hp["threshold_on"],
                **({"val_robust_score": round(choice["val_robust_score"], 5)} if "val_robust_score" in choice else {}),
                "within_budget": choice["within_budget"],
                "val_accuracy": round(choice["val_accuracy"], 5),
                "val_avg_macs": round(choice["val_avg_macs"], 1),
            },
            test={
                "accuracy": round(float(np.mean(pred == data["y_test"])), 5),
                "avg_macs": round(float(em[chosen].mean()), 1),
                "exit_fractions": [
                    round(float(f), 4) for f in np.bincount(chosen, minlength=len(exit_macs)) / len(chosen)
                ],
            },
        )
        summary["macs"] = int(round(summary["test"]["avg_macs"]))
    summary["cheap_pgd"] = {
        "steps": int(hp["val_steps"]),
        "val": accs(data["x_val"], data["y_val"]),
        "test": accs(data["x_test"], data["y_test"]),
    }
    write_model_run(run_dir, config=cfg, splits=splits, normalizer=norm, model=model, name=method)
    # the network-run layout too, so that `ditmos quantize RUN` converts it to int8
    from ditmos.training.network_run import write_network_export

    val_acc = summary["cheap_pgd"]["val"]["clean"]
    test_acc = summary["cheap_pgd"]["test"]["clean"]
    if method == "single":
        result = {
            "val_accuracy": val_acc,
            "test_accuracy": test_acc,
            "macs": summary["macs"],
            "params": summary["params"],
            "spec": summary["spec"],
        }
    else:
        result = {
            "val_accuracy": summary["exit_policy"]["val_accuracy"],
            "test_accuracy": summary["test"]["accuracy"],
            "macs": summary["macs"],
            "params": summary["params"],
            "spec": summary["spec"],
            "threshold": choice["threshold"],
            "exit_macs": exit_macs,
            "max_macs": summary["max_macs"],
            "exit_fractions": summary["test"]["exit_fractions"],
        }
    write_network_export(
        run_dir,
        model=model,
        method=ROBUST_NETWORK_METHOD[method],
        class_names=list(data["class_names"]),
        input_shape=input_shape,
        result=result,
    )
    atomic_write_json(run_dir / "robust.json", summary)  # last: marks the run as finished
    return run_dir


def _finite_or_none(t):
    return float(t) if t is not None and math.isfinite(float(t)) else None


def _outputs(model, x: np.ndarray, batch: int = 1024) -> list[np.ndarray]:
    """Every output of ``model`` on ``x`` (inference mode, in batches)."""
    parts = []
    for i in range(0, len(x), batch):
        o = model(x[i : i + batch], training=False)
        parts.append([np.asarray(t) for t in (o if isinstance(o, (list, tuple)) else [o])])
    return [np.concatenate(p) for p in zip(*parts)]
