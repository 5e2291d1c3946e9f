"""The options that make DiTMoS never worse than its own generalist: the
generalist stage, its fallback, confusion-group splits, cluster routing,
overlapping pre-training, distillation, and the architecture search."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from ditmos.errors import DitmosError


def _run(tmp_path, name, **over):
    from ditmos.training.run import train_run
    from ditmos.training.testing import tiny_config

    cfg = tiny_config("hapt")
    cfg["subset"] = 300
    cfg["strong"] = dict(cfg["strong"], epochs=1)
    cfg["generalist"] = {
        "epochs": 2,
        "batch_size": 64,
        "optimizer": "adam",
        "lr": 0.003,
        "lr_halve_every": 0,
        "restarts": 1,
        "probe_epochs": 0,
    }
    cfg["adversarial"] = dict(cfg["adversarial"], rounds=1)
    for key, value in over.items():
        cfg[key] = dict(cfg.get(key) or {}, **value) if isinstance(value, dict) else value
    return train_run("hapt", "quick", tmp_path / name, quiet=True, overrides=cfg)


def _state(path):
    from ditmos.training.checkpoint import load_checkpoint

    return load_checkpoint(path)


def _members(arrays, prefix, K):
    """Per-member slices of the classifier bank's first conv kernel and last dense layer."""
    k = arrays[f"{prefix}/b0/kernel"]
    f = k.shape[-1] // K
    last = max(int(n.split("/")[1][2:]) for n in arrays if n.startswith(f"{prefix}/fc"))
    d = arrays[f"{prefix}/fc{last}/kernel"]
    return [(k[..., m * f : (m + 1) * f], d[m]) for m in range(K)]


def test_bank_replicate_gives_members_identical_to_the_single_net():
    import tensorflow as tf

    from ditmos.models.arch import Block, Net
    from ditmos.models.bank import Bank

    net = Net(blocks=(Block(3, 5), Block(2, 3)), fc=(4,))
    one = Bank(net, 2, 5, 1, seed=1, side_channels={1: 2}).build(20)
    many = Bank(net, 2, 5, 3, seed=2, side_channels={1: 2}).build(20)
    many.set_state(Bank.replicate(one.get_state(), 3))
    x = np.random.default_rng(0).normal(size=(4, 20, 2)).astype(np.float32)
    side = {1: tf.constant(np.random.default_rng(1).normal(size=(4, 8, 2)).astype(np.float32))}
    a = one(x, training=False, side=side).numpy()
    b = many(x, training=False, side=side).numpy()
    for m in range(3):
        np.testing.assert_allclose(b[:, m], a[:, 0], rtol=1e-5, atol=1e-5)


def test_confusion_groups_put_confused_classes_together():
    from ditmos.training.stages import confusion_groups, split_clusters

    y = np.repeat(np.arange(4), 10)
    pred = y.copy()
    pred[[0, 1, 2]] = 1  # class 0 often predicted as 1
    pred[[25, 26]] = 3  # class 2 sometimes predicted as 3
    logits = np.eye(4)[pred]
    g = confusion_groups(logits, y, 2, 4)
    assert g[0] == g[1] and g[2] == g[3] and g[0] != g[2]
    assert sorted(confusion_groups(logits, y, 4, 4).tolist()) == [0, 1, 2, 3]
    # a separable class never steals a group that confused classes need
    assert len(set(confusion_groups(logits, y, 3, 4).tolist())) == 3
    clusters = split_clusters("confusion", y, 2, logits=logits)
    assert np.array_equal(clusters, g[y])
    # more clusters than classes: the largest clusters are split by KMeans
    feats = np.random.default_rng(0).normal(size=(40, 3))
    feats[::2] += 5.0
    c6 = split_clusters("confusion", y, 6, logits=logits, feats=feats, n_init=2)
    assert sorted(set(c6.tolist())) == list(range(6))
    for k in range(6):
        assert len(set(y[c6 == k].tolist())) == 1  # each cluster within one class


def test_new_options_are_validated():
    from ditmos.training.config import resolve_config

    with pytest.raises(DitmosError, match="routing.target"):
        resolve_config("hapt", "quick", overrides={"routing": {"target": "oracle"}})
    with pytest.raises(DitmosError, match="out_weight"):
        resolve_config("hapt", "quick", overrides={"classifier_pretrain": {"out_weight": 2}})
    with pytest.raises(DitmosError, match="generalist.fallback"):
        resolve_config("hapt", "quick", overrides={"generalist": {"fallback": "yes"}})
    with pytest.raises(DitmosError, match="unknown key"):
        resolve_config("hapt", "quick", overrides={"generalist": {"epoch": 2}})


def test_fallback_off_keeps_the_generalist_out_of_selection():
    from ditmos.training.stages import _consider_best

    tr = SimpleNamespace(progress={"best": None}, cfg={"generalist": {"fallback": False}})
    _consider_best(tr, {"ditmos": 0.9}, "generalist")
    assert tr.progress["best"] is None


@pytest.mark.slow
def test_generalist_then_specialised_heads(tmp_path):
    """Identical heads after the generalist stage; overlapping pre-training
    makes them differ; the frozen trunk is not moved by routing; cluster
    routing with confusion groups and distillation run end to end."""
    run = _run(
        tmp_path,
        "a",
        generalist={"distill": 0.5},
        split={"method": "confusion"},
        routing={"target": "cluster"},
        classifier_pretrain={"out_weight": 0.3},
    )
    K = 3
    gen, prog = _state(run / "checkpoints" / "generalist.npz")
    heads = _members(gen, "classifiers", K)
    for kern, dense in heads[1:]:
        assert np.array_equal(kern, heads[0][0]) and np.array_equal(dense, heads[0][1])
    # with identical heads the composed model is the generalist, whatever the routing
    assert prog["best"]["at"] == "generalist"
    assert abs(prog["best"]["val_ditmos"] - prog["generalist_best"]["val_acc"]) <= 1 / 150
    pre, _ = _state(run / "checkpoints" / "classifier_pretrain.npz")
    heads = _members(pre, "classifiers", K)
    assert not np.array_equal(heads[0][1], heads[1][1])
    final, prog = _state(run / "checkpoints" / "adversarial.npz")  # before selection
    for name in ("b0/kernel", "b1/kernel", "b0/mean", "b1/var"):  # the shared trunk
        assert np.array_equal(final[f"selector/{name}"], gen[f"selector/{name}"]), name
    assert not np.array_equal(final["selector/b2/kernel"], gen["selector/b2/kernel"])
    m = json.loads((run / "metrics.json").read_text())
    assert m["clusters"]["method"] == "confusion"
    assert m["selection"]["val_ditmos"] >= prog["generalist_best"]["val_acc"] - 1 / 150


@pytest.mark.slow
def test_full_overlap_keeps_heads_identical_and_fallback_catches_damage(tmp_path):
    """out_weight = 1 trains every head on the same weighted data: they stay
    identical.  A destructive adversarial phase (huge learning rate) cannot
    make the selected model worse than the generalist on validation."""
    run = _run(
        tmp_path,
        "b",
        classifier_pretrain={"out_weight": 1.0},
        adversarial={"rounds": 1, "lr": 5.0, "selector_epochs": 0},
    )
    pre, _ = _state(run / "checkpoints" / "classifier_pretrain.npz")
    heads = _members(pre, "classifiers", 3)
    for kern, dense in heads[1:]:  # equal up to the grouped convolution's float rounding
        np.testing.assert_allclose(kern, heads[0][0], atol=1e-5)
        np.testing.assert_allclose(dense, heads[0][1], atol=1e-5)
    _, prog = _state(run / "checkpoints" / "latest.npz")
    m = json.loads((run / "metrics.json").read_text())
    gen_val = [h for h in prog["history"] if h["stage"] == "generalist"]
    assert m["selection"]["val_ditmos"] >= max(h["val_acc"] for h in gen_val) - 1 / 150
    adv = [h["val"]["ditmos"] for h in prog["history"] if h["stage"] == "adversarial"]
    assert m["selection"]["val_ditmos"] >= max(adv)


def test_search_candidates_meet_the_budget_and_pick_best_uses_validation(tmp_path):
    from ditmos.models.arch import architecture_from_dict, costs, default_architecture_dict
    from ditmos.training.search import TOLERANCE, budget_macs, candidates, describe_space, pick_best

    for family, shape, classes in (("har", (128, 6), 6), ("mfcc", (32, 13), 10)):
        base = default_architecture_dict(family)
        for width in (0.125, 0.25, 0.5):
            target, cands = candidates(base, width, shape, classes, trials=3)
            assert target == budget_macs(base, width, shape, classes)
            assert len(cands) == 3 and len({json.dumps(c.architecture) for c in cands}) == 3
            for c in cands:
                arch = architecture_from_dict(c.architecture, width=width)
                macs = costs(arch, shape, classes)["ditmos"]["macs"]
                assert macs == c.macs and abs(macs / target - 1) <= TOLERANCE
        assert describe_space(family, 2).startswith("2 templates")
    for name, val in (("a", 0.8), ("b", 0.9), ("c", 0.9)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(
            json.dumps(
                {"val": {"float": {"ditmos": val}}, "test": {"float": {"ditmos": 1 - val}}, "model": {"macs": 10}}
            )
        )
    best, rows = pick_best([tmp_path / n for n in "abc"])
    assert best.name == "b" and [r["val_accuracy"] for r in rows] == [0.8, 0.9, 0.9]
    with pytest.raises(DitmosError, match="no DiTMoS search template"):  # too few samples
        candidates(default_architecture_dict("har"), 0.25, (128, 6), 6, trials=2, n_train=10)


@pytest.mark.slow
def test_compare_with_search_gives_ditmos_the_baselines_trial_count(tmp_path):
    from ditmos.training.compare import run_compare, search_candidates
    from ditmos.training.sweep import make_executor
    from ditmos.training.testing import tiny_config

    cfg = tiny_config("hapt")
    cfg["subset"] = 300
    cfg["strong"] = dict(cfg["strong"], epochs=1)
    cfg["adversarial"] = dict(cfg["adversarial"], rounds=1)
    user = tmp_path / "user.json"
    user.write_text(json.dumps(cfg))
    out = run_compare(
        "hapt",
        "quick",
        tmp_path / "cmp",
        widths=(0.5,),
        config_file=user,
        ablations="none",
        candidates=search_candidates(),
        executor=make_executor(1, None, True),
        baseline_overrides={"epochs": 1, "depths": [2, 3], "only": ["weak_equal_macs", "strong"]},
    )
    report = json.loads((out / "compare.json").read_text())
    side = report["search"]["0.5"]
    assert side["ditmos"]["trials"] == side["weak_equal_macs"]["trials"] == 2
    vals = {c["name"]: c["val_accuracy_mean"] for c in side["ditmos"]["candidates"]}
    chosen = side["ditmos"]["selected"]
    assert vals[chosen.removeprefix("candidate_")] == max(vals.values())
    assert "Search effort" in (out / "compare.md").read_text()


def test_seed_varies_initialisation_not_the_data_split():
    from ditmos.training.config import resolve_config
    from ditmos.training.run import prepare_data

    def split(**kw):
        _, s, _, _ = prepare_data(resolve_config("hapt", "quick", **kw))
        return s

    a, b = split(seed=0), split(seed=2)
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    c = split(seed=0, overrides={"split_seed": 1})
    assert not np.array_equal(a.test, c.test)  # other subjects tested
    with pytest.raises(DitmosError, match="split_seed"):
        resolve_config("hapt", "quick", overrides={"split_seed": -1})


@pytest.mark.slow
def test_generalist_restarts_keep_the_best_start_on_validation(tmp_path):
    """generalist.restarts trains several initialisations for probe_epochs and
    continues the one best on validation (restart 0 = the run's own)."""
    run = _run(tmp_path, "r", generalist={"restarts": 3, "probe_epochs": 1}, adversarial={"rounds": 0})
    _, prog = _state(run / "checkpoints" / "generalist.npz")
    probes = [h for h in prog["history"] if h["stage"] == "generalist" and "restart" in h]
    assert [h["restart"] for h in probes] == [0, 1, 2]
    picked = prog["generalist_restart"]["picked"]
    assert probes[picked]["val_acc"] == max(h["val_acc"] for h in probes)
    assert len({h["val_acc"] for h in probes}) > 1 or picked == 0  # different starts
    with pytest.raises(DitmosError, match="generalist.restarts"):
        from ditmos.training.config import resolve_config

        resolve_config("hapt", "quick", overrides={"generalist": {"restarts": 0}})


def test_generalist_average_is_the_mean_of_the_epochs_weights_with_fresh_bn_statistics(tmp_path):
    """generalist.average_epochs N: the stage ends with the mean of the last N
    epochs' weights (running sums kept in the checkpointed best state), whose
    batch-norm statistics are re-estimated on training data."""
    import tensorflow as tf

    from ditmos.training.config import architecture, resolve_config
    from ditmos.training.progress import Reporter
    from ditmos.training.stages import Trainer, _accumulate, _use_average
    from ditmos.training.testing import tiny_config

    cfg = resolve_config(
        "hapt", "quick", overrides=dict(tiny_config("hapt"), generalist={"epochs": 2, "average_epochs": 2})
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 128, 6)).astype(np.float32)
    y = np.arange(40) % 6
    data = {"x_train": x, "y_train": y, "x_val": x[:10], "y_val": y[:10], "num_classes": 6}
    tr = Trainer(cfg, architecture(cfg), data, tmp_path, Reporter(None, True))
    states = []
    for k in range(2):
        sel = {n: v + np.float32(k) for n, v in tr.selector.get_state().items()}
        tr.selector.set_state(sel)
        states.append(sel)
        tr.best_state = _accumulate(tr, tr.best_state or {})
    _use_average(tr, 2)
    got = tr.selector.get_state()
    assert np.allclose(got["b0/kernel"], (states[0]["b0/kernel"] + states[1]["b0/kernel"]) / 2)
    assert not np.allclose(got["b0/kernel"], states[1]["b0/kernel"])
    # BN statistics: those of the training windows under the averaged weights
    h = tf.nn.conv1d(x, got["b0/kernel"], stride=1, padding="VALID").numpy()
    assert np.allclose(got["b0/mean"], h.mean(axis=(0, 1)), atol=1e-4)
    assert np.allclose(got["b0/var"], h.var(axis=(0, 1)), rtol=1e-3, atol=1e-4)
    assert 0.0 <= tr.progress["generalist_average"]["val_acc"] <= 1.0
    tr.selector(tf.constant(x[:4]), training=False)  # still a working network
    with pytest.raises(DitmosError, match="generalist.average_epochs"):
        resolve_config("hapt", "quick", overrides={"generalist": {"average_epochs": -1}})


def test_augment_shifts_scales_offsets_and_jitters_only_the_single_network_stages():
    """``augment``: shifted windows repeat their edge sample, scaling multiplies
    and offset moves a whole channel, jitter adds noise; the strong model and the generalist see
    fresh draws per epoch (the same on a repeat), other stages the raw windows."""
    from ditmos.training.augment import augment_windows
    from ditmos.training.config import resolve_config
    from ditmos.training.stages import Trainer
    from ditmos.training.testing import tiny_config

    x = np.tile(np.arange(20, dtype=np.float32)[None, :, None], (50, 1, 2))
    shifted = augment_windows(x, np.random.default_rng(0), {"shift": 0.25})
    steps = np.diff(shifted, axis=1)
    assert set(np.unique(steps)) <= {0.0, 1.0}  # a ramp moved in time, its ends held
    assert len({int(v) for v in shifted[:, 0, 0]}) > 1 and shifted.min() == 0 and shifted.max() == 19
    assert np.abs(shifted[:, 10, 0] - 10).max() <= 5
    scaled = augment_windows(x + 1, np.random.default_rng(0), {"scale": 0.2})
    ratio = scaled / (x + 1)
    assert np.allclose(ratio, ratio[:, :1, :]) and ratio.std() > 0.05  # one factor per window and channel
    off = augment_windows(x, np.random.default_rng(0), {"offset": 0.5}) - x
    assert np.allclose(off, off[:, :1, :], atol=1e-5) and off.std() > 0.3  # one constant per window and channel
    jit = augment_windows(x, np.random.default_rng(0), {"jitter": 0.1})
    assert 0.08 < (jit - x).std() < 0.12 and x[0, 5, 0] == 5.0  # input untouched

    over = dict(tiny_config("hapt"), augment={"shift": 0.1, "scale": 0.1, "offset": 0.1, "jitter": 0.05})
    cfg = resolve_config("hapt", "quick", overrides=over)
    xt = np.random.default_rng(0).normal(size=(30, 128, 6)).astype(np.float32)
    tr = SimpleNamespace(cfg=cfg, x_train=xt, seed=0)  # what Trainer.train_inputs reads
    tr.rng = lambda *a: Trainer.rng(tr, *a)
    tr.train_inputs = lambda *a: Trainer.train_inputs(tr, *a)
    a = tr.train_inputs("generalist", 3)
    assert not np.allclose(a, xt) and np.array_equal(a, tr.train_inputs("generalist", 3))
    assert not np.allclose(a, tr.train_inputs("generalist", 4))
    assert not np.allclose(tr.train_inputs("strong", 0), xt)
    assert tr.train_inputs("adversarial", 0) is xt
    for bad in ({"shift": 0.6}, {"scale": -1}, {"jitter": "x"}):
        with pytest.raises(DitmosError, match="augment"):
            resolve_config("hapt", "quick", overrides={"augment": bad})
    with pytest.raises(DitmosError, match="label_smoothing"):
        resolve_config("hapt", "quick", overrides={"generalist": {"label_smoothing": 0.9}})
    with pytest.raises(DitmosError, match="precise_bn"):
        resolve_config("hapt", "quick", overrides={"generalist": {"precise_bn": 1}})
