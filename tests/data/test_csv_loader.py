"""csv:DIR — users' own recordings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ditmos.data import load_dataset, make_splits
from ditmos.errors import DitmosError


def write_csv(path, labels, subject=None, split=None, channels=("ax", "ay"), start=0.0):
    header = (
        list(channels)
        + ["label"]
        + (["subject"] if subject is not None else [])
        + (["split"] if split is not None else [])
    )
    lines = [",".join(header)]
    for i, lab in enumerate(labels):
        row = [f"{start + i + 0.1 * c}" for c in range(len(channels))] + [lab]
        if subject is not None:
            row.append(str(subject))
        if split is not None:
            row.append(split)
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")


def test_windows_runs_and_drop_counts(tmp_path):
    # rec1: 5 unlabelled, 20 walk, 7 sit (too short), 1 walk (too short), 16 sit; rec2: 9 walk, 12 sit
    write_csv(tmp_path / "rec1.csv", [""] * 5 + ["walk"] * 20 + ["sit"] * 7 + ["walk"] * 1 + ["sit"] * 16, subject=1)
    write_csv(tmp_path / "rec2.csv", ["walk"] * 9 + ["sit"] * 12, subject=2, start=1000)
    (tmp_path / "dataset.json").write_text(json.dumps({"window": 8, "hop": 4, "sampling_rate_hz": 25}))
    ds = load_dataset(f"csv:{tmp_path}")
    assert ds.class_names == ["sit", "walk"] and ds.channel_names == ["ax", "ay"]
    # walk 20 -> 4 windows (tail 0), sit 16 -> 3, walk 9 -> 1 (tail 1), sit 12 -> 2 (tail 0)
    assert np.bincount(ds.y).tolist() == [5, 5]
    assert ds.info["windows_made"] == 10
    dropped = ds.info["samples_dropped"]
    assert dropped["unlabelled rows (empty label)"] == 5
    assert dropped["runs shorter than 8 rows (2 runs)"] == 8  # sit 7 + walk 1
    assert dropped["run tails not covered by a full window"] == 1
    assert ds.groups.tolist() == [1] * 7 + [2] * 3
    # first window = rows 5..12 of rec1
    np.testing.assert_allclose(ds.X[0, :, 0], np.arange(5, 13))
    np.testing.assert_allclose(ds.X[1, :, 1], np.arange(9, 17) + 0.1)


def test_empty_class_from_class_names(tmp_path):
    write_csv(tmp_path / "a.csv", ["walk"] * 10 + ["run"] * 3)
    (tmp_path / "dataset.json").write_text(json.dumps({"window": 8, "class_names": ["walk", "run"]}))
    with pytest.raises(DitmosError, match=r"class\(es\) 'run' have no samples"):
        load_dataset(f"csv:{tmp_path}")


def test_split_column_honoured(tmp_path):
    for i, part in enumerate(["train", "val", "test"]):
        write_csv(tmp_path / f"r{i}.csv", ["0"] * 8 + ["1"] * 8, split=part)
    (tmp_path / "dataset.json").write_text(json.dumps({"window": 8}))
    ds = load_dataset(f"csv:{tmp_path}")
    assert ds.class_names == ["0", "1"]
    s = make_splits(ds, 5)
    assert s.train.tolist() == [0, 1] and s.val.tolist() == [2, 3] and s.test.tolist() == [4, 5]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, r"no .csv files in this folder"),
        (lambda d: (d / "a.csv").write_text(""), r"a.csv: file is empty"),
        (lambda d: (d / "a.csv").write_text("ax,ay\n1,2\n"), r"a.csv: no 'label' column"),
        (
            lambda d: (d / "a.csv").write_text("ax,label\n1,x\nfoo,x\n"),
            r"a.csv: line 3, column 'ax': 'foo' is not a number",
        ),
        (lambda d: (d / "a.csv").write_text("ax,label\n1,x\nnan,x\n"), r"a.csv: line 3, column 'ax': NaN or Inf"),
        (lambda d: (d / "a.csv").write_text("ax,label\n1,x,3\n"), r"a.csv: line 2 has 3 fields, the header 2"),
        (lambda d: (d / "a.csv").write_text("ax,label\n" + "1,x\n" * 3), r"no labelled run of at least 128 rows"),
        (lambda d: (d / "a.csv").write_text("ax,label,split\n1,x,dev\n"), r"a.csv: the 'split' column holds \['dev'\]"),
        (lambda d: (d / "dataset.json").write_text("{oops"), r"dataset.json: not valid JSON"),
        (lambda d: (d / "dataset.json").write_text('{"windw": 3}'), r"unknown setting\(s\) \['windw'\]"),
    ],
)
def test_bad_input(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(DitmosError, match=message):
        load_dataset(f"csv:{tmp_path}")


def test_label_outside_class_names(tmp_path):
    write_csv(tmp_path / "a.csv", ["walk"] * 10 + ["swim"] * 10)
    (tmp_path / "dataset.json").write_text(json.dumps({"window": 8, "class_names": ["walk", "run"]}))
    with pytest.raises(DitmosError, match=r"a.csv: label 'swim' is not in class_names"):
        load_dataset(f"csv:{tmp_path}")


def test_channel_mismatch_between_files(tmp_path):
    write_csv(tmp_path / "a.csv", ["x"] * 10)
    write_csv(tmp_path / "b.csv", ["x"] * 10, channels=("ax", "az"))
    (tmp_path / "dataset.json").write_text(json.dumps({"window": 8}))
    with pytest.raises(DitmosError, match=r"b.csv: channel columns \['ax', 'az'\] differ"):
        load_dataset(f"csv:{tmp_path}")
