"""End-to-end: the run directory contract, resume equivalence, config errors."""

import json

import numpy as np
import pytest

from ditmos.cli import main
from ditmos.errors import DitmosError
from ditmos.training.testing import tiny_config


def _load(p):
    return json.loads(p.read_text())


def test_run_directory_matches_the_contract(tiny_run):
    for name in (
        "config.json",
        "versions.json",
        "splits.npz",
        "normalization.json",
        "metrics.json",
        "train.log",
        "checkpoints/latest.npz",
        "models/strong.keras",
        "models/selector.keras",
        "export/selector.keras",
        "export/export.json",
    ):
        assert (tiny_run / name).is_file(), name
    ex = _load(tiny_run / "export" / "export.json")
    assert ex["K"] == 3 and ex["num_classes"] == 6 and ex["input_shape"] == [128, 6]
    assert ex["shared_blocks"] == [1, 2] and len(ex["class_names"]) == 6
    for k in range(3):
        assert (tiny_run / "export" / f"classifier_{k}.keras").is_file()
        assert (tiny_run / "models" / f"classifier_{k}.keras").is_file()
    assert set(_load(tiny_run / "versions.json")) >= {"python", "tensorflow", "numpy", "ditmos"}
    norm = _load(tiny_run / "normalization.json")
    assert len(norm["mean"]) == 6 and len(norm["std"]) == 6


def test_metrics_have_the_stable_keys(tiny_run):
    m = _load(tiny_run / "metrics.json")
    for split in ("test", "val"):
        f = m[split]["float"]
        for key in ("ditmos", "union"):
            assert 0.0 <= f[key] <= 1.0
        assert f["union"] >= f["ditmos"]
        assert set(f["baselines"]) >= {"strong", "ensemble_average"}
        assert len(f["classifiers"]) == 3 and sum(f["routing_histogram"]) == f["samples"]
        conf = np.array(f["confusion_matrix"])
        assert conf.shape == (6, 6) and conf.sum() == f["samples"]
        assert np.trace(conf) / conf.sum() == pytest.approx(f["ditmos"])
        assert 0 <= f["collapse"]["route_constant_accuracy"] <= 1
        assert len(f["collapse"]["classifier_top_class_share"]) == 3
    assert m["test"]["float"]["ditmos"] > 0.5  # 6 classes: chance is ~0.17
    assert isinstance(m["model"]["params"], int) and isinstance(m["model"]["macs"], int)
    assert m["model"]["macs"] == (
        m["model"]["per_model"]["selector"]["macs"] + m["model"]["per_model"]["classifier"]["macs"]
    )
    assert 0 < m["clusters"]["purity"] <= 1 and sum(m["clusters"]["sizes"]) == 600
    assert m["selection"]["val_ditmos"] == m["val"]["float"]["ditmos"]


def test_export_models_load_with_contract_names(tiny_run):
    import keras

    sel = keras.models.load_model(tiny_run / "export" / "selector.keras")
    assert [t.name for t in sel.inputs] == ["window"] and sel.inputs[0].shape == (1, 128, 6)
    assert set(sel.output) == {"route", "feat_1", "feat_2"}
    cls = keras.models.load_model(tiny_run / "export" / "classifier_1.keras")
    assert sorted(t.name for t in cls.inputs) == ["sel_feat_1", "sel_feat_2", "window"]
    assert set(cls.output) == {"logits"}


def test_load_run_data_reproduces_the_test_accuracy(tiny_run):
    import keras

    from ditmos.training.rundir import load_run_data

    d = load_run_data(tiny_run)
    assert d.x_train.shape == (600, 128, 6) and d.x_test.shape == (300, 128, 6)
    np.testing.assert_allclose(d.x_train.mean(axis=(0, 1)), 0, atol=1e-4)
    sel = keras.models.load_model(tiny_run / "models" / "selector.keras")
    cls = [keras.models.load_model(tiny_run / "models" / f"classifier_{k}.keras") for k in range(3)]
    o = sel({"window": d.x_test})
    feeds = {"window": d.x_test, "sel_feat_1": np.asarray(o["feat_1"]), "sel_feat_2": np.asarray(o["feat_2"])}
    logits = np.stack([c(feeds)["logits"].numpy() for c in cls], axis=1)
    pred = logits[np.arange(len(d.y_test)), np.argmax(o["route"].numpy(), 1)].argmax(1)
    acc = float((pred == d.y_test).mean())
    assert acc == pytest.approx(d.metrics["test"]["float"]["ditmos"], abs=1 / 300)


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_after_interruptions_ends_in_identical_metrics(tmp_path, monkeypatch):
    from ditmos.training import progress
    from ditmos.training.testing import tiny_run as make_tiny_run

    # An uninterrupted run of our own: the shared session run is read by later
    # stages, which add their own keys to its metrics.json.
    tiny_run = make_tiny_run(tmp_path / "uninterrupted")
    from ditmos.training.run import train_run

    run = tmp_path / "run"
    calls = {"n": 0}
    orig = progress.Reporter.advance

    def advance(self, info=""):
        calls["n"] += 1
        if calls["n"] in stop_at:
            raise _Interrupt()
        orig(self, info)

    monkeypatch.setattr(progress.Reporter, "advance", advance)
    # advance() follows each epoch's checkpoint: 4 = inside the generalist stage,
    # 7 = inside classifier pre-training, 12 = inside the adversarial phase
    stop_at = {4, 7, 12}
    with pytest.raises(_Interrupt):
        train_run("hapt", "quick", run, seed=0, quiet=True, overrides=tiny_config())
    with pytest.raises(DitmosError, match="already holds a training run"):
        train_run("hapt", "quick", run, seed=0, quiet=True, overrides=tiny_config())
    for _ in range(2):
        with pytest.raises(_Interrupt):
            train_run("hapt", "quick", run, seed=0, quiet=True, resume=True, overrides=tiny_config())
    train_run("hapt", "quick", run, seed=0, quiet=True, resume=True, overrides=tiny_config())
    a, b = _load(tiny_run / "metrics.json"), _load(run / "metrics.json")
    a.pop("timing"), b.pop("timing")
    assert a == b
    with np.load(tiny_run / "checkpoints" / "select.npz") as fa, np.load(run / "checkpoints" / "select.npz") as fb:
        for k in fa.files:
            if k != "__progress__":
                np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def _cfg(tmp_path, obj):
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps(obj))
    return p


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"adversarial": {"roundz": 3}}, "unknown key(s) ['roundz'] in 'adversarial'"),
        ({"learning_rate": 3}, "unknown key 'learning_rate'"),
        ({"split": {"method": "spectral"}}, "'split.method' must be one of"),
        ({"strong": {"epochs": -1}}, "'strong.epochs' must be an integer"),
    ],
)
def test_bad_config_file_is_rejected_before_training(tmp_path, cfg, message):
    from ditmos.training import train_run

    with pytest.raises(DitmosError) as e:
        train_run("hapt", "quick", tmp_path / "run", config_file=_cfg(tmp_path, cfg), quiet=True)
    assert message in str(e.value)
    assert not (tmp_path / "run").exists()


def test_config_that_does_not_fit_the_data_is_rejected(tmp_path):
    from ditmos.training import train_run

    over = tiny_config()
    over["architecture"]["selector"]["blocks"][0]["kernel"] = 200
    with pytest.raises(DitmosError, match="does not fit.*128 steps"):
        train_run("hapt", "quick", tmp_path / "a", overrides=over, quiet=True)
    over = tiny_config()
    over["subset"] = 40
    over["architecture"]["K"] = 12
    with pytest.raises(DitmosError, match="K = 12 is too large for 40 training samples"):
        train_run("hapt", "quick", tmp_path / "b", overrides=over, quiet=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_reports_bad_config_on_one_line(tmp_path, capsys):
    p = _cfg(tmp_path, {"adversarial": {"rounds": "many"}})
    rc = main(["train", "--dataset", "hapt", "--out", str(tmp_path / "r"), "--config", str(p), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert err.startswith("ditmos: error: config 'adversarial.rounds' must be an integer")
