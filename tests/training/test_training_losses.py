"""Each DiTMoS loss term on a hand-computed case."""

import math

import numpy as np
import pytest

from ditmos.training import losses

L3 = math.log(3.0)  # two classes, logits (0, ln 3) -> softmax (0.25, 0.75)
A = -math.log(0.75)  # CE when right
B = -math.log(0.25)  # CE when wrong


def _logits(pred):
    """[B, K] predicted classes -> [B, K, 2] logits with p(pred) = 0.75."""
    pred = np.asarray(pred)
    out = np.zeros(pred.shape + (2,), np.float32)
    np.put_along_axis(out, pred[..., None], L3, axis=-1)
    return out


# y = [0, 1, 0, 1]; right = [[1,1,0], [0,0,0], [0,1,0], [1,0,1]]
Y = np.array([0, 1, 0, 1])
PRED = [[0, 0, 1], [0, 0, 0], [1, 0, 1], [1, 0, 1]]
ROUTE = np.array([2, 0, 1, 2])


def test_masks():
    m = {k: v.numpy() for k, v in losses.loss_masks(_logits(PRED), Y, ROUTE).items()}
    np.testing.assert_array_equal(m["union"], [[0, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(m["overlap"], [[1, 1, 0], [0, 0, 0], [0, 0, 0], [1, 0, 1]])
    np.testing.assert_array_equal(m["single"], [[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(m["selection"], [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_each_term_is_the_masked_mean_ce():
    t = {k: v.numpy() for k, v in losses.loss_terms(_logits(PRED), Y, ROUTE).items()}
    np.testing.assert_allclose(t["union"], [B, B, B], rtol=1e-6)
    np.testing.assert_allclose(t["overlap"], [A, A, A], rtol=1e-6)
    np.testing.assert_allclose(t["single"], [0, A, 0], rtol=1e-6)  # empty mask -> 0
    np.testing.assert_allclose(t["selection"], [B, A, (A + B) / 2], rtol=1e-6)


def test_weighted_sum_with_negative_overlap():
    w = {"union": 0.1, "overlap": 0.03, "single": 0.1, "selection": 1.0}
    total, _ = losses.adversarial_classifier_loss(_logits(PRED), Y, ROUTE, w)
    want = 3 * 0.1 * B - 3 * 0.03 * A + 0.1 * A + (B + A + (A + B) / 2)
    assert float(total) == pytest.approx(want, rel=1e-6)
    only_overlap = {"union": 0.0, "overlap": 1.0, "single": 0.0, "selection": 0.0}
    assert float(losses.adversarial_classifier_loss(_logits(PRED), Y, ROUTE, only_overlap)[0]) == pytest.approx(
        -3 * A, rel=1e-6
    )


def test_selector_target_prefers_confident_right_then_least_confident_wrong():
    # 3 classes; per classifier logits give confidences via softmax
    def lg(p):  # probabilities -> logits
        return np.log(np.asarray(p, np.float32))

    logits = np.stack(
        [
            # sample 0 (y=0): k0 right conf .5, k1 right conf .8, k2 wrong conf .9
            np.stack([lg([0.5, 0.3, 0.2]), lg([0.8, 0.1, 0.1]), lg([0.05, 0.9, 0.05])]),
            # sample 1 (y=2): all wrong, confidences .6 / .4 / .9 -> least confident wrong (k1)
            np.stack([lg([0.6, 0.2, 0.2]), lg([0.4, 0.35, 0.25]), lg([0.05, 0.9, 0.05])]),
        ]
    )
    y = np.array([0, 2])
    np.testing.assert_array_equal(losses.selector_target(logits, y).numpy(), [1, 1])
    route_logits = np.array([[0.0, math.log(4.0)], [0.0, 0.0]], np.float32)  # K=2 toy
    got = float(losses.selector_loss(route_logits, np.array([1, 0])))
    assert got == pytest.approx((-math.log(0.8) + math.log(2.0)) / 2, rel=1e-6)
