"""Interval bounds and certified training: the bounds are sound (no point of
a ball, random or found by PGD, has a margin below the certified lower
bound), exact at radius 0, never looser than logit boxes; a certified window
cannot be broken by PGD; the certified modes train; bad models and radii get
clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.robust.bounds import certify, chain, logit_bounds, margin_lower_bounds, propagate

T, C, K = 32, 3, 4


def _model(seed=0, padding="same"):
    """The single-CNN layer set (Conv1D without bias, BN with non-trivial
    statistics, ReLU / ReLU6, max pooling, flatten, hidden dense, logits)."""
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    m = keras.Sequential(
        [
            keras.Input((T, C)),
            L.Conv1D(6, 5, padding=padding, use_bias=False),
            L.BatchNormalization(),
            L.ReLU(),
            L.MaxPooling1D(2),
            L.Conv1D(8, 3, padding=padding, use_bias=False),
            L.BatchNormalization(),
            L.ReLU(max_value=6.0),
            L.AveragePooling1D(2),
            L.Flatten(),
            L.Dense(16, activation="relu"),
            L.Dense(K),
        ]
    )
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 2, n), rng.normal(0, 0.3, n), rng.normal(0, 0.2, n), rng.uniform(0.5, 2, n)]
            )
    return m


def _margins(m, x, y):
    z = np.asarray(m(x, training=False))
    return z[np.arange(len(y)), y][:, None] - z


def _ball_points(rng, x, norm, eps, n):
    """``n`` random points on the boundary of each window's ball (vertices for l_1)."""
    b, d = len(x), x[0].size
    if norm == "linf":
        delta = rng.choice([-eps, eps], size=(n, b, d))
    elif norm == "l2":
        delta = rng.standard_normal((n, b, d))
        delta *= eps / np.linalg.norm(delta, axis=2, keepdims=True)
    else:
        delta = np.zeros((n, b, d))
        idx = rng.integers(0, d, size=(n, b))
        np.put_along_axis(delta, idx[..., None], eps * rng.choice([-1.0, 1.0], size=(n, b, 1)), axis=2)
    return (x[None] + delta.reshape((n,) + x.shape)).astype(np.float32)


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.3), ("l1", 0.8)])
def test_no_point_of_the_ball_goes_below_the_certified_margin(norm, eps):
    import tensorflow as tf

    from ditmos.robust.training import pgd_tf

    m = _model()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, T, C)).astype(np.float32)
    y = rng.integers(0, K, 6)
    lb = np.asarray(margin_lower_bounds(propagate(m, x, eps, norm), y))
    pts = _ball_points(rng, x, norm, eps, 30)
    adv = np.asarray(pgd_tf(m, tf.constant(x), tf.constant(y), norm=norm, eps=eps, steps=5))
    worst = np.min([_margins(m, p, y) for p in list(pts) + [adv]], axis=0)
    assert np.all(worst >= lb - 1e-4)
    assert np.all(lb[np.arange(6), y] == 0)


def test_bounds_are_exact_at_radius_zero_and_tighter_than_logit_boxes():
    m = _model(seed=2, padding="valid")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, T, C)).astype(np.float32)
    y = rng.integers(0, K, 8)
    for norm in ("linf", "l2", "l1"):
        lb0 = np.asarray(margin_lower_bounds(propagate(m, x, 0.0, norm), y))
        assert np.allclose(lb0, _margins(m, x, y), atol=1e-4)
    b = propagate(m, x, 0.05, "linf")
    lb = np.asarray(margin_lower_bounds(b, y))
    lo, hi = (np.asarray(t) for t in logit_bounds(b))
    naive = lo[np.arange(8), y][:, None] - hi
    naive[np.arange(8), y] = 0
    assert np.all(lb >= naive - 1e-5) and np.any(lb > naive + 1e-3)


def test_chain_refuses_branching_models_with_a_clear_error():
    import keras

    inp = keras.Input((T, C))
    a = keras.layers.Conv1D(4, 3)(inp)
    b = keras.layers.Conv1D(4, 3)(inp)
    out = keras.layers.Dense(K)(keras.layers.Flatten()(keras.layers.Concatenate()([a, b])))
    with pytest.raises(DitmosError, match="not supported"):
        chain(keras.Model(inp, out))
    with pytest.raises(DitmosError, match="unknown input set"):
        propagate(_model(), np.zeros((1, T, C), np.float32), 0.1, "l3")


def _data(n=192, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    x = 0.3 * rng.standard_normal((n, T, C)).astype(np.float32)
    x[:, :, 0] += y[:, None].astype(np.float32) - 1.5  # an easy signal
    return x, y.astype(np.int64)


@pytest.mark.parametrize("mode", ["ibp", "cure"])
def test_certified_training_certifies_windows_that_pgd_cannot_break(mode):
    import keras
    import tensorflow as tf

    from ditmos.robust.certified import CertifiedTrainer
    from ditmos.robust.training import DEFAULTS, pgd_tf

    m = _model(seed=3, padding="valid")
    keras.utils.set_random_seed(3)
    x, y = _data(n=256)
    radii = {"linf": 0.02, "l2": 0.1, "l1": 0.2}
    hp = {**DEFAULTS, "epochs": 4, "batch_size": 32, "lr": 1e-2, "attack_steps": 2, "cert_warmup": 1, "cert_ramp": 1}
    hp["cure_gp_beta"] = 0.5
    tr = CertifiedTrainer(m, radii, mode, hp, steps_per_epoch=8, seed=0)
    hist = [tr.train_epoch(x, y) for _ in range(4)]
    assert hist[-1]["eps_frac"] == 1.0
    if mode == "cure":
        assert "gp_mean_cos" in hist[-1]  # gradient projection after the ramp
    ok = certify(m, x, y, radii)
    assert ok["linf"].mean() > 0.3  # training made many windows certifiable
    for norm, eps in radii.items():
        adv = np.asarray(pgd_tf(m, tf.constant(x), tf.constant(y), norm=norm, eps=eps, steps=5))
        broken = np.argmax(np.asarray(m(adv, training=False)), 1) != y
        assert not np.any(ok[norm] & broken), norm
    assert np.all(ok["union"] <= ok["clean"])


def test_certified_hyper_parameters_are_checked():
    from ditmos.robust.certified import check_hyper
    from ditmos.robust.training import DEFAULTS

    with pytest.raises(DitmosError, match="sabr_lambda"):
        check_hyper({**DEFAULTS, "sabr_lambda": 2})
    with pytest.raises(DitmosError, match="cure_combine"):
        check_hyper({**DEFAULTS, "cure_combine": "sum"})


def test_verify_needs_a_single_cnn_run(tmp_path, capsys):
    from ditmos.cli import main

    assert main(["robust", "verify", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ditmos: error:") and "robust.json not found" in err[-1]


@pytest.mark.slow
def test_cli_trains_cure_and_verifies_the_run(tmp_path, capsys):
    import json

    from ditmos.cli import main

    cfg = tmp_path / "cfg.json"
    robust = {"epochs": 1, "attack_steps": 2, "val_samples": 50, "val_steps": 2, "cert_warmup": 0, "cert_ramp": 0}
    cfg.write_text(json.dumps({"subset": 200, "robust": robust}))
    run = tmp_path / "cure"
    argv = ["train", "--dataset", "hapt", "--model", "single", "--robust", "cure", "--out", str(run)]
    assert main(argv + ["--config", str(cfg), "--quiet"]) == 0
    info = json.loads((run / "robust.json").read_text())
    assert info["mode"] == "cure" and set(info["certified"]["test"]) >= {"cert_union", "clean"}
    assert "gp_mean_cos" in info["history"][-1]  # gradient projection (no ramp: from the start)
    capsys.readouterr()
    assert main(["robust", "verify", str(run), "--samples", "20", "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 20 and res["radii"] == info["cert_radii"]
    assert res["union"] <= min(res["certified"].values()) and res["union"] <= res["clean"]
