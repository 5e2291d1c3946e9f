"""``ditmos bench frontend``: a run's models evaluated through the benchmark give
exactly the accuracies training recorded (same model, clips, normalisation),
the two front ends give the same answers (the point of the mel floor), and
runs that cannot be compared are refused with one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ditmos.bench.frontend import measure, render_markdown


@pytest.fixture(scope="module")
def audio_runs(tmp_path_factory):
    """A tiny DiTMoS run on fsdd_audio (fixed-point features) and the same
    network re-expressed for float features: a copy whose dataset is
    fsdd_audio_float and whose normalisation maps float units onto what the
    network was trained on (mean and std through the exact unit map). One
    training instead of two keeps the test cheap."""
    from ditmos.data.fsdd_audio import CONFIG
    from ditmos.data.mfcc_fixed import to_float_units
    from ditmos.training.testing import tiny_run

    base = tmp_path_factory.mktemp("frontend_runs")
    fixed = tiny_run(base / "fixed", dataset="fsdd_audio")
    flt = base / "float" / "run"
    shutil.copytree(fixed, flt)
    cfg = json.loads((flt / "config.json").read_text())
    cfg["dataset"] = "fsdd_audio_float"
    (flt / "config.json").write_text(json.dumps(cfg))
    norm = json.loads((fixed / "normalization.json").read_text())
    mean = to_float_units(np.asarray(norm["mean"]) * 1024.0, CONFIG)
    std = np.asarray(norm["std"]) * np.log(2.0)
    (flt / "normalization.json").write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist()}))
    return fixed, flt


def _main(args, capsys):
    from ditmos.cli import main

    code = main(args)
    return code, capsys.readouterr()


def test_same_model_same_answers_and_recorded_accuracy(audio_runs):
    fixed, flt = audio_runs
    res = measure([fixed], [flt])
    assert res["split"]["test"]["clips_used"] == res["split"]["test"]["clips"] == 300
    assert len(res["split"]["test"]["speakers"]) == 1
    assert not set(res["split"]["test"]["speakers"]) & set(res["split"]["train"]["speakers"])
    recorded = json.loads((fixed / "metrics.json").read_text())["test"]["float"]
    own = res["runs"][0]["models"]
    assert own["ditmos"]["test"]["fixed_features"] == pytest.approx(recorded["ditmos"], abs=1e-9)
    assert own["strong"]["test"]["fixed_features"] == pytest.approx(recorded["baselines"]["strong"], abs=1e-9)
    for row in res["runs"]:
        for model in ("ditmos", "strong"):
            for split in ("val", "test"):
                r = row["models"][model][split]
                # the features agree to ~0.01 nats (silent frames included), so do the answers
                assert r["agreement"] >= 0.97, (row["trained_on"], model, split, r)
                assert abs(r["fixed_features"] - r["float_features"]) <= 1 - r["agreement"] + 1e-9
    # the re-expressed network on float features is the network on fixed-point features
    again = res["runs"][1]["models"]["ditmos"]["test"]["float_features"]
    assert abs(again - own["ditmos"]["test"]["fixed_features"]) <= 0.03
    text = render_markdown(res, "ditmos bench frontend --fixed RUNS/a --float RUNS/b")
    assert "## (a) The same model" in text and "## (b) Models trained on each" in text
    for kind in ("float", "fixed"):
        for model in ("ditmos", "strong"):
            assert text.count(f"| {kind} features | {model} |") == 2  # val and test


def test_cli_writes_the_tables_and_refuses_mismatched_runs(audio_runs, tmp_path, capsys):
    fixed, flt = audio_runs
    out = tmp_path / "frontend.md"
    code, got = _main(
        ["bench", "frontend", "--fixed", str(fixed), "--float", str(flt), "--samples", "20", "--write", str(out)],
        capsys,
    )
    assert code == 0, got.err
    assert got.out == out.read_text()
    text = out.read_text()
    assert "--samples 20" in text and "| test | 1 (" in text and "| 20 |" in text
    assert str(tmp_path) not in text  # the runs' folder is shown as RUNS

    def refused(args, message):
        code, got = _main(["bench", "frontend", *args], capsys)
        assert code == 2, got
        assert got.err.startswith("ditmos: error: ") and message in got.err, got.err
        assert got.err.count("\n") == 1, got.err

    refused(["--float", str(fixed)], "pass it with --fixed")
    refused([], "give at least one run")
    refused(["--fixed", str(tmp_path / "nothing")], "does not exist")
    other = tmp_path / "other_split"
    shutil.copytree(fixed, other)
    data = dict(np.load(other / "splits.npz"))
    data["test"] = data["test"][:-1]
    np.savez(other / "splits.npz", **data)
    refused(["--fixed", str(fixed), "--fixed", str(other)], "another data split")
