"""npz:FILE — users' own windows."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.data import load_dataset, make_splits
from ditmos.errors import DitmosError


def write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_minimal_file(tmp_path):
    p = write(tmp_path / "mine.npz", X=np.ones((9, 5, 2), np.float64), y=np.arange(9) % 3)
    ds = load_dataset(f"npz:{p}")
    assert ds.name == "npz:mine.npz" and ds.X.dtype == np.float32 and ds.class_names == ["0", "1", "2"]
    assert ds.groups is None and ds.split is None


def test_full_file_with_split_honoured_exactly(tmp_path):
    split = np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    p = write(
        tmp_path / "full.npz",
        X=np.random.default_rng(0).standard_normal((10, 4, 3)),
        y=np.array([0, 1] * 5),
        class_names=np.array(["rest", "move"]),
        groups=np.arange(10) // 2,
        split=split[::-1],
        channel_names=np.array(["a", "b", "c"]),
        notes=np.zeros(2),
    )
    ds = load_dataset(f"npz:{p}")
    assert ds.class_names == ["rest", "move"] and ds.channel_names == ["a", "b", "c"]
    assert ds.info["ignored_arrays"] == ["notes"]
    s = make_splits(ds, 123)
    assert s.test.tolist() == [0, 1] and s.val.tolist() == [2, 3] and s.train.tolist() == [4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(y=np.zeros(3)), r"has no array 'X'"),
        (dict(X=np.zeros((3, 4, 1))), r"has no array 'y'"),
        (dict(X=np.zeros((3, 4)), y=np.zeros(3, int)), r"windows must have shape \[N, T, C\], got shape \(3, 4\)"),
        (dict(X=np.full((2, 4, 1), np.nan), y=np.array([0, 1])), r"2 window\(s\) contain NaN or Inf"),
        (
            dict(X=np.zeros((3, 4, 1)), y=np.array([0, 1, 2]), class_names=np.array(["a", "b"])),
            r"1 label\(s\) outside the 2 classes",
        ),
        (dict(X=np.zeros((3, 4, 1)), y=np.array([0, 0, 2])), r"class\(es\) '1' have no samples"),
        (
            dict(X=np.zeros((3, 4, 1)), y=np.array([0, 1, 0]), split=np.array(["train", "test", "other"])),
            r"split values must be 'train', 'val' or 'test', found \['other'\]",
        ),
        (dict(X=np.zeros((3, 4, 1)), y=np.array([0, 1, 0]), groups=np.array([1, 2])), r"groups must have shape \(3,\)"),
    ],
)
def test_bad_files(tmp_path, arrays, message):
    p = write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DitmosError, match=f"bad.npz: {message}" if "has no" in message else message):
        load_dataset(f"npz:{p}")


def test_object_arrays_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, X=np.zeros((2, 3, 1)), y=np.array([0, 1]), class_names=np.array(["a", None], dtype=object))
    with pytest.raises(DitmosError, match=r"obj.npz: stores Python objects"):
        load_dataset(f"npz:{p}")


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(DitmosError, match=r"nope.npz: .npz dataset not found"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")
    (tmp_path / "junk.npz").write_text("hello")
    with pytest.raises(DitmosError, match=r"junk.npz: not a readable .npz file"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    with pytest.raises(DitmosError, match=r"expected the .npz dataset file, found a folder"):
        load_dataset(f"npz:{tmp_path}")


def test_single_npy_array(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((2, 3, 1)))
    with pytest.raises(DitmosError, match=r"X.npy: is a single .npy array"):
        load_dataset(f"npz:{tmp_path / 'X.npy'}")
