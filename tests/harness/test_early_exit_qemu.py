"""The early-exit CNN in QEMU (mps2_an500): the device takes the exit the host
reference takes on every window, says which in INFER_OK, and an inference
that leaves early costs fewer instructions, as its exit's cost predicts.
Then the multi-method report page: that evaluation beside the single CNN's
(host board), one row per method, in headless Chromium."""

from __future__ import annotations

import html as html_mod
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from ditmos.harness.evaluate import evaluate
from ditmos.harness.records import read_samples

N = 60
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def early_exit_eval(tiny_early_exit, tmp_path_factory):
    from ditmos.boards.build import build_firmware

    root = tmp_path_factory.mktemp("ee_qemu")
    build = build_firmware("mps2_an500", tiny_early_exit / "int8", root / "build")
    out = root / "eval"
    rep = evaluate(tiny_early_exit, build, out, emulate=True, jobs=1, limit=N, method="early_exit")
    return out, rep


@pytest.mark.slow
def test_early_exit_on_qemu_takes_the_reference_exits(tiny_early_exit, early_exit_eval):
    out, rep = early_exit_eval
    assert rep["complete"] and rep["samples"] == N
    assert rep["mismatches"] == 0 and rep["route_mismatches"] == 0
    assert rep["score_mismatches"] == 0
    assert rep["meta"]["model_kind"] == "network" and rep["meta"]["method"] == "early_exit"
    recs = list(read_samples(out / "samples.jsonl").values())
    exits = np.array([r["route"] for r in recs])
    last = int(json.loads((tiny_early_exit / "int8" / "manifest.json").read_text())["K"]) - 1
    assert {0, last} <= set(exits.tolist()), "the fixture takes both paths"
    assert rep["routing"]["device"] == rep["routing"]["reference"]
    # per exit, the cost of one window leaving there predicts the others
    from ditmos.harness.device_results import exit_prediction

    pred = exit_prediction(recs, last + 1)
    assert abs(pred["error"]) <= 0.05, pred
    assert pred["per_exit"][0] < 0.9 * pred["per_exit"][last]
    assert pred["measured_mean"] < pred["worst_exit_cost"]


@pytest.mark.slow
def test_adversarial_windows_take_the_reference_exits_on_qemu(tiny_early_exit, early_exit_eval, tmp_path):
    """`ditmos robust attack --build --emulate` on a network run: the device
    classifies every adversarial window with the exit, class and int8 scores
    of the host reference (the exit policy is part of what is attacked)."""
    from ditmos.cli import main

    out, _ = early_exit_eval
    run = tmp_path / "run"
    shutil.copytree(tiny_early_exit, run)
    argv = ["robust", "attack", str(run), "--samples", "4", "--steps", "2", "--restarts", "1", "--queries", "5"]
    assert main([*argv, "--build", str(out.parent / "build"), "--emulate", "--quiet"]) == 0
    dev = json.loads((run / "robust" / "attack.json").read_text())["device"]
    assert dev["windows"] == dev["measured"] == 12 and dev["agree"]
    assert dev["mismatches"] == dev["route_mismatches"] == dev["score_mismatches"] == 0


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs it for CI)")
def test_multi_method_report_page(tiny_compare_networks, early_exit_eval, tmp_path):
    from ditmos.boards.build import build_firmware
    from ditmos.methods import method_run_dir
    from ditmos.quantize import quantize_run
    from ditmos.report.collect import collect
    from ditmos.report.render import write_report

    cnn = method_run_dir(tiny_compare_networks, "weak_equal_macs")
    if not (cnn / "int8" / "manifest.json").is_file():
        quantize_run(tiny_compare_networks, method="weak_equal_macs", calibration_samples=100, quiet=True)
    build = build_firmware("mps2_an500", cnn / "int8", tmp_path / "build")
    rep = evaluate(cnn, build, tmp_path / "cnn", emulate=True, jobs=1, limit=20, method="weak_equal_macs")
    assert rep["mismatches"] == 0 and rep["routing"]["device"] == [20]
    ee_dir, _ = early_exit_eval
    write_report(collect(tiny_compare_networks, [ee_dir, tmp_path / "cnn"]), tmp_path / "rep")
    page = (tmp_path / "rep" / "report.html").read_text()
    probe = """<script>window.addEventListener('load', () => {
      const out = {
        images: [...document.images].map(i => [i.complete, i.naturalWidth]),
        rows: [...document.querySelectorAll('#table-evaluations tbody tr')].map(
            r => [...r.cells].map(c => c.textContent.trim())),
        header: [...document.querySelectorAll('#table-evaluations thead th')].map(
            h => h.textContent.trim())};
      document.body.setAttribute('data-probe', JSON.stringify(out)); });</script></body>"""
    check = tmp_path / "check.html"
    check.write_text(page.replace("</body>", probe))
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'prof'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        check.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"data-probe=\"([^\"]*)\"", proc.stdout)
    assert m, proc.stdout[:2000]
    got = json.loads(html_mod.unescape(m.group(1)))
    assert all(ok and w > 0 for ok, w in got["images"])
    h = got["header"]
    rows = {r[h.index("method")]: r for r in got["rows"]}
    assert set(rows) == {"early-exit CNN", "CNN, equal MACs"}
    for r in rows.values():
        assert r[h.index("mismatches")] == "0" and "instructions" in r[h.index("latency median / p95 / max")]
        assert r[h.index("Pareto front")] in ("yes", "no")
    assert "yes" in {r[h.index("Pareto front")] for r in rows.values()}
    assert rows["CNN, equal MACs"][h.index("routes / exits taken")] == "[20]"
