"""Multi-exit networks under attack (RDI-Nets): the exit policy the attacks
see is the real one, the latency attack really forces late exits, RDI
training runs, and the CLI rejects what it cannot do."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.robust.attacks import force_late_exits, perturbation_norm
from ditmos.robust.targets import MultiExitTarget
from ditmos.robust.training import MultiExitTrainer, pgd_tf
from ditmos.training.baselines import apply_threshold

T, C, N_CLASSES = 32, 3, 3


def _tiny_multi_exit(seed=0):
    import keras

    from ditmos.models.baselines import ConvNetSpec, build_early_exit, early_exit_costs

    keras.utils.set_random_seed(seed)
    spec = ConvNetSpec(channels=(4, 8, 8), kernels=(5, 3, 3), pools=(2, 2, 1), fc=8)
    model = build_early_exit(spec, (T, C), N_CLASSES)
    return model, [c.macs for c in early_exit_costs(spec, (T, C), N_CLASSES)]


def _tiny_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    x = rng.standard_normal((n, T, C)).astype(np.float32)
    x[:, :, 0] += (y[:, None] - 1).astype(np.float32)
    return x, y.astype(np.int64)


def _target_with_early_exits(x):
    """An untrained (undefended) multi-exit model whose threshold lets about
    70 % of the windows leave at the first exit."""
    model, macs = _tiny_multi_exit()
    t0 = MultiExitTarget(model, 1.0, macs)
    conf = np.exp(t0.exit_outputs(x)[0])
    conf = (conf / conf.sum(axis=1, keepdims=True)).max(axis=1)
    return MultiExitTarget(model, float(np.quantile(conf, 0.3)), macs)


def test_the_target_decides_like_the_host_exit_policy():
    x, _ = _tiny_data()
    t = _target_with_early_exits(x)
    outs = t.exit_outputs(x)
    pred, chosen = apply_threshold(outs, t.threshold, t.exit_macs)
    assert np.array_equal(t.predict(x), pred) and np.array_equal(t.exits(x), chosen)
    assert np.array_equal(t.macs(x), np.asarray(t.exit_macs)[chosen])
    assert 0 < np.mean(chosen == 0) < 1  # both early and late exits are taken
    # the held-policy view answers with the chosen exit's logits
    held = np.asarray(t.logits(x, "policy"))
    assert np.allclose(held, np.stack(outs, 1)[np.arange(len(x)), chosen], atol=1e-5)
    with pytest.raises(DitmosError, match="exit costs"):
        MultiExitTarget(t.model, 0.5, t.exit_macs[:2])


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 2.0)])
def test_the_latency_attack_forces_late_exits_inside_the_ball(norm, eps):
    x, _ = _tiny_data()
    t = _target_with_early_exits(x)
    adv = force_late_exits(t, x, norm=norm, eps=eps, steps=10)
    assert np.all(perturbation_norm(adv, x, norm) <= eps * (1 + 1e-4) + 1e-5)
    clean, attacked = t.macs(x), t.macs(adv)
    assert np.all(attacked >= clean)  # never fewer MACs than clean, per window
    assert attacked.mean() > 1.3 * clean.mean()  # and clearly more on average
    # a policy that always takes the last exit cannot be pushed further
    late = MultiExitTarget(t.model, 2.0, t.exit_macs)
    assert np.array_equal(force_late_exits(late, x[:8], norm=norm, eps=eps, steps=2), x[:8])


def test_rdi_training_moves_every_exit_and_its_attack_stays_in_the_ball():
    import tensorflow as tf

    x, y = _tiny_data()
    model, _ = _tiny_multi_exit()
    hp = {
        "lr": 3e-3,
        "batch_size": 32,
        "attack_steps": 2,
        "step_factor": 2.5,
        "l1_sparsity": 0.05,
        "exit_attack": "max_avg",
    }
    trainer = MultiExitTrainer(model, {"linf": 0.2, "l2": 1.0, "l1": 5.0}, "linf", hp, steps_total=2)
    adv = tf.function(trainer.adversarial)(tf.constant(x), tf.constant(y)).numpy()
    assert np.all(perturbation_norm(adv, x, "linf") <= 0.2 + 1e-5)
    # max_avg keeps, per window, a candidate at least as bad for the summed loss as
    # the single all-exits attack's start point (the clean window)
    ce = [tf.nn.sparse_softmax_cross_entropy_with_logits(y, z).numpy() for z in model(x)]
    ce_adv = [tf.nn.sparse_softmax_cross_entropy_with_logits(y, z).numpy() for z in model(adv)]
    assert np.mean(np.sum(ce_adv, 0) > np.sum(ce, 0)) > 0.9
    heads = [f"exit_{i + 1}" for i in range(len(model.outputs))]
    before = {h: model.get_layer(h).get_weights()[0].copy() for h in heads}
    info = trainer.train_epoch(x, y)
    assert np.isfinite(info["loss"])
    for h in heads:  # every exit is trained
        assert not np.array_equal(model.get_layer(h).get_weights()[0], before[h]), h
    with pytest.raises(DitmosError, match="not available for the multi-exit"):
        MultiExitTrainer(model, {"linf": 0.1}, "ramp", hp, steps_total=1)
    with pytest.raises(DitmosError, match="exit_attack"):
        MultiExitTrainer(model, {"linf": 0.1}, "linf", {**hp, "exit_attack": "x"}, steps_total=1)
    # the all-exits objective is what the training PGD ascends
    from ditmos.robust.training import all_exits_objective

    a2 = tf.function(lambda a, b: pgd_tf(model, a, b, norm="l2", eps=1.0, steps=2, objective=all_exits_objective))(
        x, y
    ).numpy()
    assert np.all(perturbation_norm(a2, x, "l2") <= 1.0 + 1e-4)


def test_cli_rejects_what_the_multi_exit_network_cannot_do(tmp_path, capsys):
    from ditmos.cli import main

    assert (
        main(
            [
                "train",
                "--dataset",
                "hapt",
                "--method",
                "early_exit",
                "--robust",
                "ramp",
                "--out",
                str(tmp_path / "a"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "not available for --method early_exit" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--dataset",
                "hapt",
                "--method",
                "early_exit",
                "--robust",
                "linf",
                "--compare",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    assert "--method early_exit takes only" in capsys.readouterr().err
    assert (
        main(
            [
                "robust",
                "table",
                "--dataset",
                "hapt",
                "--out",
                str(tmp_path / "t"),
                "--methods",
                "single,early_exit",
                "--modes",
                "linf,max",
            ]
        )
        == 2
    )
    assert "drop max" in capsys.readouterr().err
    assert main(["robust", "table", "--dataset", "hapt", "--out", str(tmp_path / "t"), "--methods", "moe"]) == 2
    assert "unknown method" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_trains_rdi_and_attacks_it_through_the_exit_policy(tmp_path, capsys):
    from ditmos.cli import main

    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {
                "subset": 200,
                "robust": {"epochs": 1, "attack_steps": 1, "val_samples": 30, "val_steps": 1, "exit_attack": "avg"},
            }
        )
    )
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "hapt",
                "--method",
                "early_exit",
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
    assert info["model"] == "early_exit" and (run / "models" / "early_exit.keras").is_file()
    assert len(info["exit_macs"]) == len(info["cheap_pgd"]["test"]["clean"]) >= 2
    assert (
        info["exit_policy"]["val_avg_macs"] <= info["exit_policy"]["mac_budget"]
        or not info["exit_policy"]["within_budget"]
    )
    # the run is a network run too: quantised to int8, then attacked through the
    # int8 exit policy as well
    assert main(["quantize", str(run), "--calibration-samples", "40", "--quiet"]) == 0
    assert (
        main(
            [
                "robust",
                "attack",
                str(run),
                "--samples",
                "12",
                "--steps",
                "2",
                "--restarts",
                "1",
                "--queries",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    out = json.loads((run / "robust" / "attack.json").read_text())
    q = out["int8"]
    assert q["transfer"]["n"] == 12 and q["square"]["n"] == 12
    for r in [q["exits"]["clean"], *q["exits"]["transfer"].values(), q["exits"]["square"]["linf"]]:
        assert abs(sum(r["exit_fractions"]) - 1) < 1e-3
        assert min(info["exit_macs"]) <= r["avg_macs"] <= max(info["exit_macs"])
    assert "int8 exit policy" in capsys.readouterr().out
    m = out["macs"]
    assert out["model"] == "early_exit" and out["float"]["n"] == 12
    for norm in ("linf", "l2", "l1"):
        assert m["latency_attack"][norm]["avg_macs"] >= m["clean"]["avg_macs"]
    arrays = np.load(run / "robust" / "adversarial.npz")
    assert {"linf", "late_linf", "late_l2"} <= set(arrays.files)
    capsys.readouterr()
    assert main(["robust", "attack", str(run), "--model", "single", "--quiet"]) == 2
    assert "holds a 'early_exit' model" in capsys.readouterr().err


def _row(model, clean, rob, macs=None):
    radii = {"linf": 0.1, "l2": 0.8, "l1": 9.5}
    info = {"model": model, "seed": 0, "hyper": {"epochs": 5, "batch_size": 128, "attack_steps": 3}}
    res = {
        "float": {
            "n": 100,
            "radii": radii,
            "clean": clean,
            "union": min(rob),
            "robust": dict(zip(("linf", "l2", "l1"), rob)),
        }
    }
    if model == "single":
        info["macs"] = 1000
    else:
        res["macs"] = {
            "exit_macs": [300, 900, 2000],
            "max_macs": 2000,
            "threshold": 0.9,
            "clean": {"avg_macs": macs, "exit_fractions": [0.8, 0.1, 0.1]},
            "accuracy_attack": {n: {"avg_macs": 900.0, "exit_fractions": [0.3, 0.4, 0.3]} for n in radii},
            "latency_attack": {
                n: {"avg_macs": 1900.0, "exit_fractions": [0, 0.1, 0.9], "accuracy": 0.5} for n in radii
            },
        }
    return info, res


def test_the_comparison_table_computes_its_verdict():
    from ditmos.robust.cli import format_method_table
    from ditmos.robust.evaluate import AttackBudget

    s = _row("single", 0.95, (0.80, 0.85, 0.84))
    met = _row("early_exit", 0.96, (0.81, 0.85, 0.90), macs=650.0)
    text = format_method_table("hapt", [("linf", *s), ("linf", *met)], AttackBudget())
    assert "35.0% below the single CNN" in text and "Target met" in text
    assert "1,900 MACs (1.90 x the single CNN)" in text
    slow = _row("early_exit", 0.96, (0.81, 0.85, 0.90), macs=750.0)
    weak = _row("early_exit", 0.96, (0.79, 0.85, 0.90), macs=650.0)
    for row in (slow, weak):
        text = format_method_table("hapt", [("linf", *s), ("linf", *row)], AttackBudget())
        assert "Target missed" in text


def test_the_robust_threshold_scores_the_attacks_through_the_policy():
    from ditmos.robust.training import choose_robust_threshold

    x, y = _tiny_data(48)
    model, macs = _tiny_multi_exit()
    hp = {"val_steps": 2, "l1_sparsity": 0.05}
    radii = {"linf": 0.2}
    free = choose_robust_threshold(model, x, y, x[:24], y[:24], radii, "linf", hp, macs, 1e12)
    assert free["within_budget"] and free["attacks"] == len(macs) + 1
    # the score counts windows right clean AND on every attack: never above clean accuracy
    pred, _ = apply_threshold(MultiExitTarget(model, 1.0, macs).exit_outputs(x[:24]), free["threshold"], macs)
    assert free["val_robust_score"] <= np.mean(pred == y[:24]) + 1e-9
    # a budget of the first exit's cost leaves only thresholds that stop everyone there
    tight = choose_robust_threshold(model, x, y, x[:24], y[:24], radii, "linf", hp, macs, float(macs[0]))
    assert tight["within_budget"] and tight["val_avg_macs"] == macs[0]
    with pytest.raises(DitmosError, match="single-norm mode"):
        choose_robust_threshold(model, x, y, x, y, radii, "max", hp, macs, 1e12)


def test_table_variants_parse_and_get_their_own_row_and_verdict():
    from ditmos.robust.cli import format_method_table, parse_variants
    from ditmos.robust.evaluate import AttackBudget

    assert parse_variants(["mf:mac_factor=1.2,threshold_on=robust", "e:epochs=10"]) == [
        ("mf", {"mac_factor": 1.2, "threshold_on": "robust"}),
        ("e", {"epochs": 10}),
    ]
    for bad, msg in (
        ("nocolon", "NAME:KEY=VALUE"),
        ("a:epochs", "not KEY=VALUE"),
        ("a:speed=2", "not KEY=VALUE"),
        ("a b:epochs=1", "NAME:KEY=VALUE"),
    ):
        with pytest.raises(DitmosError, match=msg):
            parse_variants([bad])
    with pytest.raises(DitmosError, match="given twice"):
        parse_variants(["a:epochs=1", "a:epochs=2"])
    s = _row("single", 0.95, (0.80, 0.85, 0.84))
    base = _row("early_exit", 0.96, (0.79, 0.85, 0.90), macs=650.0)
    var = _row("early_exit", 0.96, (0.81, 0.85, 0.90), macs=650.0)
    var[0]["variant"] = {"name": "mf12", "robust": {"mac_factor": 1.2}}
    var[0]["exit_policy"] = {"val_accuracy": 0.95, "val_robust_score": 0.83}
    text = format_method_table("hapt", [("linf", *s), ("linf", *base), ("linf", *var)], AttackBudget())
    assert "| linf | RDI-Nets multi-exit, mf12 (mac_factor 1.2) | 95.00 / 83.00 | 96.00 |" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("- linf")]
    assert len(lines) == 2 and "Target missed" in lines[0]
    assert "RDI-Nets mf12" in lines[1] and "Target met" in lines[1]


def test_per_exit_thresholds_respect_their_mac_budget():
    from ditmos.robust.training import _outputs, choose_exit_thresholds, choose_robust_threshold

    x, y = _tiny_data(48)
    model, macs = _tiny_multi_exit()
    outs = _outputs(model, x)
    for share in (0.4, 0.6, 0.9):
        budget = share * macs[-1]
        c = choose_exit_thresholds(outs, y, macs, budget)
        assert len(c["threshold"]) == len(macs) - 1 and c["within_budget"]
        pred, chosen = apply_threshold(outs, c["threshold"], macs)  # what the policy really spends
        assert np.asarray(macs)[chosen].mean() == pytest.approx(c["val_avg_macs"]) and c["val_avg_macs"] <= budget
        assert c["val_accuracy"] == pytest.approx(np.mean(pred == y))
    # no combination fits a budget below the first exit's cost: the cheapest is taken, and said so
    low = choose_exit_thresholds(outs, y, macs, macs[0] - 1)
    assert not low["within_budget"] and low["val_avg_macs"] == macs[0]
    # the robust rule with per-exit thresholds keeps the same constraint
    hp = {"val_steps": 2, "l1_sparsity": 0.05, "exit_thresholds": "per_exit"}
    r = choose_robust_threshold(model, x, y, x[:24], y[:24], {"linf": 0.2}, "linf", hp, macs, 0.5 * macs[-1])
    assert r["within_budget"] and r["val_avg_macs"] <= 0.5 * macs[-1] and len(r["threshold"]) == len(macs) - 1
    t = MultiExitTarget(model, r["threshold"], macs)
    assert np.array_equal(t.exits(x), apply_threshold(outs, r["threshold"], macs)[1])
    assert np.asarray(t.macs(x)).mean() == pytest.approx(r["val_avg_macs"])


def test_per_exit_thresholds_reach_the_int8_exit_test_unchanged(tmp_path):
    """Per-exit thresholds go through export.json into the manifest's integer
    thresholds; the integer test on the int8 softmax takes the exit the float
    rule takes on the same (dequantised) confidences, for every window."""
    from ditmos.quantize.network import export_thresholds, float_exit_rule
    from ditmos.quantize.reference import exit_taken, exit_threshold_q
    from ditmos.training.network_run import write_network_export

    model, macs = _tiny_multi_exit()
    thr = [0.61, 0.4]  # one per early exit of the tiny network (3 exits)
    result = {"threshold": thr, "exit_macs": macs, "val_accuracy": 0.5, "test_accuracy": 0.5, "macs": 1}
    write_network_export(
        tmp_path, model=model, method="early_exit", class_names=["a", "b", "c"], input_shape=(T, C), result=result
    )
    info = json.loads((tmp_path / "export" / "export.json").read_text())
    assert info["exit_thresholds"] == [None if not np.isfinite(t) else t for t in thr]
    assert info["exit_threshold"] is None
    tq = [exit_threshold_q(t) for t in export_thresholds(info)]
    rng = np.random.default_rng(0)
    n, k = 400, len(macs) - 1
    q = rng.integers(-128, 128, size=(k, n, N_CLASSES)).astype(np.int8)
    p = (q.astype(np.float64) + 128) / 256  # TFLite's int8 softmax scale 1/256, zero point -128
    floats = [(t if t is not None else np.inf) for t in export_thresholds(info)]
    want = np.full(n, k)
    for i in range(k - 1, -1, -1):
        want[p[i].max(axis=1) >= floats[i]] = i
    got = np.array([exit_taken([q[i, j] for i in range(k)], tq) for j in range(n)])
    assert np.array_equal(got, want) and len(set(got.tolist())) >= 2
    # the float rule of the export (host reference) reads the same per-exit thresholds
    x, _ = _tiny_data(32)
    outs = MultiExitTarget(model, 1.0, macs).exit_outputs(x)
    named = {f"exit_{i + 1}": o for i, o in enumerate(outs)}
    assert np.array_equal(float_exit_rule(named, info)[1], apply_threshold(outs, floats, macs)[1])


def test_the_seed_table_averages_and_gives_the_verdict_per_seed():
    from ditmos.robust.cli import format_seed_table, parse_variants
    from ditmos.robust.evaluate import AttackBudget

    assert parse_variants(["w:exit_weights=[0.5,1,2],mac_factor=1.5"]) == [
        ("w", {"exit_weights": [0.5, 1, 2], "mac_factor": 1.5})
    ]
    per_seed = []
    for s, (ee_rob, ee_macs) in enumerate((((0.81, 0.85, 0.90), 650.0), ((0.78, 0.85, 0.90), 600.0))):
        single = _row("single", 0.95, (0.80, 0.85, 0.84))
        ee = _row("early_exit", 0.96, ee_rob, macs=ee_macs)
        ee[0]["exit_policy"] = {"val_robust_score": 0.8 + s / 100, "val_avg_macs": 640.0, "within_budget": True}
        per_seed.append((s, [("linf", *single), ("linf", *ee)], []))
    text = format_seed_table("hapt", per_seed, AttackBudget())
    assert "| linf | RDI-Nets multi-exit | 2 | 80.50 ± 0.71 | 96.00 ± 0.00 | 79.50 ± 2.12 |" in text
    assert "| 625 ± 35 | 37.5 ± 3.5 % |" in text
    assert "met on 1 of 2 seeds (seed 0 met, seed 1 missed)" in text
    assert "target missed on the means" in text  # l_inf 79.50 < 80.00
    assert (
        "- linf: RDI-Nets multi-exit (validation robust score 80.50): target missed on the means, met on 1 of 2" in text
    )
    assert "## Seed 0" in text and "## Seed 1" in text


def test_the_table_attacks_a_spread_subset_when_asked():
    from ditmos.robust.cli import _budget_key, attack_subset

    spread = attack_subset(1998, 500, True)
    assert len(spread) == 500 and spread[0] == 0 and spread[-1] == 1997  # every part of the split
    assert np.all(np.diff(spread) >= 3) and np.all(np.diff(spread) <= 5)
    assert np.array_equal(attack_subset(1998, 500), np.arange(500))
    assert np.array_equal(attack_subset(10, None), np.arange(10)) and np.array_equal(
        attack_subset(10, 20, True), np.arange(10)
    )
    # a cached attack on the first N windows is not reused for a spread subset
    assert _budget_key(10, 1, 100, 500, True) != _budget_key(10, 1, 100, 500, False) == [10, 1, 100, 500]
