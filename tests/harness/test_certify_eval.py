"""`ditmos evaluate --certify` on the host-board firmware: the device's vote counts
equal the host integer simulation, the records resume, the report holds the certificate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ditmos.cli import main
from ditmos.smoothing import certify as CT


@pytest.fixture(scope="module")
def host_fw(tiny_int8, tmp_path_factory):
    from ditmos.boards.build import build_firmware

    return build_firmware("host", tiny_int8, tmp_path_factory.mktemp("cert_host"))


def _run(tiny_run, host_fw, out, *extra):
    return main(
        [
            "evaluate",
            "--certify",
            "--sigma",
            "0.5",
            "--n0",
            "8",
            "--n",
            "30",
            "--run",
            str(tiny_run),
            "--build",
            str(host_fw),
            "--emulate",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


def test_certify_on_host_device_equals_host_and_resumes(tiny_run, host_fw, tmp_path, capsys):
    out = tmp_path / "ev"
    assert _run(tiny_run, host_fw, out, "--limit", "2") == 0
    assert "vote counts equal to the host integer reference: 2 of 2" in capsys.readouterr().out
    # the same directory again without --resume: refused, nothing lost
    assert _run(tiny_run, host_fw, out, "--limit", "3") == 2
    assert "--resume" in capsys.readouterr().err
    # other settings with --resume: refused
    assert _run(tiny_run, host_fw, out, "--limit", "3", "--resume", "--seed", "1") == 2
    assert _run(tiny_run, host_fw, out, "--limit", "3", "--resume") == 0
    lines = (out / "certify.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [r["index"] for r in recs] == [0, 1, 2]  # two kept, one measured
    rep = json.loads((out / "certify_report.json").read_text())
    assert rep["complete"] and rep["mismatches"] == 0 and rep["samples_measured"] == 3
    for r in recs:
        assert r["match"] and r["counts"] == r["reference_counts"]
        assert sum(r["counts0"]) == 8 and sum(r["counts"]) == 30
        cert = CT.certify_counts(np.array(r["counts0"]), np.array(r["counts"]), 0.5, 0.001, rep["slack"])
        assert (cert.prediction, cert.radius) == (r["prediction"], r["radius"])
    s = CT.summarize(
        np.array([r["prediction"] for r in recs]),
        np.array([r["radius"] for r in recs]),
        np.array([r["label"] for r in recs]),
        CT.default_radii(0.5),
    )
    assert rep["summary"] == s


def test_certify_needs_sigma(tiny_run, host_fw, tmp_path, capsys):
    rc = main(
        [
            "evaluate",
            "--certify",
            "--run",
            str(tiny_run),
            "--build",
            str(host_fw),
            "--emulate",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 2 and "--sigma" in capsys.readouterr().err
