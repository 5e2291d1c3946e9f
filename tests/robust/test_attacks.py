"""Attacks: projections, sanity properties a reviewer asks for, and real breaks."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.robust.attacks import NORMS, perturbation_norm, pgd, pgd_radii, project_l1, square_linf
from ditmos.robust.evaluate import AttackBudget, parse_eps, union_robustness
from ditmos.robust.targets import KerasTarget
from ditmos.errors import DitmosError


@pytest.fixture(scope="module")
def undefended():
    """A small CNN trained (no defence) on real hapt windows, and test windows it gets right."""
    import keras

    from ditmos.data import Normalizer, load_dataset, make_splits

    keras.utils.set_random_seed(0)
    ds = load_dataset("hapt")
    sp = make_splits(ds, 0)
    rng = np.random.default_rng(0)
    tr = rng.choice(sp.train, 1500, replace=False)
    te = rng.choice(sp.test, 200, replace=False)
    norm = Normalizer.fit(ds.X[tr])
    xtr, xte = norm.apply(ds.X[tr]).astype(np.float32), norm.apply(ds.X[te]).astype(np.float32)
    T, C = xtr.shape[1:]
    n = len(ds.class_names)
    m = keras.Sequential(
        [
            keras.Input((T, C)),
            keras.layers.Conv1D(8, 9, activation="relu"),
            keras.layers.MaxPooling1D(4),
            keras.layers.Flatten(),
            keras.layers.Dense(n),
        ]
    )
    m.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(xtr, ds.y[tr], epochs=4, batch_size=64, verbose=0)
    t = KerasTarget(m)
    ok = t.predict(xte) == ds.y[te]
    assert ok.mean() > 0.6, "the undefended model should have learnt something"
    return t, xte[ok][:64], ds.y[te][ok][:64]


def test_project_l1_lands_on_the_ball_and_is_closest():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((5, 40))
    p = project_l1(v, 2.0)
    assert np.allclose(np.abs(p).sum(axis=1), 2.0)
    # the projection is closer than random points of the ball's surface
    for _ in range(50):
        q = rng.standard_normal((5, 40))
        q = q / np.abs(q).sum(axis=1, keepdims=True) * 2.0
        assert np.all(((v - p) ** 2).sum(1) <= ((v - q) ** 2).sum(1) + 1e-9)
    inside = v / np.abs(v).sum(axis=1, keepdims=True)
    assert np.allclose(project_l1(inside, 2.0), inside)


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 3.0), ("l1", 30.0)])
def test_pgd_stays_in_the_ball_and_breaks_an_undefended_model(undefended, norm, eps):
    t, x, y = undefended
    adv = pgd(t, x, y, norm=norm, eps=eps, steps=10, restarts=1)
    assert np.all(perturbation_norm(adv, x, norm) <= eps * (1 + 1e-5))
    acc = np.mean(t.predict(adv) == y)
    assert acc < 0.5, f"{norm} PGD left {acc:.0%} of an undefended model's correct windows"


def test_square_breaks_an_undefended_model_without_gradients(undefended):
    t, x, y = undefended
    import tensorflow as tf

    adv = square_linf(lambda v: np.asarray(t.logits(tf.constant(v))), x, y, eps=0.4, queries=150)
    assert np.abs(adv - x).max() <= 0.4 + 1e-6
    assert np.mean(t.predict(adv) == y) < 0.5


def test_radius_zero_is_clean_accuracy_and_curves_never_rise(undefended):
    t, x, y = undefended
    radii = {"linf": 0.15, "l2": 1.5, "l1": 15.0}
    res, _ = union_robustness(t, x, y, radii, budget=AttackBudget(steps=5, restarts=1, square_queries=20))
    assert res.clean == 1.0
    for norm in NORMS:
        accs = [a for _, a in res.curves[norm]]
        assert accs[0] == res.clean
        assert all(b <= a for a, b in zip(accs, accs[1:])), (norm, accs)
        assert res.robust[norm] == accs[-1]
    assert res.union <= min(res.robust.values())
    zero, _ = union_robustness(
        t, x, y, {k: 0.0 for k in NORMS}, budget=AttackBudget(steps=5, restarts=1, square_queries=20)
    )
    assert zero.union == zero.clean == 1.0


def test_more_steps_never_raise_robust_accuracy(undefended):
    t, x, y = undefended
    accs = []
    for steps in (1, 3, 9):
        adv = pgd(t, x, y, norm="l2", eps=1.0, steps=steps, restarts=1)
        accs.append(np.mean(t.predict(adv) == y))
    assert accs[0] >= accs[1] >= accs[2]


def test_radii_in_one_batch_equal_separate_attacks(undefended):
    """Batching radii (and restarts) into one computation changes nothing: with
    restart 0 starting at the clean window each radius's result equals its own
    attack, and no radius breaks a window a larger one keeps."""
    t, x, y = undefended
    radii = [0.3, 0.6, 1.2]
    adv, broken = pgd_radii(t, x, y, norm="l2", radii=radii, steps=4, restarts=1)
    for j, e in enumerate(radii):
        alone = pgd(t, x, y, norm="l2", eps=e, steps=4, restarts=1)
        assert np.allclose(adv[j], alone, atol=1e-6)
        assert np.array_equal(broken[j], t.predict(alone) != y)
        assert np.all(perturbation_norm(adv[j], x, "l2") <= e * (1 + 1e-5))
    # a vectorised l1 projection with one radius per row agrees with the scalar one
    rng = np.random.default_rng(3)
    v = rng.standard_normal((6, 30))
    eps = np.array([0.5, 1, 2, 4, 8, 100.0])
    rows = project_l1(v, eps)
    assert all(np.allclose(rows[i], project_l1(v[i : i + 1], eps[i])[0]) for i in range(6))


def test_eps_parsing_errors_are_clear():
    r = parse_eps("linf=0.2", (128, 6))
    assert r["linf"] == 0.2 and r["l2"] > 0 and r["l1"] > r["l2"]
    for bad, msg in [("linf", "NORM=RADIUS"), ("l3=1", "unknown norm"), ("l2=x", "number"), ("l1=-1", ">= 0")]:
        with pytest.raises(DitmosError, match=msg):
            parse_eps(bad, (128, 6))


@pytest.mark.slow
def test_robust_attack_cli_on_a_trained_run(tiny_run, tiny_int8, tmp_path):
    """The command attacks a real DiTMoS run (float and int8) and writes its artefacts."""
    import json
    import shutil

    from ditmos.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    rc = main(
        [
            "robust",
            "attack",
            str(run),
            "--samples",
            "16",
            "--steps",
            "2",
            "--restarts",
            "1",
            "--queries",
            "5",
            "--quiet",
        ]
    )
    assert rc == 0
    out = json.loads((run / "robust" / "attack.json").read_text())
    f = out["float"]
    assert f["n"] == 16 and f["union"] <= min(f["robust"].values()) <= f["clean"]
    t = out["int8"]["transfer"]
    assert t["union"] <= min(t["robust"].values()) <= t["clean"]
    adv = np.load(run / "robust" / "adversarial.npz")
    assert set(adv.files) >= {"linf", "l2", "l1", "y", "clean"}
    assert np.all(perturbation_norm(adv["linf"], adv["clean"], "linf") <= f["radii"]["linf"] + 1e-5)


@pytest.mark.slow
def test_adversarial_windows_on_the_host_board_match_the_int8_reference(
    tiny_run, tiny_int8, host_model_build, tmp_path
):
    """The device path: the firmware classifies every adversarial window exactly
    as the host int8 reference does (class, route, int8 scores)."""
    import json
    import shutil

    from ditmos.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    rc = main(
        [
            "robust",
            "attack",
            str(run),
            "--samples",
            "8",
            "--steps",
            "2",
            "--restarts",
            "1",
            "--queries",
            "5",
            "--build",
            str(host_model_build),
            "--emulate",
            "--quiet",
        ]
    )
    assert rc == 0
    dev = json.loads((run / "robust" / "attack.json").read_text())["device"]
    assert dev["windows"] == dev["measured"] == 24 and dev["complete"]
    assert dev["agree"] and dev["mismatches"] == dev["score_mismatches"] == 0
    rep = json.loads((run / "robust" / "device" / "report.json").read_text())
    assert rep["samples"] == 24 and rep["mismatches"] == 0


def test_device_options_need_each_other(tiny_run, capsys):
    from ditmos.cli import main

    assert main(["robust", "attack", str(tiny_run), "--emulate"]) == 2
    assert "--build" in capsys.readouterr().err
    assert main(["robust", "attack", str(tiny_run), "--build", str(tiny_run)]) == 2
    assert "--emulate or --port" in capsys.readouterr().err


def test_robust_attack_without_int8_says_what_to_do(tiny_run, tmp_path, capsys):
    import shutil

    from ditmos.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("int8"))
    assert main(["robust", "attack", str(run), "--samples", "4"]) == 2
    assert "ditmos quantize" in capsys.readouterr().err
