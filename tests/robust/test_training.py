"""Robust training: the batched TF attacks are correct, every mode trains and
produces a model, and the CLI's single-CNN run can be attacked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.robust.attacks import perturbation_norm, project_l1
from ditmos.robust.training import (
    MODES,
    NORMS,
    RobustTrainer,
    parse_pair,
    pgd_tf,
    project_l1_tf,
)


def _tiny_model(T=32, C=3, n=3):
    import keras

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


def _tiny_data(n=96, T=32, C=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((n, T, C)).astype(np.float32) * 0.5
    x[:, :, 0] += (y[:, None] - 1).astype(np.float32)  # a learnable signal
    return x, y.astype(np.int64)


def test_tf_l1_projection_matches_the_numpy_one():
    import tensorflow as tf

    rng = np.random.default_rng(3)
    v = rng.standard_normal((6, 50)).astype(np.float32)
    v[0] *= 0.01  # one row already inside the ball
    got = project_l1_tf(tf.constant(v), 2.0).numpy()
    assert np.allclose(got, project_l1(v.astype(np.float64), 2.0), atol=1e-5)


@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 1.0), ("l1", 5.0)])
def test_training_pgd_stays_in_the_ball_and_raises_the_loss(norm, eps):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    m = _tiny_model()
    x, y = _tiny_data()
    fn = tf.function(lambda a, b: pgd_tf(m, a, b, norm=norm, eps=eps, steps=5))
    adv = fn(tf.constant(x), tf.constant(y)).numpy()
    assert np.all(perturbation_norm(adv, x, norm) <= eps * (1 + 1e-4) + 1e-5)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(ce(y, m(adv))) > float(ce(y, m(x)))


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_trains_and_changes_the_model(mode):
    import keras

    keras.utils.set_random_seed(0)
    m = _tiny_model()
    x, y = _tiny_data()
    before = [w.copy() for w in m.get_weights()]
    hp = {
        "epochs": 1,
        "batch_size": 32,
        "lr": 3e-3,
        "attack_steps": 2,
        "step_factor": 2.5,
        "l1_sparsity": 0.05,
        "ramp_lambda": 5.0,
        "gp_beta": 0.5,
        "eat_momentum": 0.9,
    }
    t = RobustTrainer(m, {"linf": 0.1, "l2": 0.5, "l1": 3.0}, mode, hp, steps_total=3, pair=("linf", "l1"))
    info = t.train_epoch(x, y)
    assert np.isfinite(info["loss"])
    after = m.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert all(np.all(np.isfinite(a)) for a in after)
    if mode == "ramp":
        assert "gp_mean_cos" in info and -1.0 <= info["gp_mean_cos"] <= 1.0
    if mode == "eat":
        assert max(t.eat_acc.values()) > 0  # the running robust accuracy is tracked


def test_ramp_gradient_projection_follows_the_rule():
    """theta_{r+1} = theta_r + beta*max(cos,0)*g_n + (1-beta)*g_a per tensor."""
    import keras

    keras.utils.set_random_seed(1)
    m = _tiny_model()
    x, y = _tiny_data()
    hp = {
        "epochs": 1,
        "batch_size": 32,
        "lr": 3e-3,
        "attack_steps": 1,
        "step_factor": 2.5,
        "l1_sparsity": 0.05,
        "ramp_lambda": 5.0,
        "gp_beta": 0.5,
        "eat_momentum": 0.9,
    }
    t = RobustTrainer(m, {"linf": 0.1, "l2": 0.5, "l1": 3.0}, "ramp", hp, steps_total=3, pair=("linf", "l2"))
    seen = {}
    orig = t._epoch

    def spy(xx, yy, kind, natural=False):
        out = orig(xx, yy, kind, natural)
        seen[kind] = [v.numpy().copy() for v in m.trainable_variables]
        return out

    r0 = [v.numpy().copy() for v in m.trainable_variables]
    t._epoch = spy
    t.train_epoch(x, y)
    for v, r, n, a in zip(m.trainable_variables, r0, seen["none"], seen["ramp"]):
        gn, ga = (n - r).ravel(), (a - r).ravel()
        c = float(gn @ ga / (np.linalg.norm(gn) * np.linalg.norm(ga)))
        want = r + 0.5 * max(c, 0.0) * (n - r) + 0.5 * (a - r)
        assert np.allclose(v.numpy(), want, atol=1e-6)


def test_ramp_without_gradient_projection_trains_no_natural_epoch():
    m = _tiny_model()
    x, y = _tiny_data()
    hp = {
        "epochs": 1,
        "batch_size": 32,
        "lr": 3e-3,
        "attack_steps": 1,
        "step_factor": 2.5,
        "l1_sparsity": 0.05,
        "ramp_lambda": 1.5,
        "gp_beta": 0.5,
        "eat_momentum": 0.9,
        "gp": False,
    }
    t = RobustTrainer(m, {"linf": 0.1, "l2": 0.5, "l1": 3.0}, "ramp", hp, steps_total=3, pair=("linf", "l2"))
    kinds = []
    orig = t._epoch
    t._epoch = lambda xx, yy, kind, natural=False: kinds.append(kind) or orig(xx, yy, kind, natural)
    info = t.train_epoch(x, y)
    assert kinds == ["ramp"] and "natural_loss" not in info and t.opt_nat is None


def test_bad_pair_and_mode_are_clear_errors():
    assert parse_pair("auto") is None
    assert parse_pair("l2,l1") == ("l2", "l1")
    for bad in ("linf", "linf,linf", "linf,l3"):
        with pytest.raises(DitmosError, match="RAMP pair"):
            parse_pair(bad)
    with pytest.raises(DitmosError, match="unknown robust mode"):
        RobustTrainer(_tiny_model(), {n: 0.1 for n in NORMS}, "fgsm", {"lr": 1e-3}, steps_total=1)
    from ditmos.robust.training import train_robust

    for rob, msg in (({"lr_schedule": "linear"}, "lr_schedule"), ({"init_from": 3}, "init_from")):
        with pytest.raises(DitmosError, match=msg):
            train_robust("hapt", "/nonexistent/out", mode="linf", overrides={"robust": rob})


@pytest.mark.slow
def test_cli_trains_a_robust_single_cnn_and_attacks_it(tmp_path, capsys):
    from ditmos.cli import main

    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps({"subset": 200, "robust": {"epochs": 1, "attack_steps": 2, "val_samples": 50, "val_steps": 2}})
    )
    run = tmp_path / "linf"
    assert (
        main(
            [
                "train",
                "--dataset",
                "hapt",
                "--model",
                "single",
                "--robust",
                "linf",
                "--out",
                str(run),
                "--config",
                str(cfg),
                "--quiet",
            ]
        )
        == 0
    )
    info = json.loads((run / "robust.json").read_text())
    assert info["mode"] == "linf" and info["model"] == "single"
    assert (run / "models" / "single.keras").is_file()
    assert (
        main(
            [
                "robust",
                "attack",
                str(run),
                "--samples",
                "20",
                "--steps",
                "2",
                "--restarts",
                "1",
                "--queries",
                "5",
                "--quiet",
            ]
        )
        == 0
    )
    out = json.loads((run / "robust" / "attack.json").read_text())
    assert out["model"] == "single" and out["float"]["n"] == 20
    assert out["float"]["union"] <= min(out["float"]["robust"].values())
    capsys.readouterr()
    assert main(["robust", "attack", str(run), "--int8", "--quiet"]) == 2
    assert "--no-int8" in capsys.readouterr().err
    # the cheap table reads the figures the run recorded (no attack, no training)
    md = tmp_path / "cheap.md"
    assert (
        main(
            [
                "robust",
                "table",
                "--dataset",
                "hapt",
                "--out",
                str(tmp_path),
                "--cheap",
                "--modes",
                "linf,max",
                "--write",
                str(md),
            ]
        )
        == 0
    )
    text = md.read_text()
    test = info["cheap_pgd"]["test"]
    assert f"| linf | test | {100 * test['clean']:.2f} | {100 * test['linf']:.2f} |" in text
    assert "No finished run: max." in text
    assert main(["train", "--dataset", "hapt", "--robust", "linf", "--out", str(tmp_path / "x")]) == 2
    assert "--method single or early_exit" in capsys.readouterr().err
    _init_from_loads_exactly_and_refuses_other_networks(run, info, tmp_path, capsys)


def _init_from_loads_exactly_and_refuses_other_networks(run, info, tmp_path, capsys):
    """Fine-tuning starts from the run's weights bit for bit; another network,
    method, normalisation or an unfinished run is a clear error."""
    import keras

    from ditmos.cli import main
    from ditmos.data import Normalizer
    from ditmos.robust.training import load_init

    src = keras.models.load_model(run / "models" / "single.keras", compile=False)
    fresh = keras.models.clone_model(src)
    assert any(not np.array_equal(a, b) for a, b in zip(fresh.get_weights(), src.get_weights()))
    norm = Normalizer.load(run / "normalization.json")
    got = load_init(fresh, run, method="single", dataset=info["dataset"], normalizer=norm)
    assert got["mode"] == "linf" and got["run"] == str(run)
    for a, b in zip(fresh.get_weights(), src.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).standard_normal((4, *src.input_shape[1:])).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(fresh(x)), np.asarray(src(x)))
    with pytest.raises(DitmosError, match="network differs"):
        load_init(_tiny_model(*src.input_shape[1:]), run, method="single", dataset=info["dataset"], normalizer=norm)
    with pytest.raises(DitmosError, match="trained 'single'"):
        load_init(fresh, run, method="early_exit", dataset=info["dataset"], normalizer=norm)
    with pytest.raises(DitmosError, match="normalisation differs"):
        load_init(fresh, run, method="single", dataset=info["dataset"], normalizer=Normalizer(norm.mean + 1, norm.std))
    with pytest.raises(DitmosError, match="not a finished"):
        load_init(fresh, tmp_path, method="single", dataset=info["dataset"], normalizer=norm)
    capsys.readouterr()
    assert main(["train", "--dataset", "hapt", "--init-from", str(run), "--out", str(tmp_path / "y")]) == 2
    assert "--init-from applies to robust training only" in capsys.readouterr().err


def test_step_schedule_divides_the_rate_by_ten_each_third():
    from ditmos.robust.training import lr_schedule

    sched = lr_schedule({"lr": 0.01, "lr_schedule": "step"}, 30)
    got = [float(sched(s)) for s in (0, 9, 10, 11, 20, 21, 29)]
    np.testing.assert_allclose(got, [0.01, 0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001], rtol=1e-6)
    cos = lr_schedule({"lr": 0.01}, 30)
    assert float(cos(0)) == pytest.approx(0.01) and float(cos(30)) == pytest.approx(0.0, abs=1e-9)


def test_table_without_finished_runs_is_a_clear_error(tmp_path, capsys):
    from ditmos.cli import main

    assert main(["robust", "table", "--dataset", "hapt", "--out", str(tmp_path / "t"), "--no-train", "--quiet"]) == 2
    assert "no finished run" in capsys.readouterr().err
    assert main(["robust", "table", "--dataset", "hapt", "--out", str(tmp_path / "t"), "--modes", "linf,fgsm"]) == 2
    assert "unknown mode" in capsys.readouterr().err


def _fake_ramp_run(folder, union, clean):
    folder.mkdir(parents=True)
    (folder / "robust.json").write_text(json.dumps({"cheap_pgd": {"val": {"union": union, "clean": clean}}}))


def test_ramp_sweep_reports_the_best_validation_union(tmp_path):
    """The sweep picks by validation union (ties: validation clean), never by
    test figures, and lists unfinished grid points as missing."""
    from ditmos.robust.cli import _ramp_grid, _ramp_sweep, ramp_run_name

    grid = _ramp_grid("0.5,2", "0,0.5", None)
    assert grid == [(0.5, 0.0), (0.5, 0.5), (2.0, 0.0), (2.0, 0.5)]
    _fake_ramp_run(tmp_path / ramp_run_name(0.5, 0.0), 0.80, 0.95)
    _fake_ramp_run(tmp_path / ramp_run_name(2.0, 0.0), 0.83, 0.90)
    _fake_ramp_run(tmp_path / ramp_run_name(2.0, 0.5), 0.83, 0.93)
    missing = []
    run, note = _ramp_sweep("hapt", tmp_path, grid, None, 0, False, True, missing)
    assert run == tmp_path / "ramp_lam2_beta0.5"
    assert missing == ["ramp_lam0.5_beta0.5"]
    assert "lambda 0.5 beta 0: 80.0 / 95.0" in note and "reported: lambda 2, beta 0.5" in note
    # an option left out takes the config's value; bad values are clear errors
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"robust": {"ramp_lambda": 3, "gp": False}}))
    assert _ramp_grid(None, "0.5", cfg) == [(3.0, 0.5)]
    assert _ramp_grid("1", None, cfg) == [(1.0, 0.0)]
    assert _ramp_grid(None, None, cfg) == []
    for lam, beta, msg in (("x", None, "--ramp-lambdas"), ("1", "1", "--ramp-betas"), ("-1", None, "non-negative")):
        with pytest.raises(DitmosError, match=msg):
            _ramp_grid(lam, beta, None)


def _fake_finished(run, mode, seed, union, clean, budget_key, **hyper):
    """A finished run with a stored attack of ``budget_key``: the table reads
    both without training or attacking."""
    hp = {"epochs": 3, "batch_size": 128, "lr": 1e-3, "lr_schedule": "step", "attack_steps": 3, **hyper}
    hp.update(ramp_lambda=1.5, gp=False, gp_beta=0.5)
    info = {"mode": mode, "seed": seed, "hyper": hp, "macs": 1000, "params": 10, "spec": {"channels": [4]}}
    info.update(best_epoch=1, train_seconds=1.0, pair=None, cheap_pgd={"val": {"union": union, "clean": clean}})
    (run / "robust").mkdir(parents=True)
    (run / "robust.json").write_text(json.dumps(info))
    rob = {"linf": union + 0.01, "l2": union + 0.02, "l1": union}
    res = {"float": {"n": 10, "radii": {"linf": 0.1, "l2": 1.8, "l1": 19.0}, "clean": clean, "union": union}}
    res["float"]["robust"] = rob
    (run / "robust" / "attack.json").write_text(json.dumps({**res, "budget_key": budget_key, "seconds": 1}))


def test_seeds_table_gives_mean_and_std_and_the_ramp_verdict(tmp_path, capsys):
    """--seeds runs the fine-tuning table per seed (here: finished runs are
    reused) and writes mean ± std per row and the target per seed."""
    from ditmos.cli import main

    key = [2, 1, 5, None]
    figures = {
        0: {"init": 0.80, "linf": 0.82, "max": 0.83, "ramp": 0.87},
        1: {"init": 0.78, "linf": 0.80, "max": 0.84, "ramp": 0.85},
    }
    for seed, rows in figures.items():
        for mode, u in rows.items():
            name = "init_linf" if mode == "init" else mode
            _fake_finished(tmp_path / f"seed{seed}" / name, "linf" if mode == "init" else mode, seed, u, 0.95, key)
    md = tmp_path / "mean.md"
    args = ["robust", "table", "--dataset", "hapt", "--out", str(tmp_path), "--no-train", "--modes", "linf,max,ramp"]
    args += ["--init-mode", "linf", "--seeds", "0,1", "--steps", "2", "--restarts", "1", "--queries", "5"]
    assert main([*args, "--write", str(md), "--quiet"]) == 0
    text = md.read_text()
    assert "| start: linf (no fine-tuning) | 2 | 95.00 ± 0.00 |" in text
    assert f"| 86.00 ± {np.std([87.0, 85.0], ddof=1):.2f} | 87.00, 85.00 |" in text
    assert "- seed 0: RAMP union 87.00 vs best other max 83.00 (+4.00 points)" in text and "target met" in text
    assert "- mean: RAMP union 86.00 vs best other max 83.50 (+2.50 points)" in text
    assert "Fine-tuning: every row" in (tmp_path / "seed1" / "table.md").read_text()
    capsys.readouterr()
    assert main([*args[:-6], "--seeds", "0,0"]) == 2
    assert "a seed twice" in capsys.readouterr().err
