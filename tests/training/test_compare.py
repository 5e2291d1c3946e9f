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

# A real but very short schedule on a hapt subset: every stage runs.
TINY = {
    "subset": 900,
    "strong": {"epochs": 1},
    "split": {"n_init": 1, "max_iter": 20},
    "classifier_pretrain": {"epochs": 1},
    "selector_pretrain": {"epochs": 1},
    "adversarial": {"rounds": 1, "selector_epochs": 1, "classifier_epochs": 1},
}


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
    store_baselines_in_metrics(tmp_path, {"weak_equal_macs": {"test_accuracy": 0.8,
                                                              "val_accuracy": 0.7}})
    store_baselines_in_metrics(tmp_path, {"soft_moe": {"test_accuracy": 0.6,
                                                       "val_accuracy": 0.5}})
    got = json.loads((tmp_path / "metrics.json").read_text())
    assert got["test"]["float"] == {"ditmos": 0.9, "union": 0.99,
                                    "baselines": {"weak_equal_macs": 0.8, "soft_moe": 0.6}}
    assert got["val"]["float"]["baselines"] == {"weak_equal_macs": 0.7, "soft_moe": 0.5}
    assert got["model"] == {"params": 5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp files left


@pytest.mark.slow
def test_compare_on_tiny_subset_writes_tables(tmp_path):
    from ditmos.training.compare import run_compare

    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    out = run_compare("hapt", "quick", tmp_path / "cmp", widths=(0.5, 1.0), seed=0, quiet=True,
                      config_file=cfg, baseline_overrides={"epochs": 1, "depths": [2]})
    report = json.loads((out / "compare.json").read_text())
    assert report["format"] == "ditmos-compare/1" and report["widths"] == [0.5, 1.0]
    assert list(report["results"]) == ["0.5", "1"]
    expected = {"ditmos", "weak_equal_macs", "equal_params", "strong", "ensemble", "soft_moe",
                "early_exit"}
    for tag, res in report["results"].items():
        methods = res["methods"]
        want = expected | ({f"ablation_{a}" for a in ABLATIONS} if tag == "1" else set())
        assert set(methods) == want, tag
        for name, r in methods.items():
            for key in ("test_accuracy", "val_accuracy"):
                assert r[key] is not None and 0 <= r[key] <= 1, (tag, name, key)
            assert r["params"] > 0 and r["macs"] > 0 and r["flash_bytes"] > 0, (tag, name)
        # equal-MACs and equal-params networks really match the DiTMoS budget
        b = res["budget"]
        assert abs(methods["weak_equal_macs"]["macs"] / b["inference_macs"] - 1) <= 0.10
        assert abs(methods["equal_params"]["params"] / b["total_params"] - 1) <= 0.10
        assert methods["ditmos"]["macs"] == b["inference_macs"]
        # baselines stored in the DiTMoS run's metrics.json
        metrics = json.loads((out / res["run_dir"] / "metrics.json").read_text())
        stored = metrics["test"]["float"]["baselines"]
        assert set(stored) == expected - {"ditmos"}
        for name, acc in stored.items():
            assert acc == methods[name]["test_accuracy"]
    # ablations: same split as the reference run, one changed setting each
    w1 = out / "width_1"
    ref = np.load(w1 / "ditmos" / "splits.npz")
    for a in ABLATIONS:
        split = np.load(w1 / f"ablation_{a}" / "splits.npz")
        assert all(np.array_equal(ref[k], split[k]) for k in ("train", "val", "test"))
    cfg_noagg = json.loads((w1 / "ablation_no_aggregation" / "config.json").read_text())
    assert cfg_noagg["architecture"]["shared_blocks"] == []
    assert json.loads((w1 / "ablation_no_adversarial" / "config.json").read_text())[
        "adversarial"]["rounds"] == 0
    assert json.loads((w1 / "ablation_random_split" / "config.json").read_text())[
        "split"]["method"] == "random"
    # the Markdown: a summary row per width, then one table per width with a
    # row per method, every row with the same number of cells as its header
    md = (out / "compare.md").read_text()
    summary = [ln for ln in md.splitlines() if re.match(r"\| (0\.5|1) \|", ln)]
    assert len(summary) == 2
    tables = [t for t in md.split("\n\n") if t.startswith("| method")]
    assert len(tables) == 2
    for t, tag in zip(tables, ["0.5", "1"]):
        rows = t.splitlines()
        assert len(rows) == 2 + len(report["results"][tag]["methods"])
        assert len({row.count("|") for row in rows}) == 1
