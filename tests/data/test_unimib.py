"""UniMiB-SHAR loader on .mat files written in the published layout."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from datafixtures import UNIMIB_SHORT, write_unimib
from ditmos.data import load_dataset, make_splits
from ditmos.errors import DitmosError


def test_acc_full_set(unimib_dir):
    ds = load_dataset(f"unimib:{unimib_dir}")
    assert ds.name == "unimib"
    assert ds.X.shape == (6 * 17 * 2, 151, 3) and ds.X.dtype == np.float32
    assert ds.class_names == UNIMIB_SHORT
    assert np.bincount(ds.y).tolist() == [12] * 17
    assert np.unique(ds.groups).tolist() == [1, 2, 3, 4, 5, 6]
    # row i = x | y | z of 151 samples: value i*1000 + axis*200 + t + 0.25*activity
    i = 37
    activity = ds.y[i] + 1
    for axis in range(3):
        np.testing.assert_array_equal(ds.X[i, :, axis], i * 1000 + axis * 200 + np.arange(151) + 0.25 * activity)
    s = make_splits(ds, 0)
    assert not set(ds.groups[s.test]) & set(ds.groups[s.train])


def test_data_folder_and_extraction_folder_are_accepted(unimib_dir):
    assert len(load_dataset(f"unimib:{unimib_dir / 'data'}")) == 204
    assert len(load_dataset(f"unimib:{unimib_dir.parent}")) == 204


@pytest.mark.parametrize(
    "spec, n_classes, names", [("unimib-adl", 9, UNIMIB_SHORT[:9]), ("unimib-fall", 8, UNIMIB_SHORT[9:])]
)
def test_subsets(unimib_dir, spec, n_classes, names):
    ds = load_dataset(f"{spec}:{unimib_dir}")
    assert ds.name == spec and ds.num_classes == n_classes and ds.class_names == names
    assert np.bincount(ds.y).tolist() == [12] * n_classes


def test_fall_labels_numbered_like_acc_labels(tmp_path):
    root = write_unimib(tmp_path, fall_offset=10)
    ds = load_dataset(f"unimib-fall:{root}")
    assert ds.y.min() == 0 and ds.y.max() == 7


def test_names_with_description_row_first(tmp_path):
    root = write_unimib(tmp_path, short_first=False)
    assert load_dataset(f"unimib:{root}").class_names == UNIMIB_SHORT


def test_missing_folder(tmp_path):
    with pytest.raises(DitmosError, match=r"nowhere: UniMiB-SHAR folder not found"):
        load_dataset(f"unimib:{tmp_path / 'nowhere'}")


def test_folder_without_data_files(tmp_path):
    with pytest.raises(DitmosError, match="no acc_data.mat here"):
        load_dataset(f"unimib:{tmp_path}")


def test_missing_labels_file(unimib_dir):
    (unimib_dir / "data" / "acc_labels.mat").unlink()
    with pytest.raises(DitmosError, match=r"acc_labels.mat: MATLAB file not found"):
        load_dataset(f"unimib:{unimib_dir}")


def test_not_a_mat_file(unimib_dir):
    (unimib_dir / "data" / "acc_data.mat").write_bytes(b"this is not matlab" * 20)
    with pytest.raises(DitmosError, match=r"acc_data.mat: not a readable MATLAB .mat file"):
        load_dataset(f"unimib:{unimib_dir}")


def test_wrong_variable(unimib_dir):
    savemat(unimib_dir / "data" / "acc_data.mat", {"data": np.zeros((3, 453))})
    with pytest.raises(DitmosError, match=r"acc_data.mat: has no variable 'acc_data' \(found \['data'\]\)"):
        load_dataset(f"unimib:{unimib_dir}")


def test_wrong_shape(unimib_dir):
    savemat(unimib_dir / "data" / "acc_data.mat", {"acc_data": np.zeros((204, 450))})
    with pytest.raises(DitmosError, match=r"acc_data.mat: acc_data has shape \(204, 450\); expected \[N, 453\]"):
        load_dataset(f"unimib:{unimib_dir}")


def test_row_count_mismatch(unimib_dir):
    savemat(unimib_dir / "data" / "acc_labels.mat", {"acc_labels": np.ones((10, 3))})
    with pytest.raises(DitmosError, match=r"acc_labels.mat: acc_labels has shape \(10, 3\); expected \[204, 3\]"):
        load_dataset(f"unimib:{unimib_dir}")


def test_nan_rows(unimib_dir):
    data = unimib_dir / "data" / "acc_data.mat"
    from scipy.io import loadmat

    rows = loadmat(data)["acc_data"]
    rows[5, 300] = np.nan
    savemat(data, {"acc_data": rows})
    with pytest.raises(DitmosError, match=r"acc_data.mat: 1 row\(s\) contain NaN or Inf \(first: row 6\)"):
        load_dataset(f"unimib:{unimib_dir}")


def test_label_outside_classes(unimib_dir):
    path = unimib_dir / "data" / "acc_labels.mat"
    from scipy.io import loadmat

    labels = loadmat(path)["acc_labels"]
    labels[3, 0] = 18
    savemat(path, {"acc_labels": labels})
    with pytest.raises(DitmosError, match=r"acc_labels.mat: 1 activity label\(s\) outside 1..17 \(e.g. 18\)"):
        load_dataset(f"unimib:{unimib_dir}")


def test_empty_class(unimib_dir):
    path = unimib_dir / "data" / "acc_labels.mat"
    from scipy.io import loadmat

    labels = loadmat(path)["acc_labels"]
    labels[labels[:, 0] == 17, 0] = 16
    savemat(path, {"acc_labels": labels})
    with pytest.raises(DitmosError, match=r"data: class\(es\) 'FallingLeft' have no samples"):
        load_dataset(f"unimib:{unimib_dir}")


def test_wrong_number_of_names(unimib_dir):
    from datafixtures import names_cell

    savemat(unimib_dir / "data" / "acc_names.mat", {"acc_names": names_cell(UNIMIB_SHORT[:5])})
    with pytest.raises(DitmosError, match="acc_names.mat: 5 class names, but the labels need 17"):
        load_dataset(f"unimib:{unimib_dir}")


def test_too_few_subjects_for_split(tmp_path):
    root = write_unimib(tmp_path, subjects=2, per_class=1)
    ds = load_dataset(f"unimib:{root}")
    with pytest.raises(DitmosError, match=r"2 subject\(s\) are too few"):
        make_splits(ds, 0)
