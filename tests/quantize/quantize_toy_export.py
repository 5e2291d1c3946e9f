"""A small export directory that follows docs/artefacts.md §2 exactly.

Conv1D+BN+ReLU+MaxPool blocks; each classifier concatenates its own block
output with the selector's; a few fitting steps on random data move the
BatchNorm statistics and weights away from their initial values.  Used until
(and besides) the real tiny training run, to test conversion in isolation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _block(x, ch, k, name):
    import keras

    x = keras.layers.Conv1D(ch, k, padding="same", name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.MaxPooling1D(2, name=f"{name}_pool")(x)


def build_models(T=32, C=3, K=3, num_classes=4, shared=(1, 2), head_activation=None, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    chans, kernels = (8, 8, 4), (5, 3, 3)
    inp = keras.Input((T, C), batch_size=1, name="window")
    x, feats = inp, {}
    for b in range(3):
        x = _block(x, chans[b], kernels[b], f"sel{b + 1}")
        if b + 1 in shared:
            feats[b + 1] = x
    h = keras.layers.Dense(16, activation="relu", name="sel_fc")(keras.layers.Flatten()(x))
    route = keras.layers.Dense(K, name="route")(h)
    # Keras order: route first, then features (the flatbuffer orders them differently)
    outs = [route] + [keras.layers.Identity(name=f"feat_{b}")(feats[b]) for b in shared]
    selector = keras.Model(inp, outs, name="selector")
    classifiers = []
    for k in range(K):
        w = keras.Input((T, C), batch_size=1, name="window")
        sel_in = {b: keras.Input(tuple(feats[b].shape[1:]), batch_size=1, name=f"sel_feat_{b}") for b in shared}
        x = w
        for b in range(3):
            x = _block(x, chans[b], kernels[b], f"c{k}_{b + 1}")
            if b + 1 in shared:
                x = keras.layers.Concatenate(name=f"c{k}_cat{b + 1}")([x, sel_in[b + 1]])
        h = keras.layers.Flatten()(x)
        h = keras.layers.Dense(16, activation="relu", name=f"c{k}_fc")(h)
        if head_activation is not None:
            h = keras.layers.Activation(head_activation, name=f"c{k}_act")(h)
        logits = keras.layers.Dense(num_classes, name="logits")(h)
        classifiers.append(keras.Model([w] + [sel_in[b] for b in shared], logits, name=f"classifier_{k}"))
    return selector, classifiers


def make_data(n, T=32, C=3, num_classes=4, seed=0):
    """Learnable random data: the class shifts the mean of one channel."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    x = rng.normal(size=(n, T, C)).astype(np.float32)
    x[:, :, 0] += (y[:, None] - num_classes / 2) * 0.8
    return x, y


def _fit(selector, classifiers, x, y, K, shared, steps=4):
    """A few full-batch SGD steps (batch 1 export models, so loop over windows)."""
    import keras
    import tensorflow as tf

    opt = keras.optimizers.SGD(0.05)
    models = [selector] + classifiers
    for _ in range(steps):
        for i in range(0, len(x), 8):
            xb = tf.constant(x[i : i + 1])
            with tf.GradientTape() as tape:
                outs = selector(xb, training=True)
                loss = tf.reduce_mean(tf.square(outs[0] - tf.one_hot(y[i] % K, K)))
                for clf in classifiers:
                    logits = clf([xb] + list(outs[1:]), training=True)
                    loss += tf.reduce_mean(
                        keras.losses.sparse_categorical_crossentropy(y[i : i + 1], logits, from_logits=True)
                    )
            vars_ = [v for m in models for v in m.trainable_variables]
            opt.apply_gradients(zip(tape.gradient(loss, vars_), vars_))


def write_export(
    export_dir, *, T=32, C=3, K=3, num_classes=4, shared=(1, 2), head_activation=None, fit=True, seed=0
) -> Path:
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    selector, classifiers = build_models(T, C, K, num_classes, shared, head_activation, seed)
    if fit:
        x, y = make_data(64, T, C, num_classes, seed)
        _fit(selector, classifiers, x, y, K, shared)
    selector.save(export_dir / "selector.keras")
    for k, clf in enumerate(classifiers):
        clf.save(export_dir / f"classifier_{k}.keras")
    (export_dir / "export.json").write_text(
        json.dumps(
            {
                "K": K,
                "shared_blocks": list(shared),
                "num_classes": num_classes,
                "input_shape": [T, C],
                "class_names": [f"c{i}" for i in range(num_classes)],
            }
        )
    )
    return export_dir
