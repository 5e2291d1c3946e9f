"""`ditmos quantize --calibration-noise`: the noisy copy of the calibration set."""

import numpy as np

from ditmos.cli import main
from ditmos.quantize.run import noisy_calibration


def test_noisy_calibration_adds_a_seeded_noisy_copy():
    x = np.random.default_rng(0).standard_normal((200, 16, 3)).astype(np.float32)
    assert noisy_calibration(x, 0.0) is x
    a, b = noisy_calibration(x, 0.5), noisy_calibration(x, 0.5)
    assert a.shape == (400, 16, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # seeded: the same int8 model every time
    np.testing.assert_array_equal(a[:200], x)
    assert abs(float(np.std(a[200:] - x)) - 0.5) < 0.01


def test_bad_calibration_noise(tmp_path, capsys):
    assert main(["quantize", str(tmp_path), "--calibration-noise", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--calibration-noise must lie in [0, 10]" in err[0], err
