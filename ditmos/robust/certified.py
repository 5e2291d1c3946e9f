"""Certified training (``ditmos train --robust ibp|cure``) and certified
accuracy (``ditmos robust verify``) with the interval bounds of
:mod:`ditmos.robust.bounds` (docs/robustness.md, section "Certified
robustness").

Modes:

``ibp``   IBP-only certified l_inf training (the standard baseline): after
          ``cert_warmup`` natural epochs the training radius grows linearly
          per step to the certification radius over ``cert_ramp`` epochs;
          loss = kappa * CE(clean) + (1 - kappa) * CE(IBP worst-case logits),
          kappa going from 1 to ``ibp_kappa`` with the radius.
``cure``  CURE-style multi-norm certified training from scratch: an l_inf
          branch (SABR: PGD finds x*, a small box of radius
          ``sabr_lambda * eps_inf`` centred at x* clipped into the l_inf ball
          is propagated with IBP) and an l_2 branch (the same with an l_2 PGD
          point and an l_inf box of radius ``sabr_lambda2 * eps_2``);
          combination per window ``max`` of the two certified losses (or
          ``joint``: their mean, ``cure_combine``); bound alignment: + ``cure_ba``
          x KL(softmax(o_inf) || softmax(o_2)) over the windows whose l_inf box
          is certified, o_* the worst-case logits of the two boxes; after the
          radius ramp, gradient projection once per epoch with the rule of
          RAMP (``cure_gp_beta``; 0 turns it off).

The worst-case logits of a box are ``-lb(z_y - z_j)`` (0 for the true
class), so their cross-entropy with the label is the certified loss.
Batch normalisation uses the batch statistics of the clean windows while
training (and its moving statistics are updated by them).
"""

from __future__ import annotations

import math

import numpy as np

from ditmos.errors import DitmosError
from ditmos.robust.bounds import certify, chain, margin_lower_bounds, propagate

CERT_MODES = ("ibp", "cure")
CERT_NORMS = ("linf", "l2", "l1")
COMBINE = ("max", "joint")

# Hyper-parameters of the certified modes (the "robust" config section).
CERT_DEFAULTS = {
    "cert_eps": None,  # training / selection radii, e.g. "linf=0.03,l2=0.15"; None: default_cert_radii
    "cert_warmup": 1,  # natural epochs before the radius ramp
    "cert_ramp": 4,  # epochs over which the training radius grows to its full value
    "ibp_kappa": 0.5,  # ibp: final weight of the natural loss
    "sabr_lambda": 0.4,  # cure: l_inf box radius / eps_inf
    "sabr_lambda2": 0.1,  # cure: l_inf box radius of the l_2 branch / eps_2
    "cure_combine": "max",  # cure: "max" or "joint" of the two certified losses
    "cure_ba": 1.0,  # cure: bound-alignment weight
    "cure_gp_beta": 0.5,  # cure: gradient-projection blend after the ramp (0: off)
}


def _tf():
    import tensorflow as tf

    return tf


def default_cert_radii(input_shape) -> dict[str, float]:
    """Certification radii for windows of ``input_shape`` (normalised units).

    Interval bounds certify much smaller balls than attacks can break, so
    these are well below the attack radii of
    :func:`ditmos.robust.evaluate.default_radii`: l_inf 0.01 (a tenth of the
    attack radius) and l_2 with the attack radii's dimension scaling,
    0.65 * l_inf * sqrt(d) (hapt, d = 768: 0.18).  l_1 = 2 * l_2 (hapt 0.36):
    an l_1 ball lies inside the l_2 ball of the same radius, so a smaller l_1
    radius would add nothing; the attack scaling (another factor ~10) leaves
    no window certifiable by any of our models, because the interval bounds
    of an l_1 ball grow every first-layer unit at once (docs/robustness.md)."""
    d = int(np.prod(input_shape))
    linf = 0.01
    l2 = round(0.65 * linf * math.sqrt(d), 3)
    return {"linf": linf, "l2": l2, "l1": round(2 * l2, 3)}


def parse_cert_eps(text, input_shape) -> dict[str, float]:
    """``"linf=0.01,l2=0.2"`` -> certification radii (missing norms: defaults)."""
    from ditmos.robust.evaluate import parse_eps

    radii = default_cert_radii(input_shape)
    if text:
        given = parse_eps(text, input_shape)
        named = {p.split("=", 1)[0].strip() for p in str(text).split(",") if "=" in p}
        radii.update({k: given[k] for k in named})
    return radii


def check_hyper(hp: dict) -> None:
    for key in ("cert_warmup", "cert_ramp"):
        if not isinstance(hp[key], int) or isinstance(hp[key], bool) or hp[key] < 0:
            raise DitmosError(f"robust '{key}' must be an integer >= 0, got {hp[key]!r}")
    for key in ("ibp_kappa", "sabr_lambda", "sabr_lambda2", "cure_gp_beta"):
        v = hp[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
            raise DitmosError(f"robust '{key}' must be a number in [0, 1], got {v!r}")
    if not isinstance(hp["cure_ba"], (int, float)) or isinstance(hp["cure_ba"], bool) or hp["cure_ba"] < 0:
        raise DitmosError(f"robust 'cure_ba' must be a number >= 0, got {hp['cure_ba']!r}")
    if hp["cure_combine"] not in COMBINE:
        raise DitmosError(f"robust 'cure_combine' must be one of {', '.join(COMBINE)}, got {hp['cure_combine']!r}")


# --------------------------------------------------------------------------- #
# The trainer
# --------------------------------------------------------------------------- #


def _certified_mask(lb, y):
    """Windows whose every margin lower bound (j != y) is positive."""
    tf = _tf()
    k = tf.shape(lb)[1]
    off = tf.where(tf.one_hot(y, k) > 0, tf.fill(tf.shape(lb), np.float32(np.inf)), lb)
    return tf.reduce_min(off, axis=1) > 0.0


class CertifiedTrainer:
    """Certified training of a chain CNN ``model`` (window -> logits)."""

    def __init__(self, model, radii: dict[str, float], mode: str, hp: dict, *, steps_per_epoch: int, seed: int = 0):
        import keras

        tf = _tf()
        if mode not in CERT_MODES:
            raise DitmosError(f"unknown certified mode {mode!r}; choose one of {', '.join(CERT_MODES)}")
        check_hyper(hp)
        self.ops = chain(model)  # refuses a model the bounds cannot handle, before any training
        self.model, self.radii, self.mode, self.hp = model, dict(radii), mode, dict(hp)
        self.rng = np.random.default_rng([seed, 13])
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        total = self.steps_per_epoch * int(hp["epochs"])
        sched = keras.optimizers.schedules.CosineDecay(float(hp["lr"]), max(1, total))
        self.opt = keras.optimizers.Adam(sched)
        self.opt_nat = keras.optimizers.Adam(sched) if mode == "cure" and hp["cure_gp_beta"] > 0 else None
        self.frac = tf.Variable(0.0, trainable=False, dtype=tf.float32)  # training radius / full radius
        self.epoch = 0
        self.step_count = 0
        self._steps: dict = {}

    # -- schedule -------------------------------------------------------- #
    def _frac_at(self, step: int) -> float:
        warm = int(self.hp["cert_warmup"]) * self.steps_per_epoch
        ramp = int(self.hp["cert_ramp"]) * self.steps_per_epoch
        if step < warm:
            return 0.0
        return 1.0 if ramp == 0 else min(1.0, (step - warm + 1) / ramp)

    @property
    def annealed(self) -> bool:
        """The radius ramp is over (gradient projection may start)."""
        return self.epoch >= int(self.hp["cert_warmup"]) + int(self.hp["cert_ramp"])

    # -- losses ---------------------------------------------------------- #
    def _sabr_box(self, x, y, norm: str, eps, lam: float):
        """A SABR box inside the l_inf ball of radius ``eps`` (l_inf) or
        clipped coordinate-wise to ``eps`` around x (l_2): the PGD point of
        ``norm`` clipped so that a box of radius lam*eps around it stays within
        +-eps of x per coordinate."""
        tf = _tf()
        from ditmos.robust.training import pgd_tf

        steps = int(self.hp["attack_steps"])
        xa = pgd_tf(self.model, x, y, norm=norm, eps=eps, steps=steps, step_factor=float(self.hp["step_factor"]))
        tau = lam * eps
        c = tf.clip_by_value(xa, x - (eps - tau), x + (eps - tau))
        return tf.stop_gradient(c), tau

    def _loss(self, x, y, natural: bool):
        tf = _tf()
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits
        model = self.model
        if natural:
            return tf.reduce_mean(ce(y, model(x, training=True))), tf.constant(0.0)
        f = self.frac
        if self.mode == "ibp":
            eps = f * float(self.radii["linf"])
            b = propagate(model, x, eps, "linf", ref=x, training=True, ops=self.ops)
            lb = margin_lower_bounds(b, y)
            kappa = 1.0 - f * (1.0 - float(self.hp["ibp_kappa"]))
            l_rob = tf.reduce_mean(ce(y, -lb))
            l_nat = tf.reduce_mean(ce(y, b.ref_logits))
            cert = tf.reduce_mean(tf.cast(_certified_mask(lb, y), tf.float32))
            return kappa * l_nat + (1.0 - kappa) * l_rob, cert
        # cure
        e_inf = f * float(self.radii["linf"])
        e_2 = f * float(self.radii["l2"])
        c_inf, t_inf = self._sabr_box(x, y, "linf", e_inf, float(self.hp["sabr_lambda"]))
        c_2, t_2 = self._sabr_box(x, y, "l2", e_2, float(self.hp["sabr_lambda2"]))
        n = tf.shape(x)[0]
        taus = tf.concat([tf.fill([n], t_inf), tf.fill([n], t_2)], axis=0)
        b = propagate(model, tf.concat([c_inf, c_2], axis=0), taus, "box", ref=x, training=True, ops=self.ops)
        lb = margin_lower_bounds(b, tf.concat([y, y], axis=0))
        lb_inf, lb_2 = lb[:n], lb[n:]
        o_inf, o_2 = -lb_inf, -lb_2
        l_inf, l_2 = ce(y, o_inf), ce(y, o_2)
        if self.hp["cure_combine"] == "max":
            loss = tf.reduce_mean(tf.maximum(l_inf, l_2))
        else:
            loss = tf.reduce_mean(0.5 * l_inf + 0.5 * l_2)
        mask = tf.cast(_certified_mask(lb_inf, y), tf.float32)
        if float(self.hp["cure_ba"]) > 0:
            p_log, q_log = tf.nn.log_softmax(o_inf), tf.nn.log_softmax(o_2)
            kl = tf.reduce_sum(tf.exp(p_log) * (p_log - q_log), axis=1)
            loss = loss + float(self.hp["cure_ba"]) * tf.reduce_sum(kl * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
        return loss, tf.reduce_mean(mask)

    def _step_fn(self, natural: bool):
        if natural not in self._steps:
            tf = _tf()
            opt = self.opt_nat if natural else self.opt
            model = self.model

            @tf.function(reduce_retracing=True, autograph=False)
            def step(x, y):
                with tf.GradientTape() as tape:
                    loss, cert = self._loss(x, y, natural)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
                return loss, cert

            self._steps[natural] = step
        return self._steps[natural]

    def _epoch(self, x, y, natural: bool = False) -> tuple[float, float]:
        tf = _tf()
        bs = int(self.hp["batch_size"])
        order = self.rng.permutation(len(x))
        losses, certs = [], []
        step = self.step_count
        for i in range(0, len(x), bs):
            idx = order[i : i + bs]
            if not natural:
                self.frac.assign(self._frac_at(step))
            loss, cert = self._step_fn(natural)(tf.constant(x[idx]), tf.constant(y[idx].astype(np.int32)))
            losses.append(float(loss))
            certs.append(float(cert))
            step += 1
        if not natural:
            self.step_count = step
        return float(np.mean(losses)), float(np.mean(certs))

    def train_epoch(self, x, y) -> dict:
        gp = self.mode == "cure" and float(self.hp["cure_gp_beta"]) > 0 and self.annealed
        if not gp:
            loss, cert = self._epoch(x, y)
            self.epoch += 1
            return {"loss": loss, "train_cert": cert, "eps_frac": float(self.frac.numpy())}
        m = self.model
        theta_r = [v.numpy() for v in m.trainable_variables]
        rest_r = [v.numpy() for v in m.non_trainable_variables]
        nat_loss, _ = self._epoch(x, y, natural=True)
        theta_n = [v.numpy() for v in m.trainable_variables]
        for v, w in zip(m.trainable_variables, theta_r):
            v.assign(w)
        for v, w in zip(m.non_trainable_variables, rest_r):
            v.assign(w)
        loss, cert = self._epoch(x, y)
        cos = gradient_projection(m, theta_r, theta_n, float(self.hp["cure_gp_beta"]))
        self.epoch += 1
        return {
            "loss": loss,
            "train_cert": cert,
            "eps_frac": float(self.frac.numpy()),
            "natural_loss": nat_loss,
            "gp_mean_cos": cos,
        }


def gradient_projection(model, theta_r, theta_n, beta: float) -> float:
    """RAMP's natural/robust connection, per weight tensor: with the robust
    epoch's update g_a = theta - theta_r and the natural epoch's g_n =
    theta_n - theta_r, theta = theta_r + beta * max(cos(g_n, g_a), 0) * g_n +
    (1 - beta) * g_a (scalars keep theta).  Returns the mean cosine."""
    coss = []
    for v, r, n in zip(model.trainable_variables, theta_r, theta_n):
        a = v.numpy()
        if a.ndim == 0 or a.size == 1:
            continue
        gn, ga = (n - r).ravel().astype(np.float64), (a - r).ravel().astype(np.float64)
        den = np.linalg.norm(gn) * np.linalg.norm(ga)
        c = float(gn @ ga / den) if den > 0 else 0.0
        coss.append(c)
        v.assign((r + beta * max(c, 0.0) * (n - r) + (1 - beta) * (a - r)).astype(a.dtype))
    return float(np.mean(coss)) if coss else 0.0


def certified_validation_score(mode: str, model, x, y, radii: dict[str, float]) -> dict:
    """Clean and certified accuracies on (a subset of) the validation split;
    the score that picks the epoch: certified l_inf accuracy (``ibp``) or
    certified union accuracy (``cure``)."""
    ok = certify(model, x, y, {n: radii[n] for n in CERT_NORMS})
    res = {k: float(v.mean()) for k, v in ok.items()}
    res = {"clean": res["clean"], **{f"cert_{n}": res[n] for n in CERT_NORMS}, "cert_union": res["union"]}
    res["score"] = res["cert_linf"] if mode == "ibp" else res["cert_union"]
    return res


# --------------------------------------------------------------------------- #
# Verification of a run
# --------------------------------------------------------------------------- #

VERIFY_FORMAT = "ditmos-robust-verify/1"


def verify_run(
    run_dir, radii: dict[str, float], *, samples: int | None = None, split: str = "test", int8: bool = False
) -> dict:
    """Certified accuracy per norm and certified union accuracy of a single
    CNN run's float model on ``split`` (its first ``samples`` windows); with
    ``int8`` also of its int8 model (``RUN/int8``, interval arithmetic on the
    integer computation, :mod:`ditmos.robust.int8_bounds`)."""
    import time
    from pathlib import Path

    from ditmos.robust.targets import load_target, run_model_kind
    from ditmos.training.rundir import load_run_data

    kind = run_model_kind(run_dir)
    if kind != "single":
        raise DitmosError(
            f"{run_dir}: certified verification supports the single CNN of a "
            f"'ditmos train --method single --robust MODE' run, not {kind!r}"
        )
    data = load_run_data(run_dir)
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_val, data.y_val)
    if samples:
        x, y = x[:samples], y[:samples]
    _, target = load_target(run_dir, "single")
    model = target.model
    int8_dir = Path(run_dir) / "int8"
    if int8 and not (int8_dir / "manifest.json").is_file():
        raise DitmosError(f"{int8_dir}/manifest.json not found: run 'ditmos quantize {run_dir}' first")
    t0 = time.monotonic()
    ok = certify(model, x.astype(np.float32), y, radii)
    out = {
        "format": VERIFY_FORMAT,
        "split": split,
        "n": int(len(y)),
        "radii": {k: float(v) for k, v in radii.items()},
        "clean": round(float(ok["clean"].mean()), 5),
        "certified": {n: round(float(ok[n].mean()), 5) for n in radii},
        "union": round(float(ok["union"].mean()), 5),
        "seconds": round(time.monotonic() - t0, 2),
        "bounds": "interval bounds; l_2/l_1 balls exact at the first affine layer; final-layer margin elision",
    }
    if int8:
        from ditmos.robust.int8_bounds import certify_int8

        t1 = time.monotonic()
        q = certify_int8(int8_dir, x.astype(np.float32), y, radii)
        out["int8"] = {
            "clean": round(float(q["clean"].mean()), 5),
            "certified": {n: round(float(q[n].mean()), 5) for n in radii},
            "union": round(float(q["union"].mean()), 5),
            "seconds": round(time.monotonic() - t1, 2),
            "bounds": "interval arithmetic on the integer graph; exact rounding at every requantisation; "
            "l_2/l_1 through Lagrangian bounds on the quantised first-layer inputs",
        }
    return out


def robust_mode_of(run_dir) -> str | None:
    import json
    from pathlib import Path

    p = Path(run_dir) / "robust.json"
    return json.loads(p.read_text()).get("mode") if p.is_file() else None


def format_verify(res: dict) -> str:
    def pct(v):
        return f"{100 * v:.2f}"

    head = "| model | clean | " + " | ".join(f"cert {n} ({res['radii'][n]:g})" for n in res["certified"]) + " | union |"
    sep = "|" + "---|" * (3 + len(res["certified"]))
    rows = [head, sep]
    for key in ("float", "int8"):
        r = res if key == "float" else res.get("int8")
        if not r:
            continue
        rows.append(
            f"| {key} | {pct(r['clean'])} | "
            + " | ".join(pct(r["certified"][n]) for n in res["certified"])
            + f" | {pct(r['union'])} |"
        )
    return "\n".join(rows)


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b)
