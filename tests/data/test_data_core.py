"""Dataset validation, splits and normalisation (ditmos.data.core)."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.data import Dataset, Normalizer, Splits, make_splits
from ditmos.errors import DitmosError


def make(n=60, T=8, C=2, classes=3, groups=True, seed=0, **kw):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, C)).astype(np.float32)
    y = np.arange(n) % classes
    g = (np.arange(n) // 5) if groups else None
    return Dataset("toy", X, y, [f"c{k}" for k in range(classes)], groups=g, info={"path": "/data/toy.npz"}, **kw)


def test_dataset_normalises_types_and_defaults():
    ds = make()
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64 and ds.groups.dtype == np.int64
    assert ds.channel_names == ["ch0", "ch1"] and ds.input_shape == (8, 2) and len(ds) == 60


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(X=np.zeros((4, 8))), r"/data/toy.npz: windows must have shape \[N, T, C\]"),
        (dict(X=np.zeros((0, 8, 2))), "windows array is empty"),
        (dict(y=np.array([0, 1, 2, 3])), r"1 label\(s\) outside the 3 classes"),
        (dict(y=np.array([0, -1, 1, 2])), "outside the 3 classes"),
        (dict(y=np.array([0, 1, 1, 0])), r"class\(es\) 'c2' have no samples"),
        (dict(y=np.array([0, 1, 2])), r"labels must have shape \(4,\)"),
        (dict(y=np.array([0.5, 1, 2, 0])), "labels must be integers"),
        (dict(groups=np.array([1, 2])), r"groups must have shape \(4,\)"),
        (dict(split=np.array(["train", "val", "test", "dev"])), r"found \['dev'\]"),
        (dict(class_names=["a", "a", "b"]), "class names are not unique"),
        (dict(channel_names=["x"]), "1 channel names for 2 channels"),
    ],
)
def test_dataset_rejects_bad_input(change, message):
    args = dict(
        name="toy",
        X=np.zeros((4, 8, 2)),
        y=np.array([0, 1, 2, 0]),
        class_names=["c0", "c1", "c2"],
        info={"path": "/data/toy.npz"},
    )
    args.update(change)
    with pytest.raises(DitmosError, match=message):
        Dataset(**args)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_dataset_rejects_nan_and_inf_naming_the_window(bad):
    X = np.zeros((5, 4, 1))
    X[3, 2, 0] = bad
    with pytest.raises(DitmosError, match=r"/data/x: 1 window\(s\) contain NaN or Inf \(first: window 3\)"):
        Dataset("x", X, np.array([0, 1, 0, 1, 0]), ["a", "b"], info={"path": "/data/x"})


def test_group_split_is_subject_disjoint_deterministic_and_complete():
    ds = make(n=200, groups=True)  # 40 subjects
    a, b, c = make_splits(ds, 3), make_splits(ds, 3), make_splits(ds, 4)
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.test, c.test)
    subj = {name: set(ds.groups[getattr(a, name)].tolist()) for name in ("train", "val", "test")}
    assert not (subj["train"] & subj["val"] or subj["train"] & subj["test"] or subj["val"] & subj["test"])
    assert (len(subj["test"]), len(subj["val"]), len(subj["train"])) == (8, 6, 26)
    allidx = np.concatenate([a.train, a.val, a.test])
    assert np.array_equal(np.sort(allidx), np.arange(200))
    assert all(getattr(a, n).dtype == np.int64 for n in ("train", "val", "test"))


def test_group_split_keeps_every_class_in_train():
    # class 2 only occurs in subjects 0 and 1: most permutations put one of them in val/test
    X = np.zeros((80, 4, 1))
    groups = np.repeat(np.arange(8), 10)
    y = np.where(groups < 2, 2, np.arange(80) % 2)
    ds = Dataset("t", X, y, ["a", "b", "c"], groups=groups)
    for seed in range(10):
        s = make_splits(ds, seed)
        assert 2 in ds.y[s.train]


def test_group_split_too_few_subjects():
    ds = Dataset(
        "t",
        np.zeros((6, 4, 1)),
        np.array([0, 1] * 3),
        ["a", "b"],
        groups=np.array([1, 1, 2, 2, 1, 2]),
        info={"path": "/d/t.npz"},
    )
    with pytest.raises(DitmosError, match=r"/d/t.npz: 2 subject\(s\) are too few .*\(need at least 3\)"):
        make_splits(ds, 0)


def test_group_split_impossible_class_coverage():
    groups = np.repeat(np.arange(6), 4)
    y = groups.copy()  # every subject has its own class
    ds = Dataset("t", np.zeros((24, 4, 1)), y, list("abcdef"), groups=groups)
    with pytest.raises(DitmosError, match="holds every class"):
        make_splits(ds, 0)


def test_stratified_split_without_groups():
    ds = make(n=300, classes=3, groups=False)
    s = make_splits(ds, 0)
    assert s.sizes() == {"train": 195, "val": 45, "test": 60}
    for k in range(3):
        assert np.sum(ds.y[s.test] == k) == 20 and np.sum(ds.y[s.val] == k) == 15
    assert np.array_equal(make_splits(ds, 0).val, s.val)
    assert not set(s.train) & set(s.test)


def test_stratified_split_too_few_samples():
    ds = Dataset("t", np.zeros((5, 4, 1)), np.array([0, 0, 0, 1, 1]), ["a", "b"], info={"path": "/d/few.npz"})
    with pytest.raises(DitmosError, match=r"/d/few.npz: class 'b' has 2 sample\(s\)"):
        make_splits(ds, 0)


def test_predefined_split_is_honoured_exactly():
    split = np.array(["test", "train", "val", "train", "train", "test", "val", "train", "train"])
    ds = Dataset(
        "t", np.zeros((9, 4, 1)), np.array([0, 1, 0, 1, 0, 1, 0, 1, 0]), ["a", "b"], groups=np.arange(9), split=split
    )
    for seed in (0, 1, 7):
        s = make_splits(ds, seed)
        assert s.train.tolist() == [1, 3, 4, 7, 8]
        assert s.val.tolist() == [2, 6] and s.test.tolist() == [0, 5]


def test_predefined_split_without_val_is_an_error():
    ds = Dataset(
        "t",
        np.zeros((4, 4, 1)),
        np.array([0, 1, 0, 1]),
        ["a", "b"],
        split=np.array(["train", "train", "test", "test"]),
        info={"path": "/d/s.npz"},
    )
    with pytest.raises(DitmosError, match="/d/s.npz: the predefined split has no 'val' samples"):
        make_splits(ds, 0)


def test_splits_save_load_roundtrip(tmp_path):
    s = make_splits(make(), 0)
    s.save(tmp_path / "splits.npz")
    t = Splits.load(tmp_path / "splits.npz")
    assert all(np.array_equal(getattr(s, n), getattr(t, n)) for n in ("train", "val", "test"))
    with pytest.raises(DitmosError, match="splits file not found"):
        Splits.load(tmp_path / "missing.npz")


def test_normalizer_uses_only_what_it_is_given():
    rng = np.random.default_rng(1)
    X = rng.normal([1.0, -2.0, 100.0], [0.5, 3.0, 1e-12], size=(50, 10, 3)).astype(np.float32)
    X[:, :, 2] = 7.0  # a constant channel
    norm = Normalizer.fit(X)
    np.testing.assert_allclose(norm.mean, X.reshape(-1, 3).mean(axis=0), rtol=1e-5)
    assert norm.std[2] == 1.0
    Z = norm.apply(X)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z[:, :, :2].reshape(-1, 2).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Z[:, :, :2].reshape(-1, 2).std(axis=0), 1, rtol=1e-4)
    back = Normalizer.from_dict(norm.to_dict())
    assert np.array_equal(back.mean, norm.mean) and np.array_equal(back.std, norm.std)


def test_normalizer_errors(tmp_path):
    with pytest.raises(DitmosError, match="needs windows"):
        Normalizer.fit(np.zeros((0, 3, 2)))
    with pytest.raises(DitmosError, match="data has 3 channels, the normalisation 2"):
        Normalizer([0, 0], [1, 1]).apply(np.zeros((1, 4, 3)))
    with pytest.raises(DitmosError, match="'mean' and 'std'"):
        Normalizer.from_dict({"mean": [0.0]})
    p = tmp_path / "normalization.json"
    p.write_text("{not json")
    with pytest.raises(DitmosError, match="normalization.json: not valid JSON"):
        Normalizer.load(p)


def test_canonical_spec(tmp_path, monkeypatch):
    from ditmos.data import canonical_spec

    monkeypatch.chdir(tmp_path)
    assert canonical_spec("hapt") == "hapt"
    assert canonical_spec("npz:data/x.npz") == f"npz:{tmp_path / 'data' / 'x.npz'}"
    with pytest.raises(DitmosError, match="unknown dataset 'hapz'"):
        canonical_spec("hapz")
