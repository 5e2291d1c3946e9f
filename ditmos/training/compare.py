"""``ditmos train --compare``: DiTMoS against its ablations and baselines at
several widths, written as ``compare.md`` and ``compare.json``.

Layout of ``OUT_DIR``::

    OUT_DIR/
      compare.md, compare.json
      width_<w>/
        ditmos/                 the DiTMoS run at width w (a normal run directory)
        ablation_<name>/        ablation runs (width 1, or every width)
        ablation_<name>.config.json
        baselines.json          the baselines trained on the run's split (cache)

All methods at one width use the same data, split (checked) and seed.  Costs
use one model for every method (``ditmos.models.baselines``): MACs of
Conv1D/Dense per inference, params with BN folded (one bias per channel),
flash bytes = int8 weights + int32 biases.  Each DiTMoS run's ``metrics.json``
gets the baselines' accuracies under ``metrics[split]["float"]["baselines"]``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ditmos.errors import DitmosError
from ditmos.training.ablations import ABLATIONS, run_ablation
from ditmos.training.baselines import (
    Budget, baseline_config, budget_from_architecture, run_extras,
    train_baselines)

FORMAT = "ditmos-compare/1"

_LABELS = {
    "ditmos": "DiTMoS (selector + 1 of K)",
    "union": "union / oracle (upper bound)",
    "ablation_random_split": "ablation: random split",
    "ablation_no_adversarial": "ablation: no adversarial",
    "ablation_no_aggregation": "ablation: no aggregation",
    "ablation_no_generalist": "ablation: no generalist (heads from scratch, no fallback)",
    "ablation_no_fallback": "ablation: generalist not a selection candidate",
    "ablation_kmeans_split": "ablation: KMeans split, best-classifier routing",
    "ablation_no_overlap": "ablation: class-pure head pre-training",
    "ablation_distill": "ablation: generalist distilled from the strong model",
    "weak_equal_macs": "single CNN, equal MACs",
    "equal_params": "single CNN, equal params",
    "strong": "strong model",
    "ensemble_average": "ensemble of the K classifiers (softmax mean)",
    "soft_moe": "soft-gated MoE",
    "early_exit": "early-exit CNN (avg MACs)",
}


def _write_json_atomic(path: Path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _width_tag(w: float) -> str:
    return f"{float(w):g}"


def parse_widths(text: str) -> tuple[float, ...]:
    """``"0.25,0.5,1"`` -> (0.25, 0.5, 1.0); clear error on bad input."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            w = float(part)
        except ValueError:
            raise DitmosError(f"--widths: '{part}' is not a number (expected e.g. 0.25,0.5,1)") \
                from None
        if not 0 < w <= 16:
            raise DitmosError(f"--widths: width {part} must be in (0, 16]")
        out.append(w)
    if not out or len(set(out)) != len(out):
        raise DitmosError(f"--widths: need distinct widths, got '{text}'")
    return tuple(out)


# --------------------------------------------------------------------------- #
# Reading a run
# --------------------------------------------------------------------------- #

def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DitmosError(f"{path} is missing; the run did not finish") from None
    except json.JSONDecodeError as e:
        raise DitmosError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})") from None


def run_budget(run_dir: Path, data) -> Budget:
    """The DiTMoS budget (costs) of a trained run, from its resolved config."""
    from ditmos.training.config import architecture

    cfg = _read_json(Path(run_dir) / "config.json")
    num_classes = len(data.class_names) if getattr(data, "class_names", None) else \
        int(np.max(data.y_train)) + 1
    return budget_from_architecture(architecture(cfg), data.x_train.shape[1:], num_classes)


def _acc(metrics: dict, split: str, key: str):
    try:
        v = metrics[split]["float"][key]
    except (KeyError, TypeError):
        return None
    if isinstance(v, dict):
        v = v.get("accuracy")
    return None if v is None else float(v)


def _ditmos_row(run_dir: Path, budget: Budget) -> dict:
    metrics = _read_json(Path(run_dir) / "metrics.json")
    total = budget.total
    return {"val_accuracy": _acc(metrics, "val", "ditmos"),
            "test_accuracy": _acc(metrics, "test", "ditmos"),
            "union_test_accuracy": _acc(metrics, "test", "union"),
            "params": int(total.params), "macs": int(budget.inference_macs),
            "flash_bytes": int(total.flash_bytes)}


def store_baselines_in_metrics(run_dir, baselines: dict) -> None:
    """Read-modify-write ``metrics.json``: accuracies (0..1) under
    ``metrics["test"|"val"]["float"]["baselines"][NAME]``; atomic replace."""
    path = Path(run_dir) / "metrics.json"
    metrics = _read_json(path)
    for split in ("test", "val"):
        node = metrics.setdefault(split, {}).setdefault("float", {})
        store = node.setdefault("baselines", {})
        for name, res in baselines.items():
            value = res.get(f"{split}_accuracy")
            if value is not None:
                store[name] = float(value)
    _write_json_atomic(path, metrics)


def _same_split(a: Path, b: Path) -> bool:
    sa, sb = np.load(Path(a) / "splits.npz"), np.load(Path(b) / "splits.npz")
    return all(np.array_equal(sa[k], sb[k]) for k in ("train", "val", "test"))


# --------------------------------------------------------------------------- #
# The comparison
# --------------------------------------------------------------------------- #

def _train(dataset, preset, run_dir: Path, *, config_file, width, seed, quiet) -> Path:
    from ditmos.training import train_run

    done = (run_dir / "metrics.json").is_file()
    if done:
        return run_dir
    return Path(train_run(dataset, preset, run_dir, config_file=config_file, width=width,
                          seed=seed, resume=run_dir.exists(), quiet=quiet))


def _baselines_for(run_dir: Path, width_dir: Path, data, budget: Budget, cfg: dict, seed: int,
                   quiet: bool) -> dict:
    cache = width_dir / "baselines.json"
    key = {"config": cfg, "seed": seed, "budget": budget.to_dict(),
           "splits_mtime": os.path.getmtime(run_dir / "splits.npz")}
    if cache.is_file():
        old = _read_json(cache)
        if old.get("key") == json.loads(json.dumps(key)):
            return old["results"]
    extras = run_extras(run_dir, data, budget)
    results = train_baselines(data, budget=budget, config=cfg, seed=seed, quiet=quiet,
                              run_extras=extras)
    _write_json_atomic(cache, {"key": key, "results": results})
    return results


def _from_run_dir(run_dir: Path) -> tuple[str, str, int, float, Path]:
    """dataset, preset, seed, width and a config file reproducing ``run_dir``'s
    resolved config (written into ``run_dir/compare/``)."""
    cfg = _read_json(run_dir / "config.json")
    base = {k: v for k, v in cfg.items() if k not in ("dataset", "preset", "seed", "width")}
    out = run_dir / "compare"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "base_config.json"
    _write_json_atomic(path, base)
    return cfg["dataset"], cfg["preset"], int(cfg["seed"]), float(cfg["width"]), path


def _search_ditmos(dataset, preset, out_dir: Path, config_file, width: float, seed: int,
                   trials: int, quiet: bool, report: dict) -> Path:
    """DiTMoS's side of a fair search: as many candidate architectures as the
    equal-MACs baseline tries, the best on validation; records both spaces."""
    from ditmos.training.search import search_train

    run_dir = search_train(dataset, preset, out_dir, width=width, seed=seed,
                           config_file=config_file, quiet=quiet, trials=trials)
    info = _read_json(out_dir / "search.json")
    report.setdefault("search", {})[_width_tag(width)] = {
        "ditmos": {"trials": info["trials"], "space": info["space"], "chosen": info["chosen"],
                   "candidates": [{k: c[k] for k in ("name", "val_accuracy", "macs")}
                                  for c in info["candidates"]]},
        "weak_equal_macs": {"trials": trials, "space": "the selector's block pattern at depths "
                            f"{report['baseline_config']['depths']}, block-1 channels and FC "
                            "width solved to the budget"}}
    return run_dir


def run_compare(dataset, preset: str | None = None, out_dir=None, *,
                widths: Sequence[float] | None = (0.25, 0.5, 1.0), seed: int = 0,
                quiet: bool = False, config_file=None, ablations: str = "largest",
                ablation_names: Sequence[str] = ABLATIONS,
                baseline_overrides: dict | None = None, ditmos_search: bool = False) -> Path:
    """Train DiTMoS at every width plus ablations and baselines, write
    ``compare.md``/``compare.json`` into ``out_dir`` and return ``out_dir``.

    Two forms:

    * ``run_compare("hapt", "quick", OUT_DIR, widths=..., seed=..., config_file=...)``
    * ``run_compare(RUN_DIR, widths=...)``: compare around a finished run; its
      dataset, preset, seed and resolved config are reused, the run itself
      stands for its own width and the rest goes to ``RUN_DIR/compare``.

    ``ablations``: ``"largest"`` (at the largest width, 1 by default),
    ``"all"`` (every width) or ``"none"``.  Finished runs and baselines are
    reused, so an interrupted comparison continues where it stopped.
    ``ablation_names`` restricts which ablations run; ``baseline_overrides``
    changes the baselines' schedule (see ``baseline_config``).  With
    ``ditmos_search`` DiTMoS gets an architecture search inside the budget of
    its preset at each width, with as many trials as the equal-MACs
    baseline's search (``ditmos.training.search``); ablations then use the
    chosen architecture."""
    from ditmos.training.rundir import load_run_data

    existing: dict[float, Path] = {}
    if preset is None and out_dir is None:
        run_dir0 = Path(dataset)
        if not (run_dir0 / "config.json").is_file():
            raise DitmosError(f"{run_dir0} is not a run directory (no config.json); give "
                              f"dataset, preset and out_dir instead")
        dataset, preset, seed, width0, config_file = _from_run_dir(run_dir0)
        existing[width0] = run_dir0
        out_dir = run_dir0 / "compare"
    elif preset is None or out_dir is None:
        raise DitmosError("run_compare needs dataset, preset and out_dir (or just a run directory)")
    if ablations not in ("largest", "all", "none"):
        raise DitmosError(f"ablations must be 'largest', 'all' or 'none', got {ablations!r}")
    unknown = sorted(set(ablation_names) - set(ABLATIONS))
    if unknown:
        raise DitmosError(f"unknown ablation(s) {unknown}; choose from {list(ABLATIONS)}")
    widths = tuple(float(w) for w in (widths if widths is not None else (0.25, 0.5, 1.0)))
    if not widths or len(set(widths)) != len(widths) or min(widths) <= 0:
        raise DitmosError(f"compare widths must be distinct positive numbers, got {widths}")
    bcfg = baseline_config(preset if preset in ("quick", "full") else "quick",
                           baseline_overrides)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"format": FORMAT, "dataset": dataset, "preset": preset, "seed": seed,
              "widths": list(widths), "baseline_config": bcfg,
              "cost_model": "macs: Conv1D+Dense MACs per inference; params: weights + one bias "
                            "per output channel (BN folded); flash_bytes: int8 weights + "
                            "int32 biases",
              "results": {}}
    t_start = time.perf_counter()
    first_run = None
    for w in widths:
        tag = _width_tag(w)
        wdir = out_dir / f"width_{tag}"
        ab_config = config_file
        if w in existing:
            run_dir = existing[w]
        elif ditmos_search:
            run_dir = _search_ditmos(dataset, preset, wdir / "ditmos", config_file, w, seed,
                                     len(bcfg["depths"]), quiet, report)
            ab_config = _from_run_dir(run_dir)[4]
        else:
            run_dir = _train(dataset, preset, wdir / "ditmos", config_file=config_file, width=w,
                             seed=seed, quiet=quiet)
        first_run = first_run or run_dir
        if not _same_split(first_run, run_dir):
            raise DitmosError(f"run {run_dir} used a different split than {first_run}; "
                              f"delete it and compare again")
        data = load_run_data(run_dir)
        budget = run_budget(run_dir, data)
        methods = {"ditmos": _ditmos_row(run_dir, budget)}
        if ablations == "all" or (ablations == "largest" and w == max(widths)):
            for name in ablation_names:
                ab_dir = wdir / f"ablation_{name}"
                if not (ab_dir / "metrics.json").is_file():
                    run_ablation(name, dataset, preset, ab_dir, config_file=ab_config,
                                 width=w, seed=seed, resume=ab_dir.exists(), quiet=quiet)
                if not _same_split(run_dir, ab_dir):
                    raise DitmosError(f"ablation run {ab_dir} used a different split than "
                                      f"{run_dir}; delete it and compare again")
                methods[f"ablation_{name}"] = _ditmos_row(ab_dir, run_budget(ab_dir, data))
        wdir.mkdir(parents=True, exist_ok=True)
        baselines = _baselines_for(run_dir, wdir, data, budget, bcfg, seed, quiet)
        store_baselines_in_metrics(run_dir, baselines)
        methods.update(baselines)
        report["results"][tag] = {"width": w, "run_dir": os.path.relpath(run_dir, out_dir),
                                  "budget": budget.to_dict(), "methods": methods}
        report["summary"] = summarize(report)
        _write_json_atomic(out_dir / "compare.json", report)
        _write_text_atomic(out_dir / "compare.md", render_markdown(report))
    report["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    _write_json_atomic(out_dir / "compare.json", report)
    _write_text_atomic(out_dir / "compare.md", render_markdown(report))
    if not quiet:
        from rich.console import Console

        Console(stderr=True).print(f"comparison written to {out_dir / 'compare.md'}",
                                   highlight=False)
    return out_dir


# --------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------- #

def summarize(report: dict) -> list[dict]:
    """Per width: DiTMoS vs the equal-MACs single CNN (the acceptance
    question), the best baseline within the DiTMoS MAC budget (+10 %) and the
    best baseline at any cost."""
    rows = []
    for tag, res in report["results"].items():
        m = res["methods"]
        budget = res["budget"]["inference_macs"]
        d, weak = m.get("ditmos", {}), m.get("weak_equal_macs", {})
        dt, wt = d.get("test_accuracy"), weak.get("test_accuracy")
        best, best_in = (None, None), (None, None)
        for name, r in m.items():
            if name == "ditmos" or name.startswith("ablation_") or r.get("test_accuracy") is None:
                continue
            acc = r["test_accuracy"]
            if best[1] is None or acc > best[1]:
                best = (name, acc)
            if r.get("macs", 0) <= 1.1 * budget and (best_in[1] is None or acc > best_in[1]):
                best_in = (name, acc)
        rows.append({"width": res["width"], "ditmos_test": dt, "weak_equal_macs_test": wt,
                     "delta_vs_equal_macs": None if dt is None or wt is None else round(dt - wt, 6),
                     "ditmos_beats_equal_macs": None if dt is None or wt is None else dt > wt,
                     "ditmos_macs": d.get("macs"), "weak_equal_macs_macs": weak.get("macs"),
                     "best_within_budget": best_in[0], "best_within_budget_test": best_in[1],
                     "best_baseline": best[0], "best_baseline_test": best[1]})
    return rows


def _verdict(summary: list[dict]) -> list[str]:
    rows = [r for r in summary if r["delta_vs_equal_macs"] is not None]
    if not rows:
        return []
    small = min(rows, key=lambda r: r["width"])
    word = "beats" if small["ditmos_beats_equal_macs"] else "does not beat"
    return [f"At the smallest width ({small['width']:g}) DiTMoS {word} the single CNN with "
            f"equal MACs on the test split: {_pct(small['ditmos_test'])}% vs "
            f"{_pct(small['weak_equal_macs_test'])}% "
            f"({100 * small['delta_vs_equal_macs']:+.2f} pp).", ""]


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def _int(v) -> str:
    return "—" if v is None else f"{int(round(v)):,}"


def render_markdown(report: dict) -> str:
    lines = [f"# DiTMoS comparison: {report['dataset']} ({report['preset']} preset, "
             f"seed {report['seed']})", ""]
    lines += ["Same data, split and seed for every method at a width. Accuracies in %, "
              "model selection on the validation split, test split only reported. "
              f"Costs: {report['cost_model']}.", ""]
    lines += ["## DiTMoS vs the single network with equal MACs", "",
              *_verdict(report.get("summary", [])),
              "| width | DiTMoS test | equal-MACs CNN test | Δ (pp) | DiTMoS MACs | "
              "CNN MACs | best baseline within the MACs (test) | best baseline (test) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report.get("summary", []):
        delta = "—" if r["delta_vs_equal_macs"] is None else f"{100 * r['delta_vs_equal_macs']:+.2f}"
        lines.append(f"| {r['width']:g} | {_pct(r['ditmos_test'])} | "
                     f"{_pct(r['weak_equal_macs_test'])} | {delta} | {_int(r['ditmos_macs'])} | "
                     f"{_int(r['weak_equal_macs_macs'])} | {r['best_within_budget'] or '—'} "
                     f"({_pct(r['best_within_budget_test'])}) | {r['best_baseline'] or '—'} "
                     f"({_pct(r['best_baseline_test'])}) |")
    for tag, res in report["results"].items():
        b = res["budget"]
        lines += ["", f"## Width {res['width']:g}", "",
                  f"Budget: selector + one classifier = {b['inference_macs']:,} MACs; "
                  f"whole DiTMoS set = {b['total_params']:,} params, "
                  f"{b['total_flash_bytes']:,} flash bytes (K = {b['K']}).", "",
                  "| method | val acc | test acc | params | MACs / inference | flash bytes | notes |",
                  "|---|---|---|---|---|---|---|"]
        for name, r in res["methods"].items():
            notes = []
            if "budget_ratio" in r:
                notes.append(f"{r['budget_metric']} ratio {r['budget_ratio']:.3f}, "
                             f"depth {len(r['spec']['channels'])}, channels "
                             f"{r['spec']['channels']}, fc {r['spec']['fc']}")
            if name == "early_exit":
                notes.append(f"threshold {r['threshold']:.3f} (val), max {r['max_macs']:,} MACs, "
                             f"exits {r['exit_fractions']}")
            if name == "ditmos" and r.get("union_test_accuracy") is not None:
                notes.append(f"union {_pct(r['union_test_accuracy'])}")
            if name in ("soft_moe", "ensemble_average"):
                notes.append("all K members run")
            if name.startswith("ablation_") and r.get("union_test_accuracy") is not None:
                notes.append(f"union {_pct(r['union_test_accuracy'])}")
            lines.append(f"| {_LABELS.get(name, name)} | {_pct(r.get('val_accuracy'))} | "
                         f"{_pct(r.get('test_accuracy'))} | {_int(r.get('params'))} | "
                         f"{_int(r.get('macs'))} | {_int(r.get('flash_bytes'))} | "
                         f"{'; '.join(notes)} |")
    if report.get("search"):
        lines += ["", "## Search effort (same number of trials on both sides)", "",
                  "| width | method | trials | space | chosen (val) |", "|---|---|---|---|---|"]
        for tag, sides in report["search"].items():
            d, b = sides["ditmos"], sides["weak_equal_macs"]
            vals = ", ".join(f"{c['name']} {_pct(c['val_accuracy'])}" for c in d["candidates"])
            lines.append(f"| {tag} | DiTMoS | {d['trials']} | {d['space']} | {d['chosen']} "
                         f"({vals}) |")
            lines.append(f"| {tag} | single CNN, equal MACs | {b['trials']} | {b['space']} | "
                         f"best on val |")
    if "wall_seconds" in report:
        lines += ["", f"Wall time of the comparison: {report['wall_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"
