"""Certificate arithmetic on hand-computed cases, and the noise table's promises."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.smoothing import certify as CT
from ditmos.smoothing import noise as N


def test_clopper_pearson_closed_forms():
    # all n votes for the top class: the bound solves p^n = alpha
    assert CT.clopper_pearson_lower(10, 10, 0.001) == pytest.approx(0.001**0.1, rel=1e-12)
    assert CT.clopper_pearson_lower(10000, 10000, 0.001) == pytest.approx(math.exp(math.log(0.001) / 10000), rel=1e-12)
    # one vote of one: p >= alpha
    assert CT.clopper_pearson_lower(1, 1, 0.05) == pytest.approx(0.05)
    assert CT.clopper_pearson_lower(0, 100, 0.001) == 0.0
    # k = n - 1 of n = 2: P(X >= 1) = 1 - (1-p)^2 = alpha -> p = 1 - sqrt(1 - alpha)
    assert CT.clopper_pearson_lower(1, 2, 0.1) == pytest.approx(1 - math.sqrt(0.9))
    with pytest.raises(DitmosError):
        CT.clopper_pearson_lower(3, 2, 0.1)


def test_radius_by_hand():
    assert CT.radius(0.975, 0.5) == pytest.approx(0.5 * 1.959963985, rel=1e-8)
    assert CT.radius(0.8413447461, 0.25) == pytest.approx(0.25, rel=1e-8)  # Phi(1)
    assert CT.radius(0.5, 1.0) == -1.0  # abstain at exactly 1/2
    assert CT.radius(0.6, 1.0, slack=0.1) == -1.0
    assert CT.radius(0.9772498681 + 1e-3, 1.0, slack=1e-3) == pytest.approx(2.0, rel=1e-8)


def test_certify_counts():
    # n = 10000 unanimous, sigma 0.25: pL = 0.001^(1/10000), radius = 0.25 * Phi^-1(pL)
    c = CT.certify_counts([0, 100, 0], [0, 10000, 0], 0.25, 0.001)
    from scipy.stats import norm

    assert c.prediction == 1 and c.top_count == 10000
    assert c.radius == pytest.approx(0.25 * norm.ppf(0.001**1e-4), rel=1e-10)
    assert c.radius == pytest.approx(0.25 * 3.1986, rel=1e-3)  # 1 - pL = 6.9e-4 = Phi(-3.1986)
    # the top class of the selection counts is certified even if others win later
    c = CT.certify_counts([60, 40], [4000, 6000], 1.0, 0.001)
    assert c.prediction == CT.ABSTAIN and c.radius == -1.0


def test_summarize():
    preds = np.array([0, 1, CT.ABSTAIN, 2])
    radii = np.array([0.5, 0.1, -1.0, 1.0])
    labels = np.array([0, 1, 1, 0])
    s = CT.summarize(preds, radii, labels, [0.0, 0.25, 1.0])
    assert s["certified_accuracy"] == {"0": 0.5, "0.25": 0.25, "1": 0.0}
    assert s["acr"] == pytest.approx(0.15)
    assert s["abstain_rate"] == 0.25


@pytest.mark.parametrize("sq", [0.2, 1.0, 6.3, 40.0])
def test_table_is_the_rounded_gaussian(sq):
    t = N.make_table(sq)
    assert t.size & (t.size - 1) == 0 and t.size >= 2 * t.offset + 1
    assert t.thresholds[-1] == N.ONE31
    assert np.all(np.diff(t.thresholds.astype(np.int64)) >= 0)
    ks, p_hat = N.table_pmf(t)
    assert p_hat.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(p_hat, p_hat[::-1], atol=2**-30)  # symmetric
    tv = N.table_tv(t)
    assert 0 < tv < (2 * t.offset + 2) * 2**-31  # only the 2^-31 resolution remains
    # P(r = 0) by hand: 1 - 2 Phi(-1/(2 sq))
    from scipy.stats import norm

    assert p_hat[t.offset] == pytest.approx(1 - 2 * norm.cdf(-0.5 / sq), abs=2**-30)


def test_sampled_noise_statistics():
    t = N.make_table(5.0)
    r = N.sample(t, 3, 0, 400, 500).ravel()
    # rounded Gaussian: variance sigma^2 + 1/12; 200k draws -> std error ~0.05
    assert abs(r.mean()) < 0.05
    assert r.var() == pytest.approx(25 + 1 / 12, rel=0.02)


def test_bad_sigma():
    with pytest.raises(DitmosError, match="positive"):
        N.make_table(0.0)
    with pytest.raises(DitmosError, match="at most"):
        N.make_table(1000.0)


def test_quantising_a_noisy_grid_point_is_adding_rounded_noise():
    """The identity the integer certificate rests on (docs/smoothing.md):
    Q(x~ + e) = clamp(q + round(e / s)) for x~ = s (q - z) on the grid."""
    from ditmos.quantize import qmath

    rng = np.random.default_rng(0)
    s, z, sigma = np.float32(0.0625), -3, 0.4
    q = rng.integers(-128, 128, 20000).astype(np.int32)
    e = rng.standard_normal(q.size) * sigma
    x = ((q - z) * float(s) + e).astype(np.float32)
    lhs = qmath.quantize(x, s, z).astype(np.int32)
    rhs = np.clip(q + np.round(e / float(s)), -128, 127)  # ties have probability 0
    assert np.mean(lhs != rhs) < 1e-3  # only float32 rounding next to a half step
