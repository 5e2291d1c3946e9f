"""End to end, as in CI: quick preset on hapt -> quantise -> build mps2_an500 (profiling) ->
`ditmos evaluate --emulate` -> every on-device prediction equals the host TFLM
reference over the whole test split; then `ditmos report` draws the page, and
`ditmos evaluate --certify` on the same firmware returns vote counts equal to the
host's integer smoothing (a small n, two windows)."""

import json
import time

import pytest

from ditmos.cli import main


@pytest.mark.slow
def test_hapt_quick_on_qemu_equals_the_host_reference(tmp_path):
    from ditmos.boards.build import build_firmware
    from ditmos.quantize import quantize_run
    from ditmos.training import train_run
    from ditmos.training.rundir import load_run_data

    times = {}
    t = time.monotonic()
    run = train_run("hapt", "quick", tmp_path / "run", quiet=True)
    times["train"] = time.monotonic() - t
    t = time.monotonic()
    int8 = quantize_run(run, quiet=True)
    times["quantize"] = time.monotonic() - t
    t = time.monotonic()
    build = build_firmware("mps2_an500", int8, tmp_path / "build", profile=True)
    times["build"] = time.monotonic() - t
    t = time.monotonic()
    ev = tmp_path / "eval"
    rc = main(
        ["evaluate", "--run", str(run), "--build", str(build), "--out", str(ev), "--emulate", "--jobs", "2", "--quiet"]
    )
    times["evaluate"] = time.monotonic() - t
    rep = json.loads((ev / "report.json").read_text())
    n_test = len(load_run_data(run).y_test)
    assert rep["complete"] and rep["samples"] == n_test
    assert rep["mismatches"] == 0, rep["mismatch_list"][:20]
    assert rep["route_mismatches"] == 0 and rep["score_mismatches"] == 0
    assert rc == 0
    assert rep["latency"]["unit"] == "instructions" and rep["latency"]["median"] > 0
    assert rep["memory"]["flash"] > 0 and rep["memory"]["stack_high_water"] > 0
    layers = rep["per_layer_latency"]["layers"]
    progs = {lay["program"] for lay in layers}
    assert "selector" in progs and any(p.startswith("classifier_") for p in progs)
    assert all(lay["median"] > 0 and "(" in lay["name"] for lay in layers)
    # each sample's layers add up to (almost all of) its whole-inference count
    recs = [json.loads(s) for s in (ev / "samples.jsonl").read_text().splitlines()]
    for r in recs[:50]:
        assert 0.9 * r["cost"] <= sum(r["layer_cost"]) <= r["cost"]
    metrics = json.loads((run / "metrics.json").read_text())
    if metrics.get("test", {}).get("int8", {}).get("ditmos") is not None:
        assert rep["accuracy"] == pytest.approx(metrics["test"]["int8"]["ditmos"])
    t = time.monotonic()
    rc = main(["report", str(run), "--eval", str(ev), "--out", str(tmp_path / "report")])
    times["report"] = time.monotonic() - t
    assert rc == 0
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5
    t = time.monotonic()
    cev = tmp_path / "certify"
    rc = main(
        [
            "evaluate",
            "--certify",
            "--sigma",
            "0.25",
            "--n0",
            "8",
            "--n",
            "40",
            "--limit",
            "2",
            "--run",
            str(run),
            "--build",
            str(build),
            "--out",
            str(cev),
            "--emulate",
            "--quiet",
        ]
    )
    times["certify"] = time.monotonic() - t
    assert rc == 0
    crep = json.loads((cev / "certify_report.json").read_text())
    assert crep["complete"] and crep["samples_measured"] == 2 and crep["mismatches"] == 0
    for line in (cev / "certify.jsonl").read_text().splitlines():
        r = json.loads(line)
        assert r["match"] and r["counts"] == r["reference_counts"] and sum(r["counts"]) == 40
    lat = crep["latency"]
    assert lat["unit"] == "instructions" and lat["inferences_per_prediction"] == 48
    # 48 noisy inferences cost at least 48 plain ones
    assert lat["mean_per_certified_prediction"] > 48 * rep["latency"]["median"]
    print("end-to-end stage seconds:", {k: round(v, 1) for k, v in times.items()})
