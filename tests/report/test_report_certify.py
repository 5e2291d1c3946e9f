"""`ditmos report` shows the certification files of `ditmos certify`."""

from __future__ import annotations

import json

from ditmos.report.collect import collect
from ditmos.report.render import tables


def test_certify_table(tmp_path):
    (tmp_path / "certify").mkdir()
    summary = {
        "samples": 4,
        "certified_accuracy": {"0": 0.75, "0.5": 0.25},
        "acr": 0.3,
        "abstain_rate": 0.25,
        "smoothed_accuracy": 0.75,
    }
    (tmp_path / "certify" / "int8_sigma0.5.json").write_text(
        json.dumps(
            {"format": "ditmos-certify/1", "kind": "int8", "sigma": 0.5, "n": 1000, "summary": summary, "samples": []}
        )
    )
    (tmp_path / "certify" / "other.json").write_text(json.dumps({"format": "x"}))
    t = [t for t in tables(collect(tmp_path)) if t["title"].startswith("Certified")]
    assert len(t) == 1 and len(t[0]["rows"]) == 1
    row = t[0]["rows"][0]
    assert row[:2] == ["int8_sigma0.5.json", "int8"]
    assert row[5] == "0: 75.0%, 0.5: 25.0%" and row[6] == "0.300" and row[7] == "25.00%"
