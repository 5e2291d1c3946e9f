"""`ditmos report`: it finds the comparison `--compare` wrote, shows every method
at every width, draws readable figures and renders in Chromium."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from ditmos.harness.evaluate import DeviceSpec, RunFacts, Workload, run_evaluation
from ditmos.report.cli import report as report_cmd
from ditmos.report.collect import collect, dataset_short_name, find_comparison, label
from ditmos.report.plots import pareto_front
from ditmos.report.render import tables, write_report
from tests.harness.pydevice import PyDevice, toy_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTHS = (0.25, 1.0)


def _metrics(n_cls=4, k=3, dataset="npz:/home/someone/data/walking.npz"):
    conf = (np.eye(n_cls, dtype=int) * 9 + 1).tolist()
    return {
        "format": "ditmos-metrics/1",
        "dataset": dataset,
        "class_names": list("abcd"),
        "test": {
            "float": {
                "ditmos": 0.81,
                "union": 0.97,
                "classifiers": [0.4, 0.5, 0.3],
                "baselines": {"strong": 0.85, "ensemble_average": 0.7},
                "routing_histogram": [10, 20, 5][:k],
                "confusion_matrix": conf,
            }
        },
        "model": {"params": 40000, "macs": 220000, "flash_weight_bytes": 45000},
    }


def _methods(w, seeds=None):
    s = w * w
    methods = {
        "ditmos": {
            "test_accuracy": 0.7 + 0.1 * w,
            "union_test_accuracy": 0.97,
            "macs": int(220000 * s),
            "flash_bytes": int(45000 * s),
            "params": int(40000 * s),
        },
        "weak_equal_macs": {
            "test_accuracy": 0.69 + 0.1 * w,
            "macs": int(215000 * s),
            "flash_bytes": int(9000 * s),
            "params": int(8000 * s),
        },
        "strong": {"test_accuracy": 0.85, "macs": 2_000_000, "flash_bytes": 120000, "params": 117000},
    }
    if w == max(WIDTHS):
        methods["ablation_no_adversarial"] = {
            "test_accuracy": 0.78,
            "macs": 220000,
            "flash_bytes": 45000,
            "params": 40000,
        }
    if seeds:
        for i, r in enumerate(methods.values()):
            r.update(test_acc_mean=r["test_accuracy"] - 0.01, test_acc_std=0.001 * (i + 1), seeds=list(seeds))
    return methods


def _compare(run_rel, seeds=None):
    """compare.json as `ditmos train --compare` writes it (two widths)."""
    return {
        "format": "ditmos-compare/1",
        "dataset": "npz:/home/someone/data/walking.npz",
        "preset": "quick",
        "seed": 0,
        "widths": list(WIDTHS),
        "results": {f"{w:g}": {"width": w, "run_dir": run_rel(w), "methods": _methods(w, seeds)} for w in WIDTHS},
    }


def _codegen():
    tensors = [
        {
            "name": f"t{i}",
            "bytes": 64 * (1 + i % 3),
            "group": None if i < 3 else f"c{i % 2}",
            "offset": 64 * (i % 4),
            "first": i,
            "last": i + 1,
        }
        for i in range(7)
    ]
    return {"format": "ditmos-codegen/1", "strategy": "slicing", "arena_bytes": 512, "tensors": tensors}


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture(scope="module")
def device_artefacts(tmp_path_factory):
    """A real evaluation through the protocol (Python peer device) and a build
    directory with a codegen manifest, to feed the device figures."""
    root = tmp_path_factory.mktemp("dev")
    build = root / "build"
    _write(build / "manifest.json", {"board": "pydevice", "model_hash": "0" * 64})
    _write(build / "model" / "manifest.json", _codegen())
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(30, 4, 3), dtype=np.int8)
    res = [toy_model(x[i].tobytes()) for i in range(30)]
    w = Workload(
        inputs=x,
        labels=rng.integers(0, 4, 30),
        ref_pred=np.array([r.predicted for r in res]),
        ref_route=np.array([r.route for r in res]),
        ref_scores=np.array([r.scores for r in res], dtype=np.int8),
        model_hash="0123456789abcdef" + "0" * 48,
        num_classes=4,
        num_classifiers=3,
        class_names=list("abcd"),
        facts=RunFacts(accuracy_float=0.81),
    )
    ev = root / "eval"
    with PyDevice() as d:
        run_evaluation(w, [DeviceSpec(d.path)], ev, timeout=0.5, meta={"build_dir": str(build)})
    return ev, build


@pytest.fixture
def run_with_compare(tmp_path):
    """RUN/ with RUN/compare/compare.json: the layout `ditmos train --out RUN --compare` makes."""
    run = tmp_path / "run"
    _write(run / "metrics.json", _metrics())
    _write(run / "config.json", {"dataset": _metrics()["dataset"], "preset": "quick", "seed": 0, "width": 1.0})
    _write(run / "compare" / "compare.json", _compare(lambda w: ".." if w == 1 else f"width_{w:g}/ditmos"))
    return run


def _table_rows(md: str) -> dict:
    """Methods table of report.md: (label, width) -> cells."""
    rows = {}
    block = md.split("## DiTMoS, ablations and baselines", 1)[1].split("\n## ", 1)[0]
    for line in block.splitlines():
        if line.startswith("| ") and not line.startswith("| method"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[(cells[0], cells[1])] = cells
    return rows


# --------------------------------------------------------------------------- #
# Finding the comparison
# --------------------------------------------------------------------------- #


def test_report_finds_the_comparison_that_compare_wrote(run_with_compare, tmp_path):
    run = run_with_compare
    assert find_comparison(run)[0] == run / "compare" / "compare.json"
    data = collect(run)
    assert data.comparison_path == run / "compare" / "compare.json"
    assert data.widths == list(WIDTHS)
    assert not any("comparison" in m or "ablations" in m for m in data.missing), data.missing
    got = {(m.name, m.width): m for m in data.methods}
    for w in WIDTHS:
        for name, r in _methods(w).items():
            m = got[(name, w)]
            assert (m.accuracy, m.macs, m.flash_bytes, m.params) == (
                r["test_accuracy"],
                r["macs"],
                r["flash_bytes"],
                r["params"],
            )
        assert got[("union", w)].accuracy == 0.97
    # the comparison directory itself: same methods, run-level figures from
    # the run at the largest width (RUN)
    via_dir = collect(run / "compare")
    assert via_dir.run_dir.resolve() == run.resolve()
    assert [(m.name, m.width, m.accuracy) for m in via_dir.methods] == [
        (m.name, m.width, m.accuracy) for m in data.methods
    ]
    assert via_dir.metrics is not None


def test_comparison_one_or_two_folders_up_only_when_it_holds_the_run(tmp_path):
    out = tmp_path / "cmp"
    run = out / "width_1" / "ditmos"
    _write(run / "metrics.json", _metrics())
    _write(out / "compare.json", _compare(lambda w: f"width_{w:g}/ditmos"))
    assert find_comparison(run)[0] == out / "compare.json"
    other = out / "width_1" / "elsewhere"
    _write(other / "metrics.json", _metrics())
    assert find_comparison(other) is None
    data = collect(other)
    assert any(m.startswith("comparison") for m in data.missing)


def test_seed_aggregates_are_shown_as_mean_and_std(run_with_compare, tmp_path):
    run = run_with_compare
    _write(
        run / "compare" / "compare.json", _compare(lambda w: ".." if w == 1 else f"width_{w:g}/ditmos", seeds=(0, 1, 2))
    )
    table = tables(collect(run))[0]
    assert "mean ± std over 3 seeds" in " ".join(table["header"])
    rows = {(r[0], r[1]): r for r in table["rows"]}
    # ditmos is the first method: mean = single value - 0.01, std 0.001
    assert rows[("DiTMoS", "0.25")][2] == f"{100 * (0.7 + 0.025 - 0.01):.2f} ± 0.10"
    assert rows[("strong model", "1")][2] == f"{100 * (0.85 - 0.01):.2f} ± 0.30"
    # without aggregates: the single value, no ±
    _write(run / "compare" / "compare.json", _compare(lambda w: ".." if w == 1 else f"width_{w:g}/ditmos"))
    rows = {(r[0], r[1]): r for r in tables(collect(run))[0]["rows"]}
    assert rows[("DiTMoS", "0.25")][2] == f"{100 * 0.725:.2f}"


def test_title_is_the_dataset_short_name_never_a_path(run_with_compare):
    assert dataset_short_name("npz:/home/someone/data/walking.npz") == "walking"
    assert dataset_short_name("csv:/data/my_sensor/") == "my_sensor"
    assert dataset_short_name("unimib-adl:/data/UniMiB-SHAR") == "unimib-adl"
    assert dataset_short_name("hapt") == "hapt"
    assert collect(run_with_compare).title == "walking: DiTMoS report"


def test_pareto_front():
    pts = [(1, 50), (2, 60), (2, 55), (3, 58), (4, 70), (0.5, 40), (4, 70), (5, 70)]
    assert pareto_front(pts) == [5, 0, 1, 4, 6]


# --------------------------------------------------------------------------- #
# Whole pages
# --------------------------------------------------------------------------- #


def test_report_has_every_figure_when_everything_exists(run_with_compare, device_artefacts, tmp_path):
    ev, _ = device_artefacts
    res = write_report(collect(run_with_compare, [ev]), tmp_path)
    assert set(res["figures"]) == {"accuracy_vs_macs", "accuracy_vs_flash", "memory_plan", "routing", "confusion"}
    assert "device" not in res["not_shown"]  # one evaluation: the table shows it
    assert "profiling" in res["not_shown"]["per_layer_latency"]  # no profiling in this firmware
    assert res["legend_overlaps"] == {}  # every legend sits outside its axes
    html = (tmp_path / "report.html").read_text()
    title = re.search(r"<title>(.*?)</title>", html).group(1)
    h1 = re.search(r"<h1>(.*?)</h1>", html).group(1)
    assert title == h1 == "walking: DiTMoS report"  # the dataset, not the user's path
    md = (tmp_path / "report.md").read_text()
    assert "abl.: no adversarial" in md and "CNN, equal MACs" in md
    assert "| eval | pydevice | 30/30 |" in md
    for key in res["figures"]:
        png = (tmp_path / "figures" / f"{key}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # one point per method and width, none for the oracle
    pts = res["points"]["accuracy_vs_macs"]
    want = {(n, w) for w in WIDTHS for n in _methods(w)}
    assert {(p["method"], p["width"]) for p in pts} == want and len(pts) == len(want)
    front = {(p["method"], p["width"]) for p in pts if p["pareto"]}
    assert ("ditmos", 1.0) in front and ("strong", 1.0) in front
    assert ("ablation_no_adversarial", 1.0) not in front  # same cost as DiTMoS, less accurate


def test_report_says_what_is_missing(tmp_path):
    run = tmp_path / "run"
    _write(run / "metrics.json", _metrics())
    out = tmp_path / "out"
    r = CliRunner().invoke(report_cmd, [str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "missing: comparison" in r.output and "missing: on-device results" in r.output
    assert "not shown: memory_plan" in r.output
    assert "not shown: accuracy_vs_macs" in r.output
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # accuracy bars, routing, confusion


# --------------------------------------------------------------------------- #
# A real (tiny) `--compare` run
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_report_of_a_real_compare_run_shows_every_method_at_every_width(tiny_compare, tmp_path):
    run = tiny_compare
    comp = json.loads((run / "compare" / "compare.json").read_text())
    out = tmp_path / "report"
    r = CliRunner().invoke(report_cmd, [str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "missing: comparison" not in r.output and "missing: ablations" not in r.output
    md = (out / "report.md").read_text()
    assert md.startswith("# hapt: DiTMoS report")
    rows = _table_rows(md)
    expected = 0
    for res in comp["results"].values():
        w = f"{res['width']:g}"
        for name, m in res["methods"].items():
            expected += 1
            cells = rows[(label(name), w)]
            assert cells[2] == f"{100 * m['test_accuracy']:.2f}", (name, w, cells)
            for i, key in ((4, "macs"), (5, "flash_bytes"), (6, "params")):
                assert cells[i] == f"{m[key]:,}", (name, w, key, cells)
        expected += 1  # the union (oracle) row of DiTMoS
        assert (label("union"), w) in rows
    assert len(rows) == expected
    names = {n for res in comp["results"].values() for n in res["methods"]}
    assert "ablation_no_aggregation" in names and "weak_equal_macs" in names
    # the plots hold every costed method at every width
    res = write_report(collect(run), tmp_path / "again")
    for key in ("accuracy_vs_macs", "accuracy_vs_flash"):
        pts = res["points"][key]
        assert len({p["method"] for p in pts}) == len(names) > 1
        assert len(pts) == expected - len(comp["results"])
    assert res["legend_overlaps"] == {}
    # `ditmos report RUN/compare` gives the same table
    r = CliRunner().invoke(report_cmd, [str(run / "compare"), "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert _table_rows((tmp_path / "c" / "report.md").read_text()) == rows


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs it for CI)")
def test_page_renders_in_headless_chromium(tiny_compare, device_artefacts, tmp_path):
    """The page of the real comparison, opened in Chromium: every image loads,
    and the DOM holds one table row and one plotted point per method and width."""
    ev, build = device_artefacts
    comp = json.loads((tiny_compare / "compare" / "compare.json").read_text())
    want = {(n, f"{res['width']:g}") for res in comp["results"].values() for n in res["methods"]}
    write_report(collect(tiny_compare, [ev], build), tmp_path)
    page = (tmp_path / "report.html").read_text()
    probe = """<script>window.addEventListener('load', () => {
      const rows = sel => [...document.querySelectorAll(sel)].map(
          r => [r.dataset.method, r.dataset.width, r.getBoundingClientRect().height]);
      const out = {
        images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
        table: rows('#table-methods tbody tr'),
        macs: rows('#points-accuracy_vs_macs tr.point'),
        flash: rows('#points-accuracy_vs_flash tr.point'),
        h1: document.querySelector('h1').textContent,
        missing: [...document.querySelectorAll('li.missing')].map(li => li.textContent)};
      document.body.setAttribute('data-probe', JSON.stringify(out)); });</script></body>"""
    check = tmp_path / "check.html"
    check.write_text(page.replace("</body>", probe))
    prof = tmp_path / "profile"
    common = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={prof}",
        "--virtual-time-budget=5000",
    ]
    out = subprocess.run(
        common + ["--dump-dom", check.as_uri()], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r"data-probe=\"([^\"]*)\"", out.stdout)
    assert m, out.stdout[:2000]
    import html as html_mod

    probe_out = json.loads(html_mod.unescape(m.group(1)))
    imgs = probe_out["images"]
    assert len(imgs) == 5, imgs  # macs, flash, memory plan, routing, confusion
    assert all(c and w > 300 and h > 200 for c, w, h in imgs), imgs
    table = probe_out["table"]
    assert {(mth, w) for mth, w, _ in table} - {("union", w) for _, w in want} == want
    assert len(table) == len(want) + len(comp["results"])  # + one union row per width
    assert all(h > 5 for _, _, h in table)  # rendered, not collapsed
    for key in ("macs", "flash"):
        pts = probe_out[key]
        assert {(mth, w) for mth, w, _ in pts} == want and len(pts) == len(want)
        assert len({mth for mth, _, _ in pts}) > 1
    assert probe_out["h1"] == "hapt: DiTMoS report"
    assert not any("comparison" in s or "ablations" in s for s in probe_out["missing"])
    shot = tmp_path / "shot.png"
    out = subprocess.run(
        common + [f"--screenshot={shot}", "--window-size=1200,2400", (tmp_path / "report.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and shot.stat().st_size > 10_000, out.stderr[-2000:]
    import matplotlib.image as mpimg

    pix = mpimg.imread(shot)
    assert pix.std() > 0.05  # not a blank page


def test_a_broken_compare_json_is_a_clear_error(run_with_compare, capsys):
    from ditmos.cli import main

    (run_with_compare / "compare" / "compare.json").write_text('{"results": [1, 2]}')
    assert main(["report", str(run_with_compare)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ditmos: error: ")
    assert "not a comparison written by `ditmos train --compare`" in err[0]


def test_device_figure_needs_two_evaluations(run_with_compare, device_artefacts):
    from ditmos.report.plots import device_accuracy_vs_latency

    ev, _ = device_artefacts
    one = device_accuracy_vs_latency(collect(run_with_compare, [ev]))
    assert one.png is None and one.why is None  # left out: the table shows the one point
    two = device_accuracy_vs_latency(collect(run_with_compare, [ev, ev]))
    assert two.png[:8] == b"\x89PNG\r\n\x1a\n" and two.legend_overlaps == []
    none = device_accuracy_vs_latency(collect(run_with_compare))
    assert none.png is None and "--eval" in none.why
