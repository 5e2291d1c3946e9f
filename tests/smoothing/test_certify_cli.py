"""`ditmos certify`: clear errors, and a real (tiny) float + integer certification."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ditmos.cli import main
from ditmos.smoothing import noise as N
from ditmos.smoothing.run import certify_run, sample_indices


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--sigma", "0.25", "--no-float"], "nothing to certify"),
        (["--sigma", "-1"], "--sigma must be a positive"),
        (["--sigma", "0.25", "--n", "0"], "--n0 and --n must be >= 1"),
        (["--sigma", "0.25", "--alpha", "0.7"], "--alpha must lie"),
    ],
)
def test_bad_arguments(tmp_path, capsys, args, msg):
    (tmp_path / "run").mkdir()
    assert main(["certify", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ditmos: error:") and msg in err[0], err


def test_missing_run(tmp_path, capsys):
    assert main(["certify", str(tmp_path / "nope"), "--sigma", "0.25"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_sample_indices():
    np.testing.assert_array_equal(sample_indices(10, 0), np.arange(10))
    np.testing.assert_array_equal(sample_indices(10, 3), [0, 4, 9])
    np.testing.assert_array_equal(sample_indices(5, 50), np.arange(5))


@pytest.mark.slow
def test_certify_tiny_run(tiny_run, tiny_int8):
    files = certify_run(tiny_run, sigma=0.25, n0=8, n=60, samples=3, int8=True)
    f = json.loads(files["float"].read_text())
    i = json.loads(files["int8"].read_text())
    for res in (f, i):
        assert res["format"] == "ditmos-certify/1" and len(res["samples"]) == 3
        for r in res["samples"]:
            assert sum(r["counts"]) == 60
            assert (r["prediction"] == -1) == (r["radius"] < 0)
        s = res["summary"]
        assert 0 <= s["abstain_rate"] <= 1 and s["acr"] >= 0
        ca = list(s["certified_accuracy"].values())
        assert ca == sorted(ca, reverse=True)  # non-increasing in the radius
    assert i["sigma_steps"] == pytest.approx(0.25 / i["input_scale"])
    t = N.make_table(i["sigma_steps"])
    assert i["slack"] == pytest.approx(768 * N.table_tv(t)) and i["slack"] < 1e-4
    # the best possible radius with 60 votes bounds every certified radius
    from ditmos.smoothing.certify import clopper_pearson_lower, radius

    top = radius(clopper_pearson_lower(60, 60, 0.001), 0.25)
    assert all(r["radius"] <= top + 1e-12 for r in f["samples"] + i["samples"])


@pytest.mark.slow
def test_bench_certify_tiny_run_and_routed_float_model(tiny_run, tiny_int8, capsys):
    import tensorflow as tf

    from ditmos.smoothing.smoothers import FloatModel
    from ditmos.training.rundir import load_run_data

    # the routed float model = every classifier on every window, then the routed one
    fm = FloatModel(tiny_run, batch=64)
    x = load_run_data(tiny_run).x_test[:100].astype(np.float32)
    sel = fm.selector({"window": tf.constant(x)}, training=False)
    feeds = {f"sel_feat_{b}": sel[f"feat_{b}"] for b in fm.shared}
    per = []
    for c in fm.classifiers:
        out = c({"window": tf.constant(x), **feeds}, training=False)
        per.append(np.asarray(out["logits"] if isinstance(out, dict) else out))
    route = np.argmax(np.asarray(sel["route"]), 1)
    want = np.argmax(np.stack(per, 1)[np.arange(len(x)), route], 1)
    np.testing.assert_array_equal(fm.predict(x), want)
    assert (
        main(
            [
                "bench",
                "certify",
                str(tiny_run),
                "--n",
                "40",
                "--samples",
                "2",
                "--repeat",
                "1",
                "--int-batch",
                "16",
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["integer_counts_identical"] and res["threads"] == 1
    assert res["integer_engines"] == ["fast", "batched", "c"]
    for k in ("float", "fast", "batched", "int"):
        assert res[f"{k}_cpu_seconds"] > 0
    for k in ("fast", "batched", "int"):
        assert res[f"ratio_cpu_float_over_{k}"] == pytest.approx(res["float_cpu_seconds"] / res[f"{k}_cpu_seconds"])
    assert res["float_noise_cpu_seconds"] <= res["float_cpu_seconds"]
    assert main(["bench", "certify", str(tiny_run), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def _fake_result(kind, seed, ca, acr):
    radii = ["0", "0.25"]
    return {
        "format": "ditmos-certify/1",
        "run": "r",
        "kind": kind,
        "sigma": 0.5,
        "n0": 10,
        "n": 100,
        "alpha": 0.001,
        "seed": seed,
        "seconds_per_sample": 1.0,
        "summary": {
            "samples": 4,
            "certified_accuracy": dict(zip(radii, ca)),
            "acr": acr,
            "abstain_rate": 0.25,
            "smoothed_accuracy": ca[0],
        },
    }


def test_tabulate_over_seeds(tmp_path, capsys):
    run = tmp_path / "r"
    (run / "certify").mkdir(parents=True)
    vals = {
        ("float", 0): ([0.75, 0.5], 0.3),
        ("float", 1): ([0.75, 0.25], 0.2),
        ("int8", 0): ([0.75, 0.5], 0.3),
        ("int8", 1): ([0.5, 0.25], 0.1),
    }
    for (kind, seed), (ca, acr) in vals.items():
        name = f"{kind}_sigma0.5" + (f"_seed{seed}" if seed else "") + ".json"
        (run / "certify" / name).write_text(json.dumps(_fake_result(kind, seed, ca, acr)))
    md = tmp_path / "t.md"
    assert main(["certify", str(run), "--sigma", "0.5", "--tabulate", "--seeds", "0,1", "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "float | 75.0 ± 0.0 | 37.5 ± 12.5 | 0.250 ± 0.050" in out
    # paired differences int8 - float: seed 0 (0, 0), seed 1 (-25, 0)
    assert "int8 - float | -12.5 ± 12.5 | 0.0 ± 0.0 | -0.050 ± 0.050" in out
    text = md.read_text()
    assert "--seeds 0,1" in text and "largest |mean int8 - float| over the radii: 12.50" in text
    (run / "certify" / "int8_sigma0.5_seed1.json").unlink()
    assert main(["certify", str(run), "--sigma", "0.5", "--tabulate", "--seeds", "0,1"]) == 2
    assert "seed 1 has the rows" in capsys.readouterr().err
    assert main(["certify", str(run), "--sigma", "0.5", "--seeds", "0,1"]) == 2
    assert "--seeds goes with --tabulate" in capsys.readouterr().err


def test_validation_files_are_separate(tmp_path, capsys):
    from ditmos.smoothing.run import file_tag

    assert file_tag(0.5) == "sigma0.5" and file_tag(0.5, 2, "val") == "sigma0.5_seed2_val"
    run = tmp_path / "r"
    (run / "certify").mkdir(parents=True)
    res = {**_fake_result("float", 0, [0.75, 0.5], 0.3), "split": "val"}
    (run / "certify" / "float_sigma0.5_val.json").write_text(json.dumps(res))
    md = tmp_path / "v.md"
    assert main(["certify", str(run), "--sigma", "0.5", "--split", "val", "--tabulate", "--markdown", str(md)]) == 0
    assert "float | 75.0 | 50.0" in capsys.readouterr().out
    assert "--split val --tabulate" in md.read_text() and "4 validation windows" in md.read_text()
    # the test-split table does not pick up validation files
    assert main(["certify", str(run), "--sigma", "0.5", "--tabulate"]) == 2
    assert "no certification files for sigma 0.5 in" in capsys.readouterr().err


def test_agreement_on_clean_windows_matches_quantize(tiny_run, tiny_int8, tmp_path, capsys):
    # sigma 0, one draw, every test window: the float and int8 accuracies are the
    # ones 'ditmos quantize' measured (Keras and the TFLM reference)
    from ditmos.smoothing.agreement import agreement

    r = agreement(tiny_run, sigma=0.0, samples=0, noises=1)
    m = json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert r["acc_float"] == pytest.approx(100 * m["float"]["ditmos"])
    assert r["acc_int8"] == pytest.approx(100 * m["int8"]["ditmos"])
    assert r["saturated"] == 0 and r["samples"] == m["float"]["samples"]
    md = tmp_path / "a.md"
    argv = ["certify", str(tiny_run), "--sigma", "0.5", "--agreement", "--samples", "3", "--noises", "4"]
    assert main([*argv, "--quiet", "--markdown", str(md)]) == 0
    assert "--agreement --samples 3 --noises 4" in md.read_text() and "3 test windows" in md.read_text()
    (tmp_path / "empty").mkdir()
    assert main(["certify", str(tmp_path / "empty"), "--sigma", "0.25", "--agreement"]) == 2
    assert "needs a DiTMoS run with an int8 model" in capsys.readouterr().err
