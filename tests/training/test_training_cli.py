"""`ditmos train` and `ditmos bench train` on the tiny configuration."""

import json

import pytest

from ditmos.cli import main
from ditmos.training.testing import tiny_config


@pytest.fixture()
def tiny_cfg_file(tmp_path):
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(tiny_config()))
    return p


def test_train_command_writes_a_run_and_prints_accuracy(tmp_path, tiny_cfg_file, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "hapt",
                "--preset",
                "quick",
                "--out",
                str(out),
                "--config",
                str(tiny_cfg_file),
                "--seed",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "test accuracy DiTMoS" in printed
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["architecture"]["K"] == 3 and cfg["subset"] == 600
    # running again without --resume refuses to overwrite
    assert (
        main(
            ["train", "--dataset", "hapt", "--out", str(out), "--config", str(tiny_cfg_file), "--seed", "3", "--quiet"]
        )
        == 2
    )
    assert "already holds a training run" in capsys.readouterr().err
    # --resume on a finished run only re-exports and rewrites metrics, identically
    before = json.loads((out / "metrics.json").read_text())
    assert (
        main(
            [
                "train",
                "--dataset",
                "hapt",
                "--out",
                str(out),
                "--config",
                str(tiny_cfg_file),
                "--seed",
                "3",
                "--quiet",
                "--resume",
            ]
        )
        == 0
    )
    after = json.loads((out / "metrics.json").read_text())
    before.pop("timing"), after.pop("timing")
    assert before == after


def test_widths_without_compare_is_an_error(tmp_path, capsys):
    assert main(["train", "--dataset", "hapt", "--out", str(tmp_path / "r"), "--widths", "0.5,1"]) == 2
    assert "--widths only applies together with --compare" in capsys.readouterr().err


def test_bench_train_prints_every_stage(tiny_cfg_file, capsys):
    assert main(["bench", "train", "--config", str(tiny_cfg_file)]) == 0
    out = capsys.readouterr().out
    for stage in (
        "strong",
        "split",
        "classifier_pretrain",
        "selector_pretrain",
        "adversarial",
        "select",
        "export",
        "total (wall)",
        "total (CPU)",
    ):
        assert stage in out, stage


def test_compare_method_filters_are_checked(tmp_path, capsys):
    assert main(["train", "--dataset", "hapt", "--out", str(tmp_path / "r"), "--baselines", "weak_equal_macs"]) == 2
    assert "--baselines only applies together with --compare" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--dataset",
                "hapt",
                "--out",
                str(tmp_path / "r"),
                "--compare",
                "--baselines",
                "weak_equal_macs,strongest",
            ]
        )
        == 2
    )
    assert "--baselines: unknown" in capsys.readouterr().err
    assert main(["train", "--dataset", "hapt", "--out", str(tmp_path / "r"), "--compare", "--search-trials", "2"]) == 2
    assert "--search-trials needs --search" in capsys.readouterr().err
