"""`ditmos report`: figures from the artefacts that exist, a page that renders in Chromium."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from ditmos.harness.evaluate import DeviceSpec, RunFacts, Workload, run_evaluation
from ditmos.report.cli import report as report_cmd
from ditmos.report.collect import collect
from ditmos.report.render import write_report

from tests.harness.pydevice import PyDevice, toy_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _metrics(n_cls=4, k=3):
    conf = (np.eye(n_cls, dtype=int) * 9 + 1).tolist()
    return {"format": "ditmos-metrics/1", "dataset": "toy", "class_names": list("abcd"),
            "test": {"float": {"ditmos": 0.81, "union": 0.97, "classifiers": [0.4, 0.5, 0.3],
                               "baselines": {"strong": 0.85, "ensemble_average": 0.7},
                               "routing_histogram": [10, 20, 5][:k],
                               "confusion_matrix": conf}},
            "model": {"params": 40000, "macs": 220000, "flash_weight_bytes": 45000}}


def _compare(run_rel):
    methods = {"ditmos": {"test_accuracy": 0.81, "union_test_accuracy": 0.97, "macs": 220000,
                          "flash_bytes": 45000, "params": 40000},
               "ablation_no_adversarial": {"test_accuracy": 0.78, "macs": 220000,
                                           "flash_bytes": 45000, "params": 40000},
               "weak_equal_macs": {"test_accuracy": 0.79, "macs": 215000, "flash_bytes": 9000,
                                   "params": 8000},
               "strong": {"test_accuracy": 0.85, "macs": 2_000_000, "flash_bytes": 120000,
                          "params": 117000}}
    return {"format": "ditmos-compare/1", "results": {"w1": {"width": 1, "run_dir": run_rel,
                                                              "methods": methods}}}


def _codegen():
    tensors = [{"name": f"t{i}", "bytes": 64 * (1 + i % 3), "group": None if i < 3 else f"c{i % 2}",
                "offset": 64 * (i % 4), "first": i, "last": i + 1} for i in range(7)]
    return {"format": "ditmos-codegen/1", "strategy": "slicing", "arena_bytes": 512,
            "tensors": tensors}


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    run = root / "cmp" / "width_1" / "ditmos"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(_metrics()))
    (root / "cmp" / "compare.json").write_text(json.dumps(_compare("width_1/ditmos")))
    build = root / "build"
    (build / "src").mkdir(parents=True)
    (build / "manifest.json").write_text(json.dumps({"board": "pydevice", "model_hash": "0" * 64}))
    (build / "src" / "manifest.json").write_text(json.dumps(_codegen()))
    # a real evaluation through the protocol (peer device) to feed the page
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(30, 4, 3), dtype=np.int8)
    res = [toy_model(x[i].tobytes()) for i in range(30)]
    w = Workload(inputs=x, labels=rng.integers(0, 4, 30),
                 ref_pred=np.array([r.predicted for r in res]),
                 ref_route=np.array([r.route for r in res]),
                 ref_scores=np.array([r.scores for r in res], dtype=np.int8),
                 model_hash="0123456789abcdef" + "0" * 48, num_classes=4, num_classifiers=3,
                 class_names=list("abcd"), facts=RunFacts(accuracy_float=0.81))
    ev = root / "eval"
    with PyDevice() as d:
        run_evaluation(w, [DeviceSpec(d.path)], ev, timeout=0.5, meta={"build_dir": str(build)})
    return run, ev, build


def test_report_has_every_figure_when_everything_exists(artefacts, tmp_path):
    run, ev, _ = artefacts
    res = write_report(collect(run, [ev]), tmp_path)
    assert set(res["figures"]) == {"accuracy_vs_cost", "memory_plan", "routing", "confusion"}
    assert "per_layer_latency" in res["not_shown"]  # no profiling in this firmware
    assert "profiling" in res["not_shown"]["per_layer_latency"]
    md = (tmp_path / "report.md").read_text()
    assert "abl.: no adversarial" in md and "CNN, equal MACs" in md
    assert "| eval | pydevice | 30/30 |" in md
    for key in res["figures"]:
        png = (tmp_path / "figures" / f"{key}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_says_what_is_missing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(_metrics()))
    out = tmp_path / "out"
    r = CliRunner().invoke(report_cmd, [str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "missing: ablations" in r.output and "missing: on-device results" in r.output
    assert "not shown: memory_plan" in r.output
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # accuracy bars, routing, confusion


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh "
                    "installs it for CI)")
def test_page_renders_in_headless_chromium_and_images_load(artefacts, tmp_path):
    run, ev, _ = artefacts
    write_report(collect(run, [ev]), tmp_path)
    page = (tmp_path / "report.html").read_text()
    probe = ("<script>window.addEventListener('load', () => { const r = [...document.images]"
             ".map(i => i.complete + ':' + i.naturalWidth + 'x' + i.naturalHeight);"
             "document.body.setAttribute('data-images', r.join(',')); });</script></body>")
    check = tmp_path / "check.html"
    check.write_text(page.replace("</body>", probe))
    prof = tmp_path / "profile"
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={prof}",
              "--virtual-time-budget=5000"]
    out = subprocess.run(common + ["--dump-dom", check.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r'data-images="([^"]*)"', out.stdout)
    assert m, out.stdout[:2000]
    imgs = m.group(1).split(",")
    assert len(imgs) == 4
    for s in imgs:
        complete, size = s.split(":")
        w, h = map(int, size.split("x"))
        assert complete == "true" and w > 100 and h > 100, imgs
    shot = tmp_path / "shot.png"
    out = subprocess.run(common + [f"--screenshot={shot}", "--window-size=1200,2400",
                                   (tmp_path / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and shot.stat().st_size > 10_000, out.stderr[-2000:]
    import matplotlib.image as mpimg

    pix = mpimg.imread(shot)
    assert pix.std() > 0.05  # not a blank page
