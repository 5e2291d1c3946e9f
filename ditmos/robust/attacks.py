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


def project_l1(v: np.ndarray, eps) -> np.ndarray:
    """Euclidean projection of each row of ``v`` [B, D] onto the l1 ball of
    radius ``eps`` (a scalar or one radius per row; sort-based, as in Duchi
    et al. 2008, vectorised over the rows)."""
    v = np.asarray(v)
    eps = np.broadcast_to(np.asarray(eps, np.float64), (len(v),))
    a = np.abs(v)
    outside = a.sum(axis=1) > eps
    out = v.copy()
    if not outside.any():
        return out
    ao, eo = a[outside], eps[outside]
    u = -np.sort(-ao, axis=1)
    cs = np.cumsum(u, axis=1)
    j = np.arange(1, u.shape[1] + 1)
    cond = u * j > (cs - eo[:, None])
    rho = u.shape[1] - 1 - np.argmax(cond[:, ::-1], axis=1)  # last index where cond holds
    theta = (cs[np.arange(len(u)), rho] - eo) / (rho + 1.0)
    out[outside] = np.sign(v[outside]) * np.maximum(ao - theta[:, None], 0.0)
    return out


def _col(eps, n: int) -> np.ndarray:
    """A radius per row as a column [n, 1] (float64)."""
    return np.broadcast_to(np.asarray(eps, np.float64), (n,)).reshape(n, 1)


def _project(delta: np.ndarray, norm: str, eps) -> np.ndarray:
    B = len(delta)
    f = delta.reshape(B, -1)
    e = _col(eps, B)
    if norm == "linf":
        return np.clip(f, -e, e).reshape(delta.shape).astype(delta.dtype)
    if norm == "l2":
        n = np.sqrt((f.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
        f = f * np.minimum(1.0, e / np.maximum(n, 1e-12))
        return f.reshape(delta.shape).astype(delta.dtype)
    return project_l1(f, e[:, 0]).reshape(delta.shape).astype(delta.dtype)


def _random_start(rng: np.random.Generator, shape, norm: str, eps) -> np.ndarray:
    B = shape[0]
    d = int(np.prod(shape[1:]))
    e = _col(eps, B)
    if norm == "linf":
        return (rng.uniform(-1, 1, size=(B, d)) * e).reshape(shape).astype(np.float32)
    if norm == "l2":
        g = rng.standard_normal((B, d))
        g /= np.linalg.norm(g, axis=1, keepdims=True) + 1e-12
        r = e * rng.uniform(0, 1, size=(B, 1)) ** (1.0 / d)
        return (g * r).reshape(shape).astype(np.float32)
    # l1: a random sparse point inside the ball
    g = rng.laplace(size=(B, d))
    g /= np.abs(g).sum(axis=1, keepdims=True) + 1e-12
    return (g * e * rng.uniform(0, 1, size=(B, 1))).reshape(shape).astype(np.float32)


def _step(grad: np.ndarray, norm: str, alpha, l1_sparsity: float) -> np.ndarray:
    B = len(grad)
    a = _col(alpha, B)
    f = grad.reshape(B, -1).astype(np.float64)
    if norm == "linf":
        return (a * np.sign(f)).reshape(grad.shape)
    if norm == "l2":
        n = np.sqrt((f * f).sum(axis=1, keepdims=True))
        return (a * f / np.maximum(n, 1e-12)).reshape(grad.shape)
    # l1: a sparse step on the k largest-gradient coordinates, l1 length alpha
    d = f.shape[1]
    k = max(1, int(math.ceil(l1_sparsity * d)))
    idx = np.argpartition(-np.abs(f), k - 1, axis=1)[:, :k]
    s = np.zeros_like(f)
    rows = np.arange(B)[:, None]
    s[rows, idx] = np.sign(f[rows, idx]) * (a / k)
    return s.reshape(grad.shape)


def _attack_fn(target, view: str):
    """A compiled graph per target and view: the per-sample loss, its input
    gradient, and the class the real model decides for the same input (one
    forward pass serves both).  The loss is ``target.loss(x, y, view)`` when
    the target defines one (e.g. the summed cross-entropy of every exit), else
    the cross-entropy of the view's logits."""
    tf = _tf()
    cache = target.__dict__.setdefault("_grad_fns", {})
    fn = cache.get(view)
    own_loss = getattr(target, "loss", None)
    if fn is None:
        both = getattr(target, "logits_and_predict", None)

        @tf.function(reduce_retracing=True)
        def fn(xt, yt):
            with tf.GradientTape() as tape:
                tape.watch(xt)
                if both is not None:
                    logits, pred = both(xt, view)
                elif own_loss is None:
                    logits = target.logits(xt, view)
                    pred = tf.argmax(logits, axis=1)
                else:  # a loss of its own (views without logits); decision: target.predict
                    logits, pred = None, tf.zeros(tf.shape(xt)[:1], tf.int64)
                if own_loss is not None:
                    loss = own_loss(xt, yt, view)
                else:
                    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yt, logits=logits)
            return loss, tape.gradient(loss, xt), pred

        cache[view] = fn
    return fn


def _loss_and_grad(target, view: str, x: np.ndarray, y: np.ndarray):
    """Per-sample cross-entropy, its input gradient and the model's decision."""
    tf = _tf()
    loss, g, pred = _attack_fn(target, view)(tf.constant(x, tf.float32), tf.constant(y, tf.int64))
    if getattr(target, "loss", None) is not None and getattr(target, "logits_and_predict", None) is None:
        pred = target.predict(x)  # a decision rule of its own (e.g. an exit policy)
    return np.asarray(loss), np.asarray(g), np.asarray(pred).astype(np.int64)


def pgd_radii(
    target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    norm: str,
    radii,
    steps: int = 20,
    restarts: int = 1,
    view: str | None = None,
    seed: int = 0,
    step_fraction: float | None = None,
    l1_sparsity: float = 0.05,
    clip: tuple[float, float] | None = None,
    batch: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """PGD at several radii at once: every (radius, restart, window) triple is
    one row of the same batched computation, and the model's decision for each
    iterate comes out of the forward pass that computes the gradient (no
    separate prediction per step).

    Returns ``(adv [R, N, ...], broken [R, N])`` for the R radii: ``broken``
    says some checked iterate (the start of each restart, every step, the
    final point) is misclassified by ``target``'s real decision rule; ``adv``
    holds that iterate, else the highest-loss one.  Restart 0 starts at ``x``
    itself, later ones at a random point of the ball."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    radii = [float(e) for e in np.atleast_1d(radii)]
    N, R, S = len(x), len(radii), max(1, int(restarts))
    adv = np.repeat(x[None], R, axis=0)
    broken = np.zeros((R, N), bool)
    live = [i for i, e in enumerate(radii) if e > 0]
    if N == 0 or not live or steps <= 0:
        if N and live:
            wrong = target.predict(x) != y
            broken[live] = wrong[None]
        return adv, broken
    view = view or target.views[0]
    frac = step_fraction if step_fraction is not None else _STEP[norm]
    rng = np.random.default_rng(seed)
    # rows: (radius, restart, window), radius-major
    ri = np.repeat(np.array(live), S * N)
    si = np.tile(np.repeat(np.arange(S), N), len(live))
    wi = np.tile(np.arange(N), len(live) * S)
    eps_rows = np.array(radii)[ri]
    row_adv = np.empty((len(ri),) + x.shape[1:], np.float32)
    row_broken = np.zeros(len(ri), bool)
    row_loss = np.full(len(ri), -np.inf)

    def clipped(v):
        return v if clip is None else np.clip(v, clip[0], clip[1])

    for lo in range(0, len(ri), batch):
        sl = slice(lo, lo + batch)
        xb, yb, eb = x[wi[sl]], y[wi[sl]], eps_rows[sl]
        delta = np.zeros_like(xb)
        rand = si[sl] > 0
        if rand.any():
            delta[rand] = _project(_random_start(rng, xb[rand].shape, norm, eb[rand]), norm, eb[rand])
        best = xb.copy()
        best_loss = np.full(len(xb), -np.inf)
        brk = np.zeros(len(xb), bool)
        for t in range(steps + 1):
            cur = clipped(xb + delta)
            if t < steps:
                loss, g, pred = _loss_and_grad(target, view, cur, yb)
            else:
                pred, loss = target.predict(cur), None
            wrong = pred != yb
            newly = wrong & ~brk
            best[newly] = cur[newly]
            brk |= wrong
            if loss is not None:
                # among still-unbroken rows keep the highest-loss iterate
                keep = ~brk & (loss > best_loss)
                best[keep] = cur[keep]
                best_loss = np.where(keep, loss, best_loss)
                delta = _project(delta + _step(g, norm, eb * frac, l1_sparsity).astype(np.float32), norm, eb)
        row_adv[sl], row_broken[sl], row_loss[sl] = best, brk, best_loss
    # reduce over restarts: the first breaking restart, else the highest loss
    for j, r in enumerate(live):
        base = j * S * N
        rb = row_broken[base : base + S * N].reshape(S, N)
        rl = np.where(rb, np.inf, row_loss[base : base + S * N].reshape(S, N))
        pick = np.where(rb.any(axis=0), np.argmax(rb, axis=0), np.argmax(rl, axis=0))
        adv[r] = row_adv[base + pick * N + np.arange(N)]
        broken[r] = rb.any(axis=0)
    return adv, broken


def pgd(
    target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    norm: str,
    eps: float,
    steps: int = 20,
    restarts: int = 1,
    view: str | None = None,
    seed: int = 0,
    step_fraction: float | None = None,
    l1_sparsity: float = 0.05,
    clip: tuple[float, float] | None = None,
    batch: int = 1024,
) -> np.ndarray:
    """Projected gradient ascent on the cross-entropy of ``target.logits(x, view)``.

    Returns adversarial windows (same shape as ``x``).  The first restart
    starts at ``x`` itself; later ones at a random point of the ball.  See
    :func:`pgd_radii` (this is its one-radius case)."""
    x = np.asarray(x, np.float32)
    if eps <= 0 or steps <= 0 or len(x) == 0:
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        return x.copy()
    adv, _ = pgd_radii(
        target,
        x,
        y,
        norm=norm,
        radii=[eps],
        steps=steps,
        restarts=restarts,
        view=view,
        seed=seed,
        step_fraction=step_fraction,
        l1_sparsity=l1_sparsity,
        clip=clip,
        batch=batch,
    )
    return adv[0]


def margin(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``logit_y - max_{j != y} logit_j`` (negative = misclassified)."""
    z = np.asarray(logits, np.float64).copy()
    zy = z[np.arange(len(z)), y]
    z[np.arange(len(z)), y] = -np.inf
    return zy - z.max(axis=1)


def square_linf(
    logits_fn,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps,
    queries: int = 300,
    p_init: float = 0.1,
    seed: int = 0,
    clip: tuple[float, float] | None = None,
) -> np.ndarray:
    """Square attack (random search, l_inf) adapted to windows [B, T, C]: each
    query redraws the signs of a random segment of time steps (all channels,
    one random sign per channel) at the vertices of the ball and keeps the
    change where the margin loss falls.  Needs only ``logits_fn(x) -> [B, n]``
    (float or the int8 reference's integer scores), so it checks gradient
    masking and attacks the int8 model directly.  ``eps`` is one radius or
    one per window (several radii are attacked as one batch)."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    e = np.broadcast_to(np.asarray(eps, np.float32), (len(x),)).reshape(-1, 1, 1)
    if not (e > 0).any() or len(x) == 0 or queries <= 0:
        return x.copy()
    rng = np.random.default_rng(seed)
    B, T, C = x.shape

    def clipped(v):
        return v if clip is None else np.clip(v, clip[0], clip[1])

    delta = e * rng.choice([-1.0, 1.0], size=(B, 1, C)).astype(np.float32) * np.ones((1, T, 1), np.float32)
    adv = clipped(x + delta)
    m = margin(logits_fn(adv), y)
    m[e[:, 0, 0] <= 0] = -np.inf  # radius 0: nothing to search
    for q in range(queries):
        active = np.nonzero(m > 0)[0]
        if len(active) == 0:
            break
        # the segment shrinks as in the original schedule (fractions of the budget)
        frac = q / max(queries, 1)
        p = p_init / (2 ** sum(frac > f for f in (0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)))
        h = max(1, int(round(p * T)))
        starts = rng.integers(0, T - h + 1, size=len(active))
        signs = e[active, 0] * rng.choice([-1.0, 1.0], size=(len(active), C)).astype(np.float32)
        new = delta[active].copy()
        seg = (np.arange(T)[None, :] >= starts[:, None]) & (np.arange(T)[None, :] < starts[:, None] + h)
        new = np.where(seg[:, :, None], signs[:, None, :], new)
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
            return loss, tape.gradient(loss, xt, unconnected_gradients=tf.UnconnectedGradients.ZERO)

        target.__dict__["_late_fn"] = fn
    loss, g = fn(tf.constant(x, tf.float32))
    return np.asarray(loss), np.asarray(g)


def force_late_exits(
    target,
    x: np.ndarray,
    *,
    norm: str,
    eps: float,
    steps: int = 20,
    restarts: int = 1,
    seed: int = 0,
    step_fraction: float | None = None,
    l1_sparsity: float = 0.05,
    clip: tuple[float, float] | None = None,
    batch: int = 256,
) -> np.ndarray:
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
        xb = x[lo : lo + batch]
        best = xb.copy()
        best_macs = target.macs(xb).astype(np.float64)
        best_loss = np.full(len(xb), -np.inf)
        for r in range(max(1, restarts)):
            delta = np.zeros_like(xb) if r == 0 else _project(_random_start(rng, xb.shape, norm, eps), norm, eps)
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
        out[lo : lo + batch] = best
    return out
