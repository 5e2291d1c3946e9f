"""Small Keras models in the export contract shape (docs/artefacts.md §2),
converted to full int8 in the int8-directory layout (§3), for codegen tests.

This is a test fixture only: the product's conversion lives in
``ditmos.quantize``.  It is used while no trained run is available and to keep
the generator tests fast and independent of training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _keras():
    import tensorflow as tf  # noqa: F401  (slow import, only when needed)

    return tf, tf.keras


def build_models(T=32, C=3, K=3, num_classes=4, seed=0, shared=(1,), sel_ch=(8, 24), dense=16):
    """Selector + K classifiers shaped like the export contract.

    The selector has two conv blocks; block b's pooled output is ``feat_<b>``.
    Classifier blocks concatenate their own block output with the selector's
    feature map (heterogeneous feature aggregation) before the next conv.
    """
    tf, keras = _keras()
    keras.utils.set_random_seed(seed)
    L = keras.layers

    def block(x, ch, k, stride=1, name=None, padding="same"):
        x = L.Conv1D(ch, k, strides=stride, padding=padding, name=name)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
        return L.MaxPool1D(2)(x)

    win = keras.Input((T, C), batch_size=1, name="window")
    f1 = block(win, sel_ch[0], 5)
    f2 = block(f1, sel_ch[1], 3, padding="valid")  # wide: keeping feat_1 alive costs memory
    h = L.Flatten()(f2)
    h = L.Dense(dense, activation="relu")(h)
    route = L.Dense(K, name="route")(h)
    outs = [route]
    feats = {1: f1, 2: f2}
    for b in shared:
        outs.append(L.Identity(name=f"feat_{b}")(feats[b]))
    selector = keras.Model(win, outs, name="selector")

    classifiers = []
    for k in range(K):
        win_k = keras.Input((T, C), batch_size=1, name="window")
        sel_in = {b: keras.Input(tuple(feats[b].shape[1:]), batch_size=1, name=f"sel_feat_{b}") for b in shared}
        x = block(win_k, 8, 5)
        x = L.Concatenate()([x, sel_in[1]]) if 1 in shared else x
        if k % 3 == 2:
            # the concatenation feeds a pool, not a conv: it must be materialised;
            # then a strided conv with odd lengths and a SAME max pool
            x = L.MaxPool1D(3, strides=2, padding="same")(x)
            x = L.Conv1D(5, 3, strides=2, padding="same", activation="relu")(x)
            x = L.DepthwiseConv1D(3, depth_multiplier=2, padding="valid")(x)
            x = L.Flatten()(x)
        else:
            x = block(x, 6 + k, 3, stride=1, padding="same")
            y = L.DepthwiseConv1D(3, padding="same", activation="relu6")(x)
        if k % 3 == 2:
            pass
        elif k % 2 == 0:
            x = L.AveragePooling1D(2)(y)
            x = L.Flatten()(x)
        else:  # residual add and global average pooling (MEAN)
            x = L.Add()([x, y])
            x = L.GlobalAveragePooling1D()(x)
        x = L.Dense(dense - 4, activation="relu")(x)
        # odd classifiers end in a softmax (SOFTMAX op, int8 output scale 1/256)
        logits = L.Dense(num_classes, activation="softmax" if k % 2 else None, name="logits")(x)
        inputs = [win_k] + [sel_in[b] for b in shared]
        classifiers.append(keras.Model(inputs, logits, name=f"classifier_{k}"))
    # Perturb BN statistics so folding is not the identity.
    rng = np.random.default_rng(seed)
    for m in [selector, *classifiers]:
        for layer in m.layers:
            if isinstance(layer, L.BatchNormalization):
                n = layer.moving_mean.shape[0]
                layer.moving_mean.assign(rng.normal(0, 0.2, n).astype("float32"))
                layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
                layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
                layer.beta.assign(rng.normal(0, 0.3, n).astype("float32"))
    return selector, classifiers


def make_int8_dir(out: Path, *, T=32, C=3, K=3, num_classes=4, seed=0, n_calib=32, n_test=24, **arch) -> Path:
    """Quantise the models with ``ditmos.quantize`` into the int8 directory
    ``out`` and save ``out/../test_x.npy`` (float windows for the tests)."""
    from ditmos.quantize.run import ExportModels, quantize_models

    out = Path(out)
    selector, classifiers = build_models(T, C, K, num_classes, seed, **arch)
    rng = np.random.default_rng(seed + 1)
    xs = rng.normal(0, 1, (n_calib + n_test, T, C)).astype("float32")
    xs[:, :, 0] += np.sin(np.linspace(0, 6, T))[None, :] * 2
    info = {
        "K": K,
        "shared_blocks": [1],
        "num_classes": num_classes,
        "input_shape": [T, C],
        "class_names": [f"c{i}" for i in range(num_classes)],
    }
    models = ExportModels(export_dir=out.parent, info=info, selector=selector, classifiers=classifiers)
    quantize_models(models, out, xs[:n_calib], {"mean": [0.0] * C, "std": [1.0] * C})
    np.save(out.parent / "test_x.npy", xs[n_calib:])
    return out
