"""`ditmos data list` / `ditmos data info` through the real entry point."""

from __future__ import annotations

import json

import numpy as np

from ditmos.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys):
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("hapt ") and lines[1].startswith("hapt12 ")
    assert lines[2].startswith("hapt_acc151 ") and lines[3].startswith("fsdd ")
    assert any(line.startswith("unimib:PATH") for line in lines)
    assert any(line.startswith("npz:PATH") for line in lines)


def test_info_hapt_json(capsys):
    code, out, err = run(capsys, "data", "info", "hapt", "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    assert d["name"] == "hapt" and d["num_samples"] == 10411 and d["input_shape"] == [128, 6]
    assert d["num_classes"] == 6 and d["subjects"] == 30
    assert {k: v["samples"] for k, v in d["splits"].items()} == {"train": 6634, "val": 1779, "test": 1998}
    assert d["splits"]["test"]["subjects"] == [3, 5, 11, 12, 22, 27]
    assert sum(d["splits"]["train"]["per_class"].values()) == 6634
    assert d["info"]["licence"] == "CC BY 4.0" and d["info"]["windows_made"] == 10411
    assert d["info"]["samples_dropped"]["unlabelled (label -1)"] == 307158


def test_info_fsdd_json_and_seed(capsys):
    _, out0, _ = run(capsys, "data", "info", "fsdd", "--json")
    _, out1, _ = run(capsys, "data", "info", "fsdd", "--json", "--seed", "1")
    d0, d1 = json.loads(out0), json.loads(out1)
    assert d0["input_shape"] == [32, 13] and d0["subjects"] is None
    assert d0["class_counts"] == {str(k): 300 for k in range(10)}
    assert d0["splits"]["test"]["samples"] == d1["splits"]["test"]["samples"] == 600
    assert d1["split_seed"] == 1


def test_info_text(capsys):
    code, out, _ = run(capsys, "data", "info", "hapt")
    assert code == 0
    assert out.startswith("hapt: 10411 windows of shape (128, 6) (float32), 6 classes, 30 subjects")
    assert "licence: CC BY 4.0" in out and "windows made: 10411" in out


def test_info_user_npz(capsys, tmp_path):
    p = tmp_path / "own.npz"
    np.savez(p, X=np.zeros((12, 4, 2)), y=np.arange(12) % 2, split=np.array(["train", "val", "test"] * 4))
    code, out, _ = run(capsys, "data", "info", f"npz:{p}", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["split_rule"].startswith("predefined") and d["splits"]["val"]["samples"] == 4


def test_errors_are_one_line(capsys, tmp_path):
    for args, message in [
        (("data", "info", "nosuch"), "ditmos: error: unknown dataset 'nosuch'; known: hapt, hapt12, hapt_acc151, fsdd"),
        (("data", "info", "unimib"), "ditmos: error: dataset 'unimib' needs a path: unimib:PATH"),
        (("data", "info", "fsdd:/x"), "ditmos: error: dataset 'fsdd' is shipped with ditmos and takes no path"),
        (
            ("data", "info", f"npz:{tmp_path / 'missing.npz'}"),
            f"ditmos: error: {tmp_path / 'missing.npz'}: .npz dataset not found",
        ),
    ]:
        code, out, err = run(capsys, *args)
        assert code == 2 and out == ""
        assert err.startswith(message) and err.count("\n") == 1, err


def test_info_reports_an_impossible_split(capsys, tmp_path):
    p = tmp_path / "two.npz"
    np.savez(p, X=np.zeros((8, 4, 1)), y=np.arange(8) % 2, groups=np.arange(8) % 2)
    code, out, _ = run(capsys, "data", "info", f"npz:{p}")
    assert code == 0 and "impossible: " in out and "2 subject(s) are too few" in out
    code, out, _ = run(capsys, "data", "info", f"npz:{p}", "--json")
    assert "too few" in json.loads(out)["splits"]["error"]
