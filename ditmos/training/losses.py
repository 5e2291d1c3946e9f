"""DiTMoS loss terms, vectorised over the K classifiers.

Shapes: classifier logits ``[B, K, n_classes]``, labels ``[B]`` (int),
selector routes ``[B]`` (int in 0..K-1).  Each masked term is the mean
cross-entropy over the samples in its mask (0 when the mask is empty), per
classifier, as ``[K]``; :func:`adversarial_classifier_loss` sums the weighted
terms of all classifiers (each classifier's weights only receive gradient
from its own terms, so one sum trains all K independently).
"""

from __future__ import annotations

import tensorflow as tf


def per_sample_ce(logits, y):
    """Cross-entropy of every classifier on every sample: ``[B, K]``."""
    K = tf.shape(logits)[1]
    yk = tf.tile(tf.cast(y, tf.int32)[:, None], [1, K])
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yk, logits=logits)


def correctness(logits, y):
    """``[B, K]`` float: 1 where classifier k predicts the label of sample b."""
    pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.cast(tf.equal(pred, tf.cast(y, tf.int32)[:, None]), tf.float32)


def _masked_mean(ce, mask):
    n = tf.reduce_sum(mask, axis=0)
    return tf.math.divide_no_nan(tf.reduce_sum(ce * mask, axis=0), n)


def loss_masks(logits, y, route):
    """The four sample masks of the adversarial classifier loss, each ``[B, K]``.

    union: no classifier is right (same for every k); overlap: k is right and
    at least one other is; single: only k is right; selection: routed to k.
    """
    right = correctness(logits, y)
    n_right = tf.reduce_sum(right, axis=1, keepdims=True)
    K = tf.shape(logits)[1]
    union = tf.tile(tf.cast(n_right == 0, tf.float32), [1, K])
    overlap = right * tf.cast(n_right >= 2, tf.float32)
    single = right * tf.cast(n_right == 1, tf.float32)
    selection = tf.one_hot(tf.cast(route, tf.int32), K, dtype=tf.float32)
    return {"union": union, "overlap": overlap, "single": single, "selection": selection}


def loss_terms(logits, y, route):
    """Per-classifier terms ``{name: [K]}`` (overlap is the POSITIVE mean CE here)."""
    ce = per_sample_ce(logits, y)
    return {name: _masked_mean(ce, m) for name, m in loss_masks(logits, y, route).items()}


def adversarial_classifier_loss(logits, y, route, weights: dict):
    """w_u*union + w_s*single + w_sel*selection - w_o*overlap, summed over classifiers."""
    t = loss_terms(logits, y, route)
    per_k = (
        weights["union"] * t["union"]
        - weights["overlap"] * t["overlap"]
        + weights["single"] * t["single"]
        + weights["selection"] * t["selection"]
    )
    return tf.reduce_sum(per_k), t


def selector_target(logits, y):
    """Best classifier per sample: argmax_k of +confidence if k is right, -confidence if wrong.

    Confidence is the softmax probability of the class k predicts.
    """
    conf = tf.reduce_max(tf.nn.softmax(logits, axis=-1), axis=-1)
    right = correctness(logits, y)
    score = tf.where(right > 0, conf, -conf)
    return tf.argmax(score, axis=1, output_type=tf.int32)


def selector_loss(route_logits, target):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=route_logits))
