"""``run_compare``: real tiny runs at two widths, ablations, baselines, tables
and the metrics.json write-back."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.training.ablations import ABLATIONS, ablation_overrides
from ditmos.training.compare import parse_widths, store_baselines_in_metrics


def _tiny_config() -> dict:
    """The shared tiny run's config (hapt subset, K = 3, small strong model)
    with one epoch per stage: every stage still runs."""
    from ditmos.training.testing import tiny_config

    cfg = tiny_config()
    for stage in ("strong", "classifier_pretrain", "selector_pretrain"):
        cfg[stage] = dict(cfg[stage], epochs=1)
    cfg["adversarial"] = dict(cfg["adversarial"], rounds=1, selector_epochs=1, classifier_epochs=1)
    cfg["split"] = dict(cfg["split"], n_init=1)
    return cfg


def test_parse_widths():
    assert parse_widths("0.25, 0.5,1") == (0.25, 0.5, 1.0)
    with pytest.raises(DitmosError, match="'x' is not a number"):
        parse_widths("0.5,x")
    with pytest.raises(DitmosError, match="distinct"):
        parse_widths("1,1")
    with pytest.raises(DitmosError, match=r"must be in \(0, 16\]"):
        parse_widths("0")


def test_ablation_overrides():
    base = {"architecture": {"K": 4, "shared_blocks": [1, 2], "selector": {}}}
    assert ablation_overrides("random_split", base) == {"split": {"method": "random"}}
    assert ablation_overrides("no_adversarial", base) == {"adversarial": {"rounds": 0}}
    arch = ablation_overrides("no_aggregation", base)["architecture"]
    assert arch["shared_blocks"] == [] and arch["K"] == 4
    assert base["architecture"]["shared_blocks"] == [1, 2]  # not mutated
    with pytest.raises(DitmosError, match="unknown ablation 'dropout'"):
        ablation_overrides("dropout", base)


def test_store_baselines_keeps_other_keys(tmp_path):
    metrics = {"test": {"float": {"ditmos": 0.9, "union": 0.99}}, "model": {"params": 5}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    store_baselines_in_metrics(tmp_path, {"weak_equal_macs": {"test_accuracy": 0.8, "val_accuracy": 0.7}})
    store_baselines_in_metrics(tmp_path, {"soft_moe": {"test_accuracy": 0.6, "val_accuracy": 0.5}})
    got = json.loads((tmp_path / "metrics.json").read_text())
    assert got["test"]["float"] == {
        "ditmos": 0.9,
        "union": 0.99,
        "baselines": {"weak_equal_macs": 0.8, "soft_moe": 0.6},
    }
    assert got["val"]["float"]["baselines"] == {"weak_equal_macs": 0.7, "soft_moe": 0.5}
    assert got["model"] == {"params": 5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp files left


def test_every_ablation_config_is_accepted_by_training(tmp_path):
    from ditmos.training.ablations import write_ablation_config
    from ditmos.training.config import architecture, resolve_config

    user_cfg = _tiny_config()
    # several generalist starts, so that the no_restarts ablation changes something
    user_cfg["generalist"] = dict(user_cfg["generalist"], restarts=3)
    user = tmp_path / "user.json"
    user.write_text(json.dumps(user_cfg))
    ref = resolve_config("hapt", "quick", config_file=user, width=0.5)
    for name in ABLATIONS:
        path = write_ablation_config(name, "hapt", "quick", tmp_path / f"{name}.json", config_file=user)
        cfg = resolve_config("hapt", "quick", config_file=path, width=0.5)
        changed = {k for k in cfg if cfg[k] != ref[k]}
        # exactly the ablation's own settings differ
        assert changed == set(ablation_overrides(name, ref)), (name, changed)
        assert cfg["subset"] == ref["subset"] == 600  # the user's own settings stay
        if name == "no_aggregation":
            assert architecture(cfg).shared_blocks == ()
            assert architecture(cfg).selector == architecture(ref).selector


@pytest.mark.slow
def test_compare_on_tiny_subset_writes_tables(tiny_compare):
    """The CLI's form: compare around a finished (tiny) run; one more width
    and one ablation are trained, cheap baselines only (the session fixture)."""
    run = tiny_compare
    out = run / "compare"
    run_width = json.loads((run / "config.json").read_text())["width"]
    assert run_width == 1.0
    report = json.loads((out / "compare.json").read_text())
    assert report["format"] == "ditmos-compare/2" and report["widths"] == [0.5, 1.0]
    assert list(report["results"]) == ["0.5", "1"]
    assert report["results"]["1"]["run_dir"] == ".."  # the given run stands for width 1
    expected = {"ditmos", "weak_equal_macs", "equal_params", "strong", "ensemble_average"}
    for tag, res in report["results"].items():
        methods = res["methods"]
        want = expected | ({"ablation_no_aggregation"} if tag == "1" else set())
        assert set(methods) == want, tag
        for name, r in methods.items():
            for key in ("test_accuracy", "val_accuracy"):
                assert r[key] is not None and 0 <= r[key] <= 1, (tag, name, key)
            assert r["params"] > 0 and r["macs"] > 0 and r["flash_bytes"] > 0, (tag, name)
        # equal-MACs and equal-params networks really match the DiTMoS budget
        b = res["budget"]
        assert abs(methods["weak_equal_macs"]["macs"] / b["inference_macs"] - 1) <= 0.10
        assert abs(methods["equal_params"]["params"] / b["total_params"] - 1) <= 0.10
        # DiTMoS's own costs are the training stage's figures
        metrics = json.loads((out / res["run_dir"] / "metrics.json").read_text())
        assert methods["ditmos"]["macs"] == b["inference_macs"] == metrics["model"]["macs"]
        assert methods["ditmos"]["params"] == metrics["model"]["params"]
        assert methods["ditmos"]["test_accuracy"] == metrics["test"]["float"]["ditmos"]
        # baselines stored in the DiTMoS run's metrics.json
        stored = metrics["test"]["float"]["baselines"]
        assert expected - {"ditmos"} <= set(stored)
        for name in expected - {"ditmos"}:
            assert stored[name] == methods[name]["test_accuracy"]
    # the ablation: same split as the reference run, no aggregation, fewer MACs
    ab = out / "width_1" / "ablation_no_aggregation_s0"
    ref, split = np.load(run / "splits.npz"), np.load(ab / "splits.npz")
    assert all(np.array_equal(ref[k], split[k]) for k in ("train", "val", "test"))
    assert json.loads((ab / "config.json").read_text())["architecture"]["shared_blocks"] == []
    m1 = report["results"]["1"]["methods"]
    assert m1["ablation_no_aggregation"]["macs"] < m1["ditmos"]["macs"]
    # the Markdown: a summary row per width, then one table per width with a
    # row per method, every row with the same number of cells as its header
    md = (out / "compare.md").read_text()
    head = md.split("## Search effort")[0]
    summary = [ln for ln in head.splitlines() if re.match(r"\| (0\.5|1) \|", ln)]
    assert len(summary) == 2
    tables = [t for t in md.split("\n\n") if t.startswith("| method")]
    assert len(tables) == 2
    for t, tag in zip(tables, ["0.5", "1"]):
        rows = t.splitlines()
        assert len(rows) == 2 + len(report["results"][tag]["methods"])
        assert len({row.count("|") for row in rows}) == 1


def test_the_config_file_sets_the_baselines_schedule(tmp_path):
    from ditmos.training.baselines import baseline_config
    from ditmos.training.config import resolve_config

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"baselines": {"epochs": 3, "depths": [2]}}))
    cfg = resolve_config("hapt", "quick", config_file=good)
    merged = baseline_config("quick", cfg["baselines"])
    assert merged["epochs"] == 3 and merged["depths"] == [2] and merged["lr"] == 3e-3
    for bad, msg in (
        ({"epoch": 3}, "unknown key"),
        ({"epochs": 0}, "integer >= 1"),
        ({"only": ["nope"]}, "unknown baseline"),
    ):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"baselines": bad}))
        with pytest.raises(DitmosError, match=msg):
            resolve_config("hapt", "quick", config_file=path)
