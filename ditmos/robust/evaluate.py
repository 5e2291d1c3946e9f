"""Union robustness: clean, per-norm and union accuracy under attack.

Union accuracy is the share of windows that are classified correctly clean
AND under the attack of every norm (l_inf, l_2, l_1) at its radius.  For
each norm a window counts as broken when any attack (PGD through every
differentiable view of the model, plus the gradient-free Square attack for
l_inf) finds a misclassified point in the ball.

Radii are in the units of the normalised input (each channel has zero mean
and unit standard deviation on the training split).  Curves are evaluated at
increasing fractions of each radius; since the balls are nested, a window
broken at a smaller radius is broken at every larger one, so each curve is
non-increasing by construction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ditmos.errors import DitmosError
from ditmos.robust.attacks import NORMS, pgd_radii, square_linf

CURVE_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def default_radii(input_shape) -> dict[str, float]:
    """Default radii for windows of ``input_shape`` (T, C), normalised units.

    l_inf = 0.1 (a tenth of a channel's standard deviation at every sample).
    l_2 and l_1 are set so that each norm alone is about as hard for an
    undefended model: on hapt (d = T*C = 768) a standard-trained single CNN
    keeps about the same validation accuracy (~73 %) under 10-step PGD at
    l_inf 0.1, l_2 1.8 and l_1 19 (measured, see docs/robustness.md).  Other
    window sizes scale with the dimension as the balls' typical corners do:
    l_2 = 0.65 * l_inf * sqrt(d), l_1 = 0.38 * l_2 * sqrt(d)."""
    d = int(np.prod(input_shape))
    linf = 0.1
    l2 = 0.65 * linf * math.sqrt(d)
    l1 = 0.38 * l2 * math.sqrt(d)
    return {"linf": round(linf, 4), "l2": round(l2, 2), "l1": round(l1, 1)}


def parse_eps(text: str | None, input_shape) -> dict[str, float]:
    """``"linf=0.1,l2=0.8"`` -> radii (missing norms take their defaults)."""
    radii = default_radii(input_shape)
    if not text:
        return radii
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise DitmosError(f"--eps: expected NORM=RADIUS (e.g. linf=0.1), got {part!r}")
        k, v = (s.strip() for s in part.split("=", 1))
        if k not in NORMS:
            raise DitmosError(f"--eps: unknown norm {k!r}; expected one of {', '.join(NORMS)}")
        try:
            val = float(v)
        except ValueError:
            raise DitmosError(f"--eps: radius for {k} must be a number, got {v!r}") from None
        if not math.isfinite(val) or val < 0:
            raise DitmosError(f"--eps: radius for {k} must be finite and >= 0, got {v}")
        radii[k] = val
    return radii


@dataclass
class AttackBudget:
    steps: int = 20
    restarts: int = 2
    square_queries: int = 300
    l1_sparsity: float = 0.05

    def check(self) -> "AttackBudget":
        if self.steps < 0 or self.restarts < 1 or self.square_queries < 0:
            raise DitmosError("attack budget: steps >= 0, restarts >= 1, queries >= 0")
        return self


@dataclass
class UnionResult:
    n: int
    radii: dict[str, float]
    clean: float
    robust: dict[str, float]
    union: float
    curves: dict[str, list[list[float]]] = field(default_factory=dict)
    budget: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _logits_fn(target):
    """Compiled float logits of the target's first view (for Square)."""
    tf = __import__("tensorflow")
    fn = target.__dict__.get("_square_fn")
    if fn is None:
        fn = tf.function(lambda v: target.logits(v, target.views[0]), reduce_retracing=True)
        target.__dict__["_square_fn"] = fn

    def logits(v, batch: int = 2048):
        return np.concatenate(
            [np.asarray(fn(tf.constant(v[i : i + batch], tf.float32))) for i in range(0, len(v), batch)]
        )

    return logits


def attack_norm_radii(
    target, x, y, *, norm: str, radii, budget: AttackBudget, seed: int, clip=None
) -> tuple[np.ndarray, np.ndarray]:
    """Worst case over the target's views (and Square for l_inf) at each of
    ``radii``, all radii in one batched attack: returns (adversarial windows
    [R, N, ...], broken mask [R, N])."""
    y = np.asarray(y, np.int64)
    x = np.asarray(x, np.float32)
    radii = [float(e) for e in radii]
    R, N = len(radii), len(x)
    broken = np.repeat((target.predict(x) != y)[None], R, axis=0)
    adv = np.repeat(x[None], R, axis=0)
    for i, view in enumerate(target.views):
        a, b = pgd_radii(
            target,
            x,
            y,
            norm=norm,
            radii=radii,
            steps=budget.steps,
            restarts=budget.restarts,
            view=view,
            seed=seed + 101 * i,
            l1_sparsity=budget.l1_sparsity,
            clip=clip,
        )
        newly = b & ~broken
        adv[newly] = a[newly]
        broken |= b
    if norm == "linf" and budget.square_queries > 0 and any(e > 0 for e in radii):
        eps_rows = np.repeat(np.array(radii, np.float32), N)
        cand = square_linf(
            _logits_fn(target),
            np.tile(x, (R, 1, 1)),
            np.tile(y, R),
            eps=eps_rows,
            queries=budget.square_queries,
            seed=seed + 7,
            clip=clip,
        ).reshape(adv.shape)
        wrong = (target.predict(cand.reshape((R * N,) + x.shape[1:])) != np.tile(y, R)).reshape(R, N)
        newly = wrong & ~broken
        adv[newly] = cand[newly]
        broken |= wrong
    return adv, broken


def attack_norm(
    target, x, y, *, norm: str, eps: float, budget: AttackBudget, seed: int, clip=None
) -> tuple[np.ndarray, np.ndarray]:
    """Worst case over the target's views (and Square for l_inf): returns
    (adversarial windows, broken mask)."""
    adv, broken = attack_norm_radii(target, x, y, norm=norm, radii=[eps], budget=budget, seed=seed, clip=clip)
    return adv[0], broken[0]


def union_robustness(
    target,
    x,
    y,
    radii: dict[str, float],
    *,
    budget: AttackBudget | None = None,
    seed: int = 0,
    fractions=CURVE_FRACTIONS,
    clip=None,
    progress=None,
) -> tuple[UnionResult, dict[str, np.ndarray]]:
    """Clean / per-norm / union accuracy of ``target`` on (x, y) and the
    adversarial windows at the full radius of each norm."""
    budget = (budget or AttackBudget()).check()
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    if len(x) == 0:
        raise DitmosError("no windows to attack")
    clean_ok = target.predict(x) == y
    fr = sorted(set(float(f) for f in fractions) | {1.0})
    robust, curves, advs, ok_all = {}, {}, {}, clean_ok.copy()
    for norm in NORMS:
        eps = float(radii.get(norm, 0.0))
        a, b = attack_norm_radii(
            target, x, y, norm=norm, radii=[eps * f for f in fr], budget=budget, seed=seed, clip=clip
        )
        # balls are nested: broken at a smaller radius means broken at every larger one
        ever_broken = ~clean_ok | np.logical_or.accumulate(b, axis=0)
        curves[norm] = [[0.0, float(np.mean(clean_ok))]] + [
            [eps * f, float(np.mean(~ever_broken[j]))] for j, f in enumerate(fr)
        ]
        # the full-radius example of a window is the first breaking one (inside every
        # larger ball), so int8 and device checks see the break the float model saw
        first = np.where(b.any(axis=0), np.argmax(b, axis=0), len(fr) - 1)
        advs[norm] = a[first, np.arange(len(x))]
        robust[norm] = float(np.mean(~ever_broken[-1]))
        ok_all &= ~ever_broken[-1]
        if progress:
            progress(norm, 1.0)
    res = UnionResult(
        n=len(x),
        radii={k: float(radii.get(k, 0.0)) for k in NORMS},
        clean=float(np.mean(clean_ok)),
        robust=robust,
        union=float(np.mean(ok_all)),
        curves=curves,
        budget=asdict(budget),
    )
    return res, advs


def _exit_summary(macs_per_exit: np.ndarray, exits: np.ndarray) -> dict:
    fractions = np.bincount(exits, minlength=len(macs_per_exit)) / max(len(exits), 1)
    return {
        "avg_macs": round(float(macs_per_exit[exits].mean()), 1),
        "exit_fractions": [round(float(f), 4) for f in fractions],
    }


def exit_costs(
    target,
    x,
    y,
    advs: dict[str, np.ndarray],
    radii: dict[str, float],
    *,
    budget: AttackBudget,
    seed: int = 0,
    clip=None,
    progress=None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """What a multi-exit ``target`` spends, clean and under attack.

    * ``clean``: average MACs and exit histogram of the clean windows;
    * ``accuracy_attack``: the same on the adversarial windows the accuracy
      attack kept (``advs``, one per norm);
    * ``latency_attack``: under :func:`force_late_exits` (PGD on the
      late-exit loss, ``budget.steps`` x ``budget.restarts``), which only
      tries to make the policy spend MACs; its accuracy is reported too.

    Returns (report, the latency attack's windows per norm)."""
    from ditmos.robust.attacks import force_late_exits

    budget = budget.check()
    em = np.asarray(target.exit_macs, np.float64)
    y = np.asarray(y, np.int64)
    out = {
        "exit_macs": [int(m) for m in target.exit_macs],
        "max_macs": int(em[-1]),
        # the shared threshold (null: never leave early), or null and one per early exit
        "threshold": None
        if isinstance(target.threshold, list) or not np.isfinite(target.threshold)
        else target.threshold,
        "thresholds": [None if not np.isfinite(t) else float(t) for t in target.thresholds],
        "clean": _exit_summary(em, target.exits(x)),
        "accuracy_attack": {n: _exit_summary(em, target.exits(a)) for n, a in advs.items()},
        "latency_attack": {},
    }
    late = {}
    for norm in NORMS:
        eps = float(radii.get(norm, 0.0))
        if eps <= 0:
            continue
        a = force_late_exits(
            target,
            x,
            norm=norm,
            eps=eps,
            steps=budget.steps,
            restarts=budget.restarts,
            seed=seed + 13,
            l1_sparsity=budget.l1_sparsity,
            clip=clip,
        )
        pred, exits = target.decide(a)
        out["latency_attack"][norm] = {**_exit_summary(em, exits), "accuracy": round(float(np.mean(pred == y)), 5)}
        late[norm] = a
        if progress:
            progress(f"latency {norm}", 1.0)
    return out, late
