"""``ditmos certify``: float and integer-only smoothing of a run's test windows.

Writes ``RUN_DIR/certify/<kind>_sigma<S>.json`` (format ``ditmos-certify/1``,
docs/artefacts.md) for ``kind`` = ``float`` and (with ``--int8``) ``int8``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.smoothing import certify as CT
from ditmos.smoothing import noise as N

FORMAT = "ditmos-certify/1"
SPLITS = ("test", "val")


def sample_indices(n_test: int, samples: int) -> np.ndarray:
    """``samples`` test windows evenly spread over the split (0 = all of them)."""
    if samples < 0:
        raise DitmosError(f"--samples must be >= 0, got {samples}")
    if samples == 0 or samples >= n_test:
        return np.arange(n_test)
    return np.unique(np.linspace(0, n_test - 1, samples).round().astype(np.int64))


def window_seed(seed: int, index: int) -> int:
    """The integer generator's seed for test window ``index``."""
    return N.mix32((int(seed) * 0x10001 + int(index)) & N.M32)


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _certify_all(kind, idx, x, y, count_fn, sigma, n0, n, alpha, slack, progress):
    rows, t0 = [], time.perf_counter()
    for j, i in enumerate(idx):
        c0, c = count_fn(j, int(i), x[j])
        cert = CT.certify_counts(c0, c, sigma, alpha, slack)
        rows.append(
            {
                "index": int(i),
                "label": int(y[j]),
                "prediction": cert.prediction,
                "radius": cert.radius,
                "p_lower": cert.p_lower,
                "top_count": cert.top_count,
                "counts": [int(v) for v in c],
            }
        )
        if progress:
            progress(kind, j + 1, len(idx))
    return rows, time.perf_counter() - t0


def _summary(rows, radii, shift=None) -> dict:
    preds = np.array([r["prediction"] for r in rows])
    rad = np.array([r["radius"] for r in rows], dtype=np.float64)
    if shift is not None:  # radius around the original float window
        rad = np.where(preds == CT.ABSTAIN, -1.0, rad - shift)
        preds = np.where(rad < 0, CT.ABSTAIN, preds)
    return CT.summarize(preds, rad, np.array([r["label"] for r in rows]), radii)


def certify_run(
    run_dir,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 10000,
    alpha: float = 0.001,
    int8: bool = False,
    float_: bool = True,
    samples: int = 100,
    seed: int = 0,
    batch: int = 1000,
    engine: str = "batched",
    split: str = "test",
    progress=None,
) -> dict[str, Path]:
    """Certify the run's DiTMoS on ``samples`` windows of ``split`` (test, or val
    for choosing settings); return the written files."""
    from ditmos.smoothing.smoothers import FloatModel, FloatSmoother, IntSmoother
    from ditmos.training.rundir import load_run_data

    sigma = CT.check_sigma(sigma)
    if n0 < 1 or n < 1:
        raise DitmosError(f"--n0 and --n must be >= 1, got {n0} and {n}")
    if not 0 < alpha < 0.5:
        raise DitmosError(f"--alpha must lie in (0, 0.5), got {alpha}")
    if split not in SPLITS:
        raise DitmosError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    run_dir = Path(run_dir)
    data = load_run_data(run_dir)
    xs, ys = (data.x_test, data.y_test) if split == "test" else (data.x_val, data.y_val)
    idx = sample_indices(len(ys), samples)
    x, y = xs[idx], ys[idx]
    radii = CT.default_radii(sigma)
    base = {
        "format": FORMAT,
        "run": str(run_dir),
        "split": split,
        "sigma": sigma,
        "sigma_units": "normalised input (z-scored per channel)",
        "n0": n0,
        "n": n,
        "alpha": alpha,
        "seed": seed,
        "radii": radii,
    }
    written = {}
    tag = file_tag(sigma, seed, split)
    if float_:
        model = FloatModel(run_dir, batch=batch)
        sm = FloatSmoother(model, sigma)
        model.predict(x[:1])  # trace once, outside the timing

        def float_counts(j, i, xi):
            rng = np.random.default_rng([seed, i])
            return sm.counts(xi, n0, rng), sm.counts(xi, n, rng)

        rows, secs = _certify_all("float", idx, x, y, float_counts, sigma, n0, n, alpha, 0.0, progress)
        out = {
            **base,
            "kind": "float",
            "smoothing": "Gaussian noise on the float model",
            "seconds": secs,
            "seconds_per_sample": secs / len(idx),
            "summary": _summary(rows, radii),
            "samples": rows,
        }
        written["float"] = run_dir / "certify" / f"float_{tag}.json"
        _write_json(written["float"], out)
    if int8:
        int8_dir = run_dir / "int8"
        if not int8_dir.is_dir():
            what = (
                "single-CNN runs have no int8 model yet"
                if data.export.get("model") == "single"
                else "run 'ditmos quantize' first"
            )
            raise DitmosError(f"{run_dir} has no int8 model for --int8 ({what})")
        ism = IntSmoother(int8_dir, sigma, engine=engine)
        try:
            x_q = ism.quantize(x)
            gap = np.linalg.norm((ism.dequantize(x_q) - x.astype(np.float64)).reshape(len(x), -1), axis=1)

            def int_counts(j, i, xi):
                s = window_seed(seed, i)
                c0 = ism.counts(xi, n0, s, 0)
                if engine != "c":  # the device's own code must agree, every window
                    ref = ism.counts(xi, n0, s, 0, engine="c")
                    if not np.array_equal(c0, ref):
                        raise DitmosError(
                            f"test window {i}: {engine} integer counts "
                            f"{c0.tolist()} differ from the C model's "
                            f"{ref.tolist()}; use --engine c"
                        )
                return c0, ism.counts(xi, n, s, n0)

            rows, secs = _certify_all("int8", idx, x_q, y, int_counts, sigma, n0, n, alpha, ism.slack, progress)
            for r, g in zip(rows, gap):
                r["quantization_gap"] = float(g)
            out = {
                **base,
                "kind": "int8",
                "smoothing": "integer-only: table noise on the int8 input, int8 model",
                "engine": engine,
                "input_scale": ism.input_scale,
                "input_zero_point": ism.input_zero_point,
                "sigma_steps": ism.table.sigma_q,
                "table_size": ism.table.size,
                "table_offset": ism.table.offset,
                "tv_per_coordinate": ism.tv,
                "slack": ism.slack,
                "seconds": secs,
                "seconds_per_sample": secs / len(idx),
                "quantization_gap_mean": float(gap.mean()),
                "summary": _summary(rows, radii),
                "summary_float_input": _summary(rows, radii, shift=gap),
                "samples": rows,
            }
            written["int8"] = run_dir / "certify" / f"int8_{tag}.json"
            _write_json(written["int8"], out)
        finally:
            ism.close()
    return written


def training_label(run_dir) -> str:
    """How the run's model was trained for smoothing, e.g. ``single CNN, smoothmix
    sigma 0.25`` or ``DiTMoS, gaussian sigma 0.25`` (``none`` = plain training)."""
    run_dir = Path(run_dir)
    try:
        sm = json.loads((run_dir / "smoothing.json").read_text())
        return f"single CNN, {sm['method']} sigma {sm['sigma']:g}"
    except (OSError, ValueError, KeyError):
        pass
    try:
        cfg = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return "unknown"
    sm = cfg.get("smoothing") or {}
    if sm.get("method", "none") in ("none", None):
        return "DiTMoS, plain training"
    return f"DiTMoS, {sm['method']} sigma {float(sm['sigma']):g}"


def file_tag(sigma: float, seed: int = 0, split: str = "test") -> str:
    """``sigma<S>`` (seed 0) or ``sigma<S>_seed<k>``, then ``_val`` for the
    validation split: the certification file's name part."""
    return f"sigma{float(sigma):g}" + (f"_seed{int(seed)}" if int(seed) else "") + ("_val" if split == "val" else "")


def load_results(run_dirs, sigma: float, seed: int = 0, split: str = "test") -> dict[str, dict]:
    """The existing certification files of ``sigma`` (and ``seed``, ``split``) of one
    or several runs, keyed by row label (``kind`` for one run, ``run kind`` for several)."""
    tag = file_tag(sigma, seed, split)
    results = {}
    for rd in run_dirs:
        rd = Path(rd)
        for kind in ("float", "int8"):
            p = rd / "certify" / f"{kind}_{tag}.json"
            if p.is_file():
                label = kind if len(run_dirs) == 1 else f"{rd.name} {kind}"
                results[label] = {**json.loads(p.read_text()), "training": training_label(rd)}
    if not results:
        raise DitmosError(
            f"no certification files for sigma {float(sigma):g}"
            + (f" seed {int(seed)}" if int(seed) else "")
            + (" on the validation split" if split == "val" else "")
            + " in "
            + ", ".join(str(Path(r) / "certify") for r in run_dirs)
            + "; run 'ditmos certify' first"
        )
    return results


def format_table(results: dict[str, dict]) -> str:
    """Certified accuracy per radius, ACR, smoothed (clean) accuracy and abstain
    rate, one row per kind (and run)."""
    if not results:
        return ""
    first = next(iter(results.values()))
    radii = list(first["summary"]["certified_accuracy"])
    head = ["smoothing"] + [f"r={r}" for r in radii] + ["ACR", "smoothed acc", "abstain", "s/sample"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for kind, res in results.items():
        s = res["summary"]
        acc = s.get("smoothed_accuracy")
        lines.append(
            " | ".join(
                [kind]
                + [f"{100 * s['certified_accuracy'].get(r, float('nan')):.1f}" for r in radii]
                + [
                    f"{s['acr']:.3f}",
                    "-" if acc is None else f"{100 * acc:.1f}",
                    f"{100 * s['abstain_rate']:.1f}%",
                    f"{res['seconds_per_sample']:.2f}",
                ]
            )
        )
    return "\n".join(lines)


def _split_name(res: dict) -> str:
    return "validation" if res.get("split") == "val" else "test"


def write_markdown(results: dict[str, dict], path, command: str | None = None) -> None:
    """The table and the parameters it was measured with, as a Markdown file."""
    runs = sorted({Path(r["run"]).name for r in results.values()})
    title = f"run `{runs[0]}`" if len(runs) == 1 else "runs " + ", ".join(f"`{r}`" for r in runs)
    lines = [
        f"# Randomized smoothing certification: {title}",
        "",
        f"Written by `{command or 'ditmos certify RUN --sigma S ... --markdown FILE'}` "
        "(docs/smoothing.md).  Certified accuracy in % at each l2 radius "
        "(normalised input units), ACR, smoothed accuracy (the smoothed "
        "classifier's answer is right, any radius, abstain = wrong), abstain rate, "
        "seconds per window.",
        "",
    ]
    for kind, r in results.items():
        train = f" [{r['training']}]" if r.get("training") else ""
        lines.append(
            f"- {kind}{train}: sigma {r['sigma']:g}, n0 {r['n0']}, n {r['n']}, "
            f"alpha {r['alpha']:g}, {r['summary']['samples']} {_split_name(r)} windows, "
            f"seed {r['seed']}"
            + (
                f", sigma {r['sigma_steps']:.3f} input steps, "
                f"slack {r['slack']:.2e}, certified accuracy "
                f"around the float window (radius minus "
                f"quantisation gap, mean gap "
                f"{r['quantization_gap_mean']:.3f}) at r=0: "
                f"{100 * r['summary_float_input']['certified_accuracy']['0']:.1f}%"
                if r.get("kind") == "int8"
                else ""
            )
        )
    lines += ["", format_table(results), ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)


def load_seed_results(run_dirs, sigma: float, seeds, split: str = "test") -> dict[str, list[dict]]:
    """The certification files of several seeds, per row label: ``{label: [one result
    per seed]}``; every label must have every seed."""
    per_seed = [load_results(run_dirs, sigma, s, split) for s in seeds]
    labels = list(per_seed[0])
    for s, res in zip(seeds, per_seed):
        if list(res) != labels:
            raise DitmosError(
                f"seed {s} has the rows {sorted(res)}, seed {seeds[0]} has "
                f"{sorted(labels)}: certify every run and kind with every seed"
            )
    return {lab: [res[lab] for res in per_seed] for lab in labels}


def _rows_of(summary: dict, radii) -> list[float]:
    """Certified accuracy per radius, ACR, smoothed accuracy, abstain rate (in %,
    except the ACR)."""
    acc = summary.get("smoothed_accuracy")
    return (
        [100 * summary["certified_accuracy"][r] for r in radii]
        + [summary["acr"]]
        + [100 * (acc if acc is not None else float("nan")), 100 * summary["abstain_rate"]]
    )


def seed_table(groups: dict[str, list[dict]]) -> tuple[str, dict]:
    """Mean ± std over seeds per row, and per run the paired difference int8 - float;
    returns the table and ``{run: largest |mean difference| of certified accuracy}``."""
    first = next(iter(groups.values()))[0]
    radii = list(first["summary"]["certified_accuracy"])
    head = ["smoothing"] + [f"r={r}" for r in radii] + ["ACR", "smoothed acc", "abstain %"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]

    def fmt(v, acr_col):
        m, s = float(np.mean(v)), float(np.std(v))
        return f"{m:.3f} ± {s:.3f}" if acr_col else f"{m:.1f} ± {s:.1f}"

    vals = {lab: np.array([_rows_of(r["summary"], radii) for r in res]) for lab, res in groups.items()}
    acr_col = len(radii)
    for lab, v in vals.items():
        lines.append(" | ".join([lab] + [fmt(v[:, j], j == acr_col) for j in range(v.shape[1])]))
    worst = {}
    for lab in groups:
        if not lab.endswith("int8"):
            continue
        run = lab[: -len("int8")]
        flab = run + "float"
        if flab not in vals:
            continue
        d = vals[lab] - vals[flab]
        name = (run.strip() + " " if run.strip() else "") + "int8 - float"
        lines.append(" | ".join([name] + [fmt(d[:, j], j == acr_col) for j in range(d.shape[1])]))
        worst[run.strip() or "run"] = float(np.max(np.abs(d[:, : len(radii)].mean(0))))
    return "\n".join(lines), worst


def write_seed_markdown(groups: dict[str, list[dict]], seeds, path, command: str) -> None:
    """The seed table and the parameters it was measured with, as a Markdown file."""
    table, worst = seed_table(groups)
    runs = sorted({Path(r[0]["run"]).name for r in groups.values()})
    r0 = next(iter(groups.values()))[0]
    lines = [
        "# Randomized smoothing certification over seeds: " + ", ".join(f"`{r}`" for r in runs),
        "",
        f"Written by `{command}` (docs/smoothing.md).  Mean ± std over the certification "
        f"seeds {', '.join(str(s) for s in seeds)} (the noise draws; the model is the "
        f"same) of certified accuracy in % at each l2 radius (normalised input units), "
        f"ACR, smoothed accuracy and abstain rate; the `int8 - float` rows are the "
        f"per-seed paired differences.",
        "",
        f"- sigma {r0['sigma']:g}, n0 {r0['n0']}, n {r0['n']}, alpha {r0['alpha']:g}, "
        f"{r0['summary']['samples']} {_split_name(r0)} windows (evenly spread over the {_split_name(r0)} split)",
    ]
    for lab, res in groups.items():
        lines.append(
            f"- {lab}: {res[0].get('training', '')}, {np.mean([r['seconds_per_sample'] for r in res]):.2f} s per window"
        )
    for run, w in worst.items():
        lines.append(f"- {run}: largest |mean int8 - float| over the radii: {w:.2f} points")
    lines += ["", table, ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
