"""Randomized-smoothing certificates from class counts, and the two smoothers.

CERTIFY (Cohen et al.): with ``n0`` noisy predictions pick the top class
``cA`` (ties to the lowest index); with ``n`` further, independent noisy
predictions count ``nA`` votes for ``cA``; ``pL`` is the one-sided
Clopper-Pearson lower confidence bound on ``P(f(x + e) = cA)`` at level
``1 - alpha``.  If ``pL - slack > 1/2`` the smoothed classifier returns
``cA`` with l2 radius ``sigma * Phi^-1(pL - slack)``; otherwise it abstains.
``slack`` is 0 for float smoothing; for integer smoothing it is ``d`` times
the noise table's per-coordinate total-variation distance (see
:mod:`ditmos.smoothing` for what the integer certificate covers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ditmos.errors import DitmosError

ABSTAIN = -1


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided lower ``1 - alpha`` bound on a binomial proportion (``k`` of ``n``)."""
    from scipy.stats import beta

    if not (0 <= k <= n and n > 0):
        raise DitmosError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    if not 0 < alpha < 1:
        raise DitmosError(f"alpha must lie in (0, 1), got {alpha}")
    if k == 0:
        return 0.0
    return float(beta.ppf(alpha, k, n - k + 1))


def radius(p_lower: float, sigma: float, slack: float = 0.0) -> float:
    """``sigma * Phi^-1(p_lower - slack)``, or ``-1.0`` (abstain) at or below 1/2."""
    from scipy.stats import norm

    p = p_lower - slack
    if p <= 0.5:
        return -1.0
    return float(sigma * norm.ppf(p))


@dataclass
class Certificate:
    prediction: int  # class, or ABSTAIN
    radius: float  # l2 radius in normalised input units; -1 when abstaining
    p_lower: float
    top_count: int


def certify_counts(
    counts0: np.ndarray, counts: np.ndarray, sigma: float, alpha: float, slack: float = 0.0
) -> Certificate:
    """The certificate from selection counts ``counts0`` and estimation counts ``counts``."""
    counts0 = np.asarray(counts0)
    counts = np.asarray(counts)
    cA = int(np.argmax(counts0))
    nA, n = int(counts[cA]), int(counts.sum())
    pL = clopper_pearson_lower(nA, n, alpha)
    r = radius(pL, sigma, slack)
    return Certificate(cA if r >= 0 else ABSTAIN, r, pL, nA)


def default_radii(sigma: float) -> list[float]:
    return [round(sigma * f, 4) for f in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)]


def summarize(preds: np.ndarray, radii: np.ndarray, labels: np.ndarray, at: list[float]) -> dict:
    """Certified accuracy at each radius in ``at`` (correct and radius >= r),
    ACR (mean radius of correct certified predictions, 0 otherwise), abstain rate."""
    preds, radii, labels = map(np.asarray, (preds, radii, labels))
    correct = (preds == labels) & (preds != ABSTAIN)
    return {
        "samples": int(len(labels)),
        "certified_accuracy": {f"{r:g}": float(np.mean(correct & (radii >= r))) for r in at},
        "acr": float(np.mean(np.where(correct, radii, 0.0))),
        "abstain_rate": float(np.mean(preds == ABSTAIN)),
        "smoothed_accuracy": float(np.mean(correct)),
    }


def check_sigma(sigma: float) -> float:
    if not (math.isfinite(sigma) and sigma > 0):
        raise DitmosError(f"--sigma must be a positive number (normalised input units), got {sigma}")
    return float(sigma)
