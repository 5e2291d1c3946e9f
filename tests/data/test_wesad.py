"""WESAD loader on Python-2-style pickles in the published SX/SX.pkl layout."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from datafixtures import Py2Pickler, wesad_subject, write_wesad
from ditmos.data import load_dataset, make_splits
from ditmos.data.wesad import load as load_wesad
from ditmos.errors import DitmosError

# WESAD_SEGMENTS: 5 s label 0, 40 s baseline, 12 s meditation, 30 s stress, 3 s label 0,
# 25 s amusement, 4 s label 6.  10 s windows every 5 s at 32 Hz:
# baseline 40 s -> 7 windows, stress 30 s -> 5, amusement 25 s -> 4.


def test_fixture_needs_latin1(wesad_dir):
    raw = (wesad_dir / "S2" / "S2.pkl").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(raw)
    assert b"numpy.core.multiarray" in raw


def test_wrist_windows(wesad_dir):
    ds = load_dataset(f"wesad:{wesad_dir}")
    assert ds.class_names == ["baseline", "stress", "amusement"]
    assert ds.X.shape == (5 * 16, 320, 6) and ds.X.dtype == np.float32
    assert ds.channel_names == ["wrist_acc_x", "wrist_acc_y", "wrist_acc_z", "wrist_bvp", "wrist_eda", "wrist_temp"]
    assert np.bincount(ds.y).tolist() == [35, 25, 20]
    assert np.unique(ds.groups).tolist() == [2, 3, 4, 5, 6]
    # the fixture's wrist signals sit around 0 (ACC), 10 (BVP), 20 (EDA), 30 (TEMP)
    np.testing.assert_allclose(ds.X.mean(axis=(0, 1)), [0, 0, 0, 10, 20, 30], atol=0.35)
    dropped = ds.info["samples_dropped"]
    n = 5
    assert dropped["label 0 (transient/undefined), 700 Hz samples"] == n * 8 * 700
    assert dropped["label 4 (meditation), 700 Hz samples"] == n * 12 * 700
    assert dropped["label 6 (not to be used), 700 Hz samples"] == n * 4 * 700
    assert ds.info["windows_made"] == 80
    s = make_splits(ds, 0)
    assert not set(ds.groups[s.test]) & set(ds.groups[s.train])


def test_first_baseline_window_is_the_resampled_signal(wesad_dir):
    from scipy.signal import resample_poly

    ds = load_dataset(f"wesad:{wesad_dir}")
    with open(wesad_dir / "S2" / "S2.pkl", "rb") as fh:
        obj = pickle.load(fh, encoding="latin1")
    bvp32 = resample_poly(obj["signal"]["wrist"]["BVP"][:, 0], 1, 2)
    start = 5 * 32  # baseline starts after 5 s of label 0
    np.testing.assert_allclose(ds.X[0, :, 3], bvp32[start : start + 320], rtol=1e-6)
    np.testing.assert_allclose(ds.X[1, :, 0], obj["signal"]["wrist"]["ACC"][start + 160 : start + 480, 0], rtol=1e-6)


def test_chest_signals(wesad_dir):
    ds = load_wesad(wesad_dir, signals="chest", rate=35, window_s=8, hop_s=8)
    assert ds.X.shape[1:] == (280, 8)
    assert ds.info["sampling_rate_hz"] == 35
    # baseline 40 s -> 5, stress 30 s -> 3, amusement 25 s -> 3 windows per subject
    assert np.bincount(ds.y).tolist() == [25, 15, 15]


def test_missing_folder(tmp_path):
    with pytest.raises(DitmosError, match="WESAD folder not found"):
        load_dataset(f"wesad:{tmp_path / 'WESAD'}")


def test_no_subject_folders(tmp_path):
    with pytest.raises(DitmosError, match=r"no subject folders SX/"):
        load_dataset(f"wesad:{tmp_path}")


def test_missing_pickle(wesad_dir):
    (wesad_dir / "S3" / "S3.pkl").unlink()
    with pytest.raises(DitmosError, match=r"S3/S3.pkl: WESAD subject pickle not found"):
        load_dataset(f"wesad:{wesad_dir}")


def test_garbage_pickle(wesad_dir):
    (wesad_dir / "S4" / "S4.pkl").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DitmosError, match=r"S4.pkl: not a readable WESAD pickle"):
        load_dataset(f"wesad:{wesad_dir}")


def test_foreign_objects_are_refused(wesad_dir):
    with open(wesad_dir / "S4" / "S4.pkl", "wb") as fh:
        pickle.dump({"signal": {}, "label": np.zeros(3), "x": Exception("boom")}, fh, protocol=2)
    with pytest.raises(DitmosError, match=r"S4.pkl: not a readable WESAD pickle \(refusing to load"):
        load_dataset(f"wesad:{wesad_dir}")


def test_missing_signal(wesad_dir):
    obj = wesad_subject(5, [(1, 20)])
    del obj["signal"]["wrist"]["EDA"]
    with open(wesad_dir / "S5" / "S5.pkl", "wb") as fh:
        Py2Pickler(fh, protocol=2).dump(obj)
    with pytest.raises(DitmosError, match=r"S5.pkl: missing signal 'EDA' in signal.wrist"):
        load_dataset(f"wesad:{wesad_dir}")


def test_nan_in_signal(wesad_dir):
    obj = wesad_subject(5, [(1, 20)])
    obj["signal"]["wrist"]["TEMP"][7, 0] = np.nan
    with open(wesad_dir / "S5" / "S5.pkl", "wb") as fh:
        Py2Pickler(fh, protocol=2).dump(obj)
    with pytest.raises(DitmosError, match=r"S5.pkl: signal.wrist.TEMP contains NaN or Inf"):
        load_dataset(f"wesad:{wesad_dir}")


def test_signal_duration_mismatch(wesad_dir):
    obj = wesad_subject(5, [(1, 20)])
    obj["signal"]["wrist"]["BVP"] = obj["signal"]["wrist"]["BVP"][:300]
    with open(wesad_dir / "S5" / "S5.pkl", "wb") as fh:
        Py2Pickler(fh, protocol=2).dump(obj)
    with pytest.raises(DitmosError, match=r"signal.wrist.BVP lasts 4.7 s at 64 Hz but the labels last 20.0 s"):
        load_dataset(f"wesad:{wesad_dir}")


def test_empty_class_is_an_error(tmp_path):
    root = write_wesad(tmp_path, {2: [(1, 20), (2, 20)], 3: [(1, 20), (2, 20)]})
    with pytest.raises(DitmosError, match=r"class\(es\) 'amusement' have no samples"):
        load_dataset(f"wesad:{root}")


def test_too_few_subjects_for_split(tmp_path):
    root = write_wesad(tmp_path, {2: [(1, 20), (2, 20), (3, 20)], 3: [(1, 20), (2, 20), (3, 20)]})
    ds = load_dataset(f"wesad:{root}")
    with pytest.raises(DitmosError, match=r"2 subject\(s\) are too few"):
        make_splits(ds, 0)
