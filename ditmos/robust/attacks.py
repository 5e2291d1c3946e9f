"""Adversarial attacks on normalised sensor windows: PGD for l_inf, l_2 and
l_1, and a gradient-free Square attack (l_inf) that needs only logits.

Conventions (shared by every attack here):

* inputs are float32 ``[B, T, C]`` windows after the training normalisation;
  there is no [0, 1] box: sensor windows are unbounded, so the only
  constraint is the norm ball (optionally a ``clip=(lo, hi)`` box, e.g. the
  float range the int8 input quantisation can represent);
* success is decided by the real model's decision rule (``target.predict``);
  a sample counts as broken as soon as ANY iterate of ANY restart is
  misclassified, and that iterate is kept.  Step sizes do not depend on the
  number of steps, so a longer attack replays a shorter one's iterates first:
  robust accuracy cannot rise with more steps;
* ``eps == 0`` returns the clean inputs (robust accuracy = clean accuracy).
"""

from __future__ import annotations

import math

import numpy as np

NORMS = ("linf", "l2", "l1")

# Step size as a fraction of the radius, per norm (independent of the number
# of steps, see the module docstring).
_STEP = {"linf": 0.25, "l2": 0.25, "l1": 0.5}


def _tf():
    import tensorflow as tf
    return tf


def _flat_norm(d: np.ndarray, norm: str) -> np.ndarray:
    f = d.reshape(len(d), -1)
    if norm == "linf":
        return np.abs(f).max(axis=1) if f.size else np.zeros(len(d))
    if norm == "l2":
        return np.sqrt((f * f).sum(axis=1))
    return np.abs(f).sum(axis=1)


def perturbation_norm(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-sample norm of ``x_adv - x``."""
    return _flat_norm((x_adv - x).astype(np.float64), norm)


def project_l1(v: np.ndarray, eps: float) -> np.ndarray:
    """Euclidean projection of each row of ``v`` [B, D] onto the l1 ball of
    radius ``eps`` (sort-based, as in Duchi et al. 2008)."""
    out = v.copy()
    a = np.abs(v)
    inside = a.sum(axis=1) <= eps
    for i in np.nonzero(~inside)[0]:
        u = np.sort(a[i])[::-1]
        cs = np.cumsum(u)
        j = np.arange(1, len(u) + 1)
        rho = np.nonzero(u * j > (cs - eps))[0][-1]
        theta = (cs[rho] - eps) / (rho + 1.0)
        out[i] = np.sign(v[i]) * np.maximum(a[i] - theta, 0.0)
    return out


def _project(delta: np.ndarray, norm: str, eps: float) -> np.ndarray:
    B = len(delta)
    if norm == "linf":
        return np.clip(delta, -eps, eps)
    f = delta.reshape(B, -1)
    if norm == "l2":
        n = np.sqrt((f * f).sum(axis=1, keepdims=True))
        f = f * np.minimum(1.0, eps / np.maximum(n, 1e-12))
        return f.reshape(delta.shape)
    return project_l1(f, eps).reshape(delta.shape)


def _random_start(rng: np.random.Generator, shape, norm: str, eps: float) -> np.ndarray:
    B = shape[0]
    d = int(np.prod(shape[1:]))
    if norm == "linf":
        return rng.uniform(-eps, eps, size=shape).astype(np.float32)
    if norm == "l2":
        g = rng.standard_normal((B, d))
        g /= np.linalg.norm(g, axis=1, keepdims=True) + 1e-12
        r = eps * rng.uniform(0, 1, size=(B, 1)) ** (1.0 / d)
        return (g * r).reshape(shape).astype(np.float32)
    # l1: a random sparse point inside the ball
    g = rng.laplace(size=(B, d))
    g /= np.abs(g).sum(axis=1, keepdims=True) + 1e-12
    return (g * eps * rng.uniform(0, 1, size=(B, 1))).reshape(shape).astype(np.float32)


def _step(grad: np.ndarray, norm: str, alpha: float, l1_sparsity: float) -> np.ndarray:
    B = len(grad)
    if norm == "linf":
        return alpha * np.sign(grad)
    f = grad.reshape(B, -1).astype(np.float64)
    if norm == "l2":
        n = np.sqrt((f * f).sum(axis=1, keepdims=True))
        return (alpha * f / np.maximum(n, 1e-12)).reshape(grad.shape)
    # l1: a sparse step on the k largest-gradient coordinates, l1 length alpha
    d = f.shape[1]
    k = max(1, int(math.ceil(l1_sparsity * d)))
    idx = np.argpartition(-np.abs(f), k - 1, axis=1)[:, :k]
    s = np.zeros_like(f)
    rows = np.arange(B)[:, None]
    s[rows, idx] = np.sign(f[rows, idx]) * (alpha / k)
    return s.reshape(grad.shape)


def _loss_and_grad(target, view: str, x: np.ndarray, y: np.ndarray):
    """Per-sample loss and its input gradient (one compiled graph per target
    and view, reused across batches of any size).  The loss is
    ``target.loss(x, y, view)`` when the target defines one (e.g. the summed
    cross-entropy of every exit), else the cross-entropy of its logits."""
    tf = _tf()
    cache = target.__dict__.setdefault("_grad_fns", {})
    fn = cache.get(view)
    own_loss = getattr(target, "loss", None)
    if fn is None:
        @tf.function(reduce_retracing=True)
        def fn(xt, yt):
            with tf.GradientTape() as tape:
                tape.watch(xt)
                if own_loss is not None:
                    loss = own_loss(xt, yt, view)
                else:
                    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
                        labels=yt, logits=target.logits(xt, view))
            return loss, tape.gradient(loss, xt)
        cache[view] = fn
    loss, g = fn(tf.constant(x, tf.float32), tf.constant(y, tf.int64))
    return np.asarray(loss), np.asarray(g)


def pgd(target, x: np.ndarray, y: np.ndarray, *, norm: str, eps: float, steps: int = 20,
        restarts: int = 1, view: str | None = None, seed: int = 0,
        step_fraction: float | None = None, l1_sparsity: float = 0.05,
        clip: tuple[float, float] | None = None, batch: int = 256) -> np.ndarray:
    """Projected gradient ascent on the cross-entropy of ``target.logits(x, view)``.

    Returns adversarial windows (same shape as ``x``).  The first restart
    starts at ``x`` itself; later ones at a random point of the ball."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    if eps <= 0 or steps <= 0 or len(x) == 0:
        return x.copy()
    view = view or target.views[0]
    alpha = float(eps) * (step_fraction if step_fraction is not None else _STEP[norm])
    rng = np.random.default_rng(seed)
    out = x.copy()
    for lo in range(0, len(x), batch):
        xb, yb = x[lo:lo + batch], y[lo:lo + batch]
        best = xb.copy()
        best_loss = np.full(len(xb), -np.inf)
        broken = target.predict(xb) != yb
        for r in range(max(1, restarts)):
            delta = (np.zeros_like(xb) if r == 0
                     else _project(_random_start(rng, xb.shape, norm, eps), norm, eps))
            for _ in range(steps):
                cur = xb + delta
                if clip is not None:
                    cur = np.clip(cur, clip[0], clip[1])
                loss, g = _loss_and_grad(target, view, cur, yb)
                delta = _project(delta + _step(g, norm, alpha, l1_sparsity), norm, eps)
                cand = xb + delta.astype(np.float32)
                if clip is not None:
                    cand = np.clip(cand, clip[0], clip[1])
                wrong = target.predict(cand) != yb
                newly = wrong & ~broken
                best[newly] = cand[newly]
                broken |= wrong
                # among still-unbroken samples keep the highest-loss iterate
                keep = ~broken & (loss > best_loss)
                best[keep] = cur[keep]
                best_loss = np.where(keep, loss, best_loss)
        out[lo:lo + batch] = best
    return out


def margin(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``logit_y - max_{j != y} logit_j`` (negative = misclassified)."""
    z = np.asarray(logits, np.float64).copy()
    zy = z[np.arange(len(z)), y]
    z[np.arange(len(z)), y] = -np.inf
    return zy - z.max(axis=1)


def square_linf(logits_fn, x: np.ndarray, y: np.ndarray, *, eps: float, queries: int = 300,
                p_init: float = 0.1, seed: int = 0,
                clip: tuple[float, float] | None = None) -> np.ndarray:
    """Square attack (random search, l_inf) adapted to windows [B, T, C]: each
    query redraws the signs of a random segment of time steps (all channels,
    one random sign per channel) at the vertices of the ball and keeps the
    change where the margin loss falls.  Needs only ``logits_fn(x) -> [B, n]``
    (float or the int8 reference's integer scores), so it checks gradient
    masking and attacks the int8 model directly."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    if eps <= 0 or len(x) == 0 or queries <= 0:
        return x.copy()
    rng = np.random.default_rng(seed)
    B, T, C = x.shape

    def clipped(v):
        return v if clip is None else np.clip(v, clip[0], clip[1])

    delta = eps * rng.choice([-1.0, 1.0], size=(B, 1, C)).astype(np.float32) * np.ones((1, T, 1),
                                                                                      np.float32)
    adv = clipped(x + delta)
    m = margin(logits_fn(adv), y)
    for q in range(queries):
        active = np.nonzero(m > 0)[0]
        if len(active) == 0:
            break
        # the segment shrinks as in the original schedule (fractions of the budget)
        frac = q / max(queries, 1)
        p = p_init / (2 ** sum(frac > f for f in (0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)))
        h = max(1, int(round(p * T)))
        starts = rng.integers(0, T - h + 1, size=len(active))
        signs = eps * rng.choice([-1.0, 1.0], size=(len(active), C)).astype(np.float32)
        new = delta[active].copy()
        for j, s in enumerate(starts):
            new[j, s:s + h, :] = signs[j]
        cand = clipped(x[active] + new)
        m_new = margin(logits_fn(cand), y[active])
        better = m_new < m[active]
        idx = active[better]
        delta[idx] = new[better]
        adv[idx] = cand[better]
        m[idx] = m_new[better]
    return adv


def _late_exit_grad(target, x: np.ndarray):
    """Per-window late-exit loss and its input gradient (one compiled graph
    per target)."""
    tf = _tf()
    fn = target.__dict__.get("_late_fn")
    if fn is None:
        @tf.function(reduce_retracing=True)
        def fn(xt):
            with tf.GradientTape() as tape:
                tape.watch(xt)
                loss = target.late_exit_loss(xt)
            return loss, tape.gradient(loss, xt,
                                       unconnected_gradients=tf.UnconnectedGradients.ZERO)
        target.__dict__["_late_fn"] = fn
    loss, g = fn(tf.constant(x, tf.float32))
    return np.asarray(loss), np.asarray(g)


def force_late_exits(target, x: np.ndarray, *, norm: str, eps: float, steps: int = 20,
                     restarts: int = 1, seed: int = 0, step_fraction: float | None = None,
                     l1_sparsity: float = 0.05, clip: tuple[float, float] | None = None,
                     batch: int = 256) -> np.ndarray:
    """Latency denial of service on a multi-exit ``target``: PGD inside the
    norm ball that maximises the MACs the exit policy spends.

    Gradient ascent on ``target.late_exit_loss`` (it rewards lowering the
    confidence of every early exit below the exit threshold); the iterate
    kept per window is the one with the most MACs under the real policy
    (``target.macs``), the clean window included, so MACs under this attack
    are never below the clean ones.  Labels are not needed: the attacker
    only wants the expensive path."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    x = np.asarray(x, np.float32)
    if eps <= 0 or steps <= 0 or len(x) == 0:
        return x.copy()
    alpha = float(eps) * (step_fraction if step_fraction is not None else _STEP[norm])
    rng = np.random.default_rng(seed)
    out = x.copy()
    for lo in range(0, len(x), batch):
        xb = x[lo:lo + batch]
        best = xb.copy()
        best_macs = target.macs(xb).astype(np.float64)
        best_loss = np.full(len(xb), -np.inf)
        for r in range(max(1, restarts)):
            delta = (np.zeros_like(xb) if r == 0
                     else _project(_random_start(rng, xb.shape, norm, eps), norm, eps))
            cur = xb + delta.astype(np.float32)
            for it in range(steps + 1):
                if clip is not None:
                    cur = np.clip(cur, clip[0], clip[1])
                loss, g = _late_exit_grad(target, cur)
                macs = target.macs(cur).astype(np.float64)
                better = (macs > best_macs) | ((macs == best_macs) & (loss > best_loss))
                best[better] = cur[better]
                best_macs = np.where(better, macs, best_macs)
                best_loss = np.where(better, loss, best_loss)
                if it == steps:
                    break
                delta = _project(delta + _step(g, norm, alpha, l1_sparsity), norm, eps)
                cur = xb + delta.astype(np.float32)
        out[lo:lo + batch] = best
    return out
