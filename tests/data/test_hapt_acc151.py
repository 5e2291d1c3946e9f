"""hapt_acc151: hapt's accelerometer windows resampled to 151 samples, fixed test subjects."""

import numpy as np

from ditmos.data import load_dataset, make_splits
from ditmos.data.hapt_acc151 import resample_linear
from ditmos.models.arch import architecture_from_dict, check_fits, default_architecture_dict


def test_resample_linear_is_exact_on_ramps_and_keeps_the_ends():
    t = np.arange(128, dtype=np.float32)
    X = np.stack([t, 3 - 0.5 * t], axis=1)[None]  # [1, 128, 2], two linear ramps
    out = resample_linear(X, 151)
    pos = np.arange(151) * 127 / 150
    np.testing.assert_allclose(out[0, :, 0], pos, atol=1e-4)
    np.testing.assert_allclose(out[0, :, 1], 3 - 0.5 * pos, atol=1e-4)
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 127


def test_hapt_acc151_windows_split_and_preset_fit():
    hapt, ds = load_dataset("hapt"), load_dataset("hapt_acc151")
    assert ds.X.shape == (10411, 151, 3) and ds.channel_names == ["acc_x", "acc_y", "acc_z"]
    assert np.array_equal(ds.y, hapt.y) and np.array_equal(ds.groups, hapt.groups)
    # each window is hapt's accelerometer window, interpolated between neighbouring samples
    i = 4321
    ref = np.stack([np.interp(np.arange(151) * 127 / 150, np.arange(128), hapt.X[i, :, c]) for c in range(3)], axis=1)
    np.testing.assert_allclose(ds.X[i], ref, atol=1e-6)
    # the split is part of the dataset: the same for every seed, subjects 22..30 in test
    for seed in (0, 1):
        s = make_splits(ds, seed)
        subjects = [np.unique(ds.groups[idx]).tolist() for idx in (s.train, s.val, s.test)]
        assert subjects[2] == list(range(22, 31)) and subjects[1] == [7, 14, 21]
        assert subjects[0] == [g for g in range(1, 22) if g not in (7, 14, 21)]
    check_fits(architecture_from_dict(default_architecture_dict("har")), ds.input_shape)
