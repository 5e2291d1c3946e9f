"""Training for randomized smoothing: the config, the CLI's checks and the
per-epoch noisy training windows."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.errors import DitmosError
from ditmos.training.config import resolve_config, smoothing_sigma


def test_config_validation():
    cfg = resolve_config("hapt", "quick", overrides={"smoothing": {"method": "gaussian", "sigma": 0.25}})
    assert smoothing_sigma(cfg) == 0.25
    assert smoothing_sigma(resolve_config("hapt", "quick")) == 0.0
    with pytest.raises(DitmosError, match="smoothing.method"):
        resolve_config("hapt", "quick", overrides={"smoothing": {"method": "mixup", "sigma": 1}})
    with pytest.raises(DitmosError, match="smoothing.sigma"):
        resolve_config("hapt", "quick", overrides={"smoothing": {"method": "gaussian"}})
    with pytest.raises(DitmosError, match="unknown key"):
        resolve_config("hapt", "quick", overrides={"smoothing": {"sigmas": 1}})


def test_cli_checks(tmp_path):
    from click.testing import CliRunner

    from ditmos.training.cli import train

    r = CliRunner().invoke(train, ["--dataset", "hapt", "--out", str(tmp_path / "r"), "--sigma", "0.2"])
    assert r.exit_code != 0 and "--sigma only applies" in str(r.exception)
    r = CliRunner().invoke(train, ["--dataset", "hapt", "--out", str(tmp_path / "r"), "--smoothing", "gaussian"])
    assert r.exit_code != 0 and "needs --sigma" in str(r.exception)


def _trainer(tmp_path, smoothing):
    from ditmos.training.config import architecture
    from ditmos.training.progress import Reporter
    from ditmos.training.stages import Trainer

    over = {"smoothing": smoothing} if smoothing else None
    cfg = resolve_config("hapt", "quick", overrides=over)
    rng = np.random.default_rng(0)
    data = {
        "x_train": rng.standard_normal((64, 128, 6), dtype=np.float32),
        "y_train": rng.integers(0, 6, 64),
        "x_val": np.zeros((4, 128, 6), np.float32),
        "y_val": np.zeros(4, np.int64),
        "num_classes": 6,
    }
    return Trainer(cfg, architecture(cfg), data, tmp_path, Reporter(None, quiet=True))


def test_noisy_epochs(tmp_path):
    plain = _trainer(tmp_path, None)
    assert plain.train_inputs("strong", 0) is plain.x_train
    tr = _trainer(tmp_path, {"method": "gaussian", "sigma": 0.5})
    a, b = tr.train_inputs("strong", 0), tr.train_inputs("strong", 1)
    d = (a - tr.x_train).ravel()
    assert a.dtype == np.float32 and abs(d.std() - 0.5) < 0.01 and abs(d.mean()) < 0.01
    assert not np.array_equal(a, b)  # a fresh draw per epoch
    np.testing.assert_array_equal(a, tr.train_inputs("strong", 0))  # reproducible (resume)
