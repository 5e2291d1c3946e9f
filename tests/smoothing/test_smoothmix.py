"""Training for smoothing (Gaussian augmentation, SmoothMix) of a Keras classifier."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.cli import main
from ditmos.errors import DitmosError
from ditmos.smoothing.training import DEFAULTS, SmoothingTrainer, mc_acr


def _tiny_model(T=32, C=3, n=3):
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((T, C)),
            keras.layers.Conv1D(4, 5),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling1D(4),
            keras.layers.Flatten(),
            keras.layers.Dense(n),
        ]
    )


def _tiny_data(n=64, T=32, C=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((n, T, C)).astype(np.float32) * 0.5
    x[:, :, 0] += (y[:, None] - 1).astype(np.float32)
    return x, y.astype(np.int64)


def test_adversary_lowers_the_smoothed_confidence_and_smoothmix_trains():
    import tensorflow as tf

    x, y = _tiny_data()
    hp = {**DEFAULTS, "batch_size": 32, "steps": 3}
    m = _tiny_model()
    t = SmoothingTrainer(m, "smoothmix", 0.25, hp, 3, steps_total=4, seed=0)
    info = t.train_epoch(x, y, 1)
    assert np.isfinite(info["loss"]) and info["mix_weight"] == pytest.approx(1 / 3)
    assert info["loss"] >= info["noisy_ce"] - 1e-6  # the mixup KL term is >= 0
    noise = tf.random.normal([hp["noises"], *x.shape], stddev=0.25, seed=1)
    x0, xt = t.adversary(tf.constant(x), tf.constant(y), noise, 1.0)
    assert np.array_equal(x0.numpy(), x)  # mix_step 0: the clean side is x itself
    xt = xt.numpy()
    step = np.linalg.norm((xt - x).reshape(len(x), -1), axis=1)
    assert np.all(step <= 3 * t.a + 1e-4)  # T steps of length a at most
    f0, _ = t._soft(tf.constant(x), noise, False)
    f1, _ = t._soft(tf.constant(xt), noise, False)
    p0 = np.take_along_axis(f0.numpy(), y[:, None], 1).mean()
    p1 = np.take_along_axis(f1.numpy(), y[:, None], 1).mean()
    assert p1 < p0  # the smoothed classifier is less sure of the label after the walk
    one = SmoothingTrainer(m, "smoothmix", 0.25, {**hp, "mix_step": 1}, 3, steps_total=4)
    x1, xt1 = one.adversary(tf.constant(x), tf.constant(y), noise, 0.5)
    d1 = np.linalg.norm((x1.numpy() - x).reshape(len(x), -1), axis=1)
    assert np.all(d1 <= 0.5 * one.a + 1e-4) and np.all(d1 > 0.4 * one.a)  # one step, capped
    assert np.all(np.linalg.norm((xt1.numpy() - x).reshape(len(x), -1), axis=1) <= 3 * one.a + 1e-4)
    assert np.isfinite(one.train_epoch(x, y, 1)["loss"])
    with pytest.raises(DitmosError, match="mix_step"):
        SmoothingTrainer(_tiny_model(), "smoothmix", 0.25, {**hp, "mix_step": 2}, 3, steps_total=1)
    g = SmoothingTrainer(_tiny_model(), "gaussian", 0.25, hp, 3, steps_total=4, seed=0)
    gi = g.train_epoch(x, y, 1)
    assert gi["loss"] == pytest.approx(gi["noisy_ce"])
    r = mc_acr(m, x[:10], y[:10], 0.25, 16, 0)
    assert 0 <= r["acr"] <= 0.25 * 1.87 and 0 <= r["smoothed_accuracy"] <= 1
    with pytest.raises(DitmosError, match="unknown smoothing method"):
        SmoothingTrainer(_tiny_model(), "mixup", 0.25, hp, 3, steps_total=1)


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--smoothing", "smoothmix", "--sigma", "0.25"], "--model single only"),
        (["--model", "single", "--smoothing", "gaussian"], "needs --sigma"),
        (["--model", "single", "--smoothing", "gaussian", "--sigma", "0.25", "--robust", "linf"], "separate trainings"),
        (["--model", "single", "--smoothing", "smoothmix", "--sigma", "-1"], "--sigma must lie"),
    ],
)
def test_train_smoothing_bad_arguments(tmp_path, capsys, args, msg):
    assert main(["train", "--dataset", "hapt", "--out", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ditmos: error:") and msg in err[0], err
