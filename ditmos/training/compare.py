"""``ditmos train --compare``: DiTMoS against its ablations and baselines at
several widths and seeds, written as ``compare.md`` and ``compare.json``
(mean ± standard deviation over the seeds).

Layout of ``OUT_DIR``::

    OUT_DIR/
      compare.md, compare.json
      trials/<key>.json             every finished trial (``ditmos.training.sweep``)
      width_<w>/
        ditmos_s<seed>/             the DiTMoS run of width w, seed s (a run directory)
        candidate_<name>_s<seed>/   further DiTMoS candidates, if a search feeds them
        ablation_<name>_s<seed>/    ablation runs (largest width, or every width)

The trainings are independent *trials* (``ditmos.training.sweep``), run in
this process or as Ray tasks; docs/artefacts.md describes ``compare.json``.
All methods at one width and seed use the same data, split (checked) and
seed.  Costs use one model for every method (``ditmos.models.baselines``):
MACs of Conv1D/Dense per inference, params with BN folded (one bias per
channel), flash bytes = int8 weights + int32 biases.  Each DiTMoS run's
``metrics.json`` gets the baselines' accuracies of its seed under
``metrics[split]["float"]["baselines"]``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ditmos.errors import DitmosError
from ditmos.jsonio import read_json
from ditmos.methods import label
from ditmos.training.ablations import ABLATIONS, ablation_overrides
from ditmos.training.baselines import BASELINE_NAMES, TRAINED, Budget, baseline_config, budget_from_architecture

FORMAT = "ditmos-compare/2"
DEFAULT_WIDTHS = (0.125, 0.25, 0.5, 1.0)


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
            raise DitmosError(f"--widths: '{part}' is not a number (expected e.g. 0.25,0.5,1)") from None
        if not 0 < w <= 16:
            raise DitmosError(f"--widths: width {part} must be in (0, 16]")
        out.append(w)
    if not out or len(set(out)) != len(out):
        raise DitmosError(f"--widths: need distinct widths, got '{text}'")
    return tuple(out)


# --------------------------------------------------------------------------- #
# Reading a run
# --------------------------------------------------------------------------- #


def run_budget(run_dir: Path, data) -> Budget:
    """The DiTMoS budget (costs) of a trained run, from its resolved config."""
    from ditmos.training.config import architecture

    cfg = read_json(Path(run_dir) / "config.json", "the run did not finish")
    num_classes = len(data.class_names) if getattr(data, "class_names", None) else int(np.max(data.y_train)) + 1
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
    metrics = read_json(Path(run_dir) / "metrics.json", "the run did not finish")
    total = budget.total
    return {
        "val_accuracy": _acc(metrics, "val", "ditmos"),
        "test_accuracy": _acc(metrics, "test", "ditmos"),
        "union_test_accuracy": _acc(metrics, "test", "union"),
        "params": int(total.params),
        "macs": int(budget.inference_macs),
        "flash_bytes": int(total.flash_bytes),
    }


def store_baselines_in_metrics(run_dir, baselines: dict) -> None:
    """Read-modify-write ``metrics.json``: accuracies (0..1) under
    ``metrics["test"|"val"]["float"]["baselines"][NAME]``; atomic replace."""
    path = Path(run_dir) / "metrics.json"
    metrics = read_json(path, "the run did not finish")
    for split in ("test", "val"):
        node = metrics.setdefault(split, {}).setdefault("float", {})
        store = node.setdefault("baselines", {})
        for name, res in baselines.items():
            value = res.get(f"{split}_accuracy")
            if value is not None:
                store[name] = float(value)
    _write_json_atomic(path, metrics)


# --------------------------------------------------------------------------- #
# The comparison
# --------------------------------------------------------------------------- #


def _from_run_dir(run_dir: Path) -> tuple[str, str, int, float, Path]:
    """dataset, preset, seed, width and a config file reproducing ``run_dir``'s
    resolved config (written into ``run_dir/compare/``)."""
    cfg = read_json(run_dir / "config.json", "the run did not finish")
    base = {k: v for k, v in cfg.items() if k not in ("dataset", "preset", "seed", "width")}
    out = run_dir / "compare"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "base_config.json"
    _write_json_atomic(path, base)
    return cfg["dataset"], cfg["preset"], int(cfg["seed"]), float(cfg["width"]), path


@dataclass(frozen=True)
class Candidate:
    """A DiTMoS configuration competing for the DiTMoS row: ``overrides`` is a
    config fragment merged over the user's config (width and seed are set by
    the comparison).  With several candidates at a width, each is trained for
    every seed and the one with the best mean VALIDATION accuracy becomes the
    ``ditmos`` row; every candidate keeps its own row ``candidate_<name>``.
    The default is one candidate, ``ditmos`` with no overrides."""

    name: str
    overrides: dict = field(default_factory=dict)

    @property
    def method(self) -> str:
        return "ditmos" if self.name == "ditmos" else f"candidate_{self.name}"


# (width, the user's resolved config at width 1) -> the candidates at that width.
CandidateSource = Callable[[float, dict], Sequence[Candidate]]


def default_candidates(width: float, base: dict) -> list[Candidate]:
    return [Candidate("ditmos")]


def search_candidates(trials: int | None = None) -> CandidateSource:
    """DiTMoS's side of a fair search (``ditmos.training.search``): at each
    width, as many architectures inside the preset's MAC budget as the
    equal-MACs baseline tries (``trials``, default by preset), each a
    candidate; the comparison picks the best on validation."""

    def source(width: float, base: dict) -> list[Candidate]:
        from ditmos.training import search
        from ditmos.training.run import prepare_data

        ds, splits, _, data = prepare_data(base)
        n = search.TRIALS.get(base.get("preset"), 2) if trials is None else int(trials)
        _, found = search.candidates(
            base["architecture"], width, ds.X.shape[1:], data["num_classes"], trials=n, n_train=len(splits.train)
        )
        return [Candidate(c.name, {"architecture": c.architecture}) for c in found]

    return source


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2); clear error on bad input."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            s = int(part)
        except ValueError:
            raise DitmosError(f"--seeds: '{part}' is not an integer (expected e.g. 0,1,2)") from None
        if s < 0:
            raise DitmosError(f"--seeds: seed {s} must be >= 0")
        out.append(s)
    if not out or len(set(out)) != len(out):
        raise DitmosError(f"--seeds: need distinct seeds, got '{text}'")
    return tuple(out)


def _mean_row(rows: list[dict]) -> dict:
    """One method over seeds: accuracies as mean, ``<key>_std`` (sample standard
    deviation, n-1; 0 for one seed) and ``<key>_per_seed``; costs as the mean
    (they differ between seeds only for input-adaptive models); everything
    else from the first seed."""
    out = dict(rows[0])
    n = len(rows)
    for key in ("val_accuracy", "test_accuracy", "union_test_accuracy"):
        vals = [r.get(key) for r in rows]
        if any(v is None for v in vals):
            continue
        vals = [float(v) for v in vals]
        out[key] = float(np.mean(vals))  # exactly the value itself for one seed
        out[f"{key}_std"] = float(np.std(vals, ddof=1)) if n > 1 else 0.0
        out[f"{key}_per_seed"] = vals
    for key in ("params", "macs", "flash_bytes"):
        vals = [r.get(key) for r in rows]
        if all(isinstance(v, (int, float)) for v in vals):
            out[key] = int(round(float(np.mean(vals))))
    out["n_seeds"] = n
    return out


def run_compare(
    dataset,
    preset: str | None = None,
    out_dir=None,
    *,
    widths: Sequence[float] | None = DEFAULT_WIDTHS,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    quiet: bool = False,
    config_file=None,
    ablations: str = "largest",
    ablation_names: Sequence[str] = ABLATIONS,
    baseline_overrides: dict | None = None,
    executor=None,
    candidates: CandidateSource | None = None,
    main_run: tuple | None = None,
) -> Path:
    """Train DiTMoS, its ablations and the baselines at every width and seed,
    write ``compare.md``/``compare.json`` into ``out_dir`` and return ``out_dir``.

    Two forms:

    * ``run_compare("hapt", "quick", OUT_DIR, widths=..., seeds=..., config_file=...)``
    * ``run_compare(RUN_DIR, widths=...)``: compare around a finished run; its
      dataset, preset, seed and resolved config are reused, the run itself
      stands for its own width and seed and the rest goes to ``RUN_DIR/compare``.

    ``seeds`` (default: ``(seed,)``): every table reports the mean ± standard
    deviation over them.  ``ablations``: ``"largest"`` (at the largest width),
    ``"all"`` (every width) or ``"none"``; ``ablation_names`` restricts which.
    ``baseline_overrides`` changes the baselines' schedule (see
    ``baseline_config``).  ``executor`` (:func:`ditmos.training.sweep.make_executor`)
    says how the trials run (default: Ray tasks on a local Ray instance).
    ``candidates`` feeds DiTMoS configurations to try at each width (see
    :class:`Candidate`).  ``main_run=(RUN_DIR, width, seed)`` trains the default
    DiTMoS trial of that width and seed into RUN_DIR.  Finished trials are
    reused, so an interrupted comparison continues where it stopped."""
    from ditmos.training.config import resolve_config
    from ditmos.training.sweep import Trial, execute, make_executor

    existing: dict[tuple[float, int], Path] = {}
    if preset is None and out_dir is None:
        run_dir0 = Path(dataset)
        if not (run_dir0 / "config.json").is_file():
            raise DitmosError(
                f"{run_dir0} is not a run directory (no config.json); give dataset, preset and out_dir instead"
            )
        dataset, preset, seed, width0, config_file = _from_run_dir(run_dir0)
        existing[(width0, seed)] = run_dir0
        out_dir = run_dir0 / "compare"
    elif preset is None or out_dir is None:
        raise DitmosError("run_compare needs dataset, preset and out_dir (or just a run directory)")
    if main_run is not None:
        existing[(float(main_run[1]), int(main_run[2]))] = Path(main_run[0])
    if ablations not in ("largest", "all", "none"):
        raise DitmosError(f"ablations must be 'largest', 'all' or 'none', got {ablations!r}")
    unknown = sorted(set(ablation_names) - set(ABLATIONS))
    if unknown:
        raise DitmosError(f"unknown ablation(s) {unknown}; choose from {list(ABLATIONS)}")
    widths = tuple(float(w) for w in (widths if widths is not None else DEFAULT_WIDTHS))
    if not widths or len(set(widths)) != len(widths) or min(widths) <= 0:
        raise DitmosError(f"compare widths must be distinct positive numbers, got {widths}")
    seeds = tuple(int(s) for s in (seeds if seeds is not None else (seed,)))
    if not seeds or len(set(seeds)) != len(seeds):
        raise DitmosError(f"compare seeds must be distinct integers, got {seeds}")
    cfile = None if config_file is None else str(Path(config_file).resolve())
    base = resolve_config(dataset, preset, config_file=cfile)
    # the config file's "baselines" section, then the caller's overrides
    bcfg = baseline_config(
        preset if preset in ("quick", "full") else "quick",
        {**(base.get("baselines") or {}), **(baseline_overrides or {})},
    )
    executor = executor or make_executor()
    candidates = candidates or default_candidates
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # ---- the trials ------------------------------------------------------ #
    trials, plan = [], {}
    for w in widths:
        tag, wdir = _width_tag(w), out_dir / f"width_{_width_tag(w)}"
        cands = list(candidates(w, base))
        if not cands or len({c.method for c in cands}) != len(cands):
            raise DitmosError(f"width {tag}: need distinct DiTMoS candidates, got {[c.name for c in cands]}")
        abl = list(ablation_names) if (ablations == "all" or (ablations == "largest" and w == max(widths))) else []
        plan[tag] = {"candidates": cands, "ablations": abl}
        for s in seeds:
            common = dict(dataset=dataset, preset=preset, width=w, seed=s, config_file=cfile)
            for c in cands:
                rd = existing.get((w, s)) if c.method == "ditmos" else None
                rd = rd or wdir / f"{c.method}_s{s}"
                trials.append(
                    Trial(
                        kind="ditmos",
                        method=c.method,
                        run_dir=str(Path(rd).resolve()),
                        overrides=c.overrides or None,
                        extras=True,
                        **common,
                    )
                )
            for name in abl:
                trials.append(
                    Trial(
                        kind="ditmos",
                        method=f"ablation_{name}",
                        run_dir=str((wdir / f"ablation_{name}_s{s}").resolve()),
                        overrides=ablation_overrides(name, base),
                        **common,
                    )
                )
            for name in BASELINE_NAMES:
                if name in TRAINED and name in bcfg["only"]:
                    trials.append(
                        Trial(
                            kind="baseline",
                            method=name,
                            baseline_config=bcfg,
                            run_dir=str((wdir / f"{name}_s{s}").resolve()),
                            **common,
                        )
                    )
    t_start = time.perf_counter()
    results = execute(trials, out_dir / "trials", executor, quiet=quiet)

    # ---- assembling the tables -------------------------------------------- #
    report = {
        "format": FORMAT,
        "dataset": dataset,
        "preset": preset,
        "seed": seeds[0],
        "seeds": list(seeds),
        "widths": list(widths),
        "baseline_config": bcfg,
        "cost_model": "macs: Conv1D+Dense MACs per inference; params: weights + one bias "
        "per output channel (BN folded); flash_bytes: int8 weights + "
        "int32 biases",
        "results": {},
        "search": {},
        "engine": dict(executor.info),
    }
    if cfile is not None:  # what the tables were trained with beyond the preset
        report["config_file"] = json.loads(Path(cfile).read_text())
    by_key = {t.key: t for t in trials}
    split_of_seed: dict[int, tuple[str, str]] = {}
    for w in widths:
        tag = _width_tag(w)
        cands, abl = plan[tag]["candidates"], plan[tag]["ablations"]
        per_seed: dict[int, dict] = {s: {} for s in seeds}
        runs: dict[int, dict] = {s: {} for s in seeds}
        budget = None
        for key, t in by_key.items():
            if t.width != w:
                continue
            res = results[key]
            first = split_of_seed.setdefault(t.seed, (res["split"], key))
            if res["split"] != first[0]:
                raise DitmosError(
                    f"trial {key} used a different split than {first[1]}; "
                    f"delete {out_dir / 'trials'} and the run directories and "
                    f"compare again"
                )
            if t.kind == "ditmos":
                res = dict(res, run_dir=t.run_dir)  # where the run is now
                runs[t.seed][t.method] = res
                per_seed[t.seed][t.method] = res["methods"][t.method]
            else:
                per_seed[t.seed].update(res["methods"])
            if budget is None or t.method == "ditmos":
                budget = res["budget"]
        # DiTMoS row: the candidate with the best mean validation accuracy
        val = {c.method: float(np.mean([per_seed[s][c.method]["val_accuracy"] or 0.0 for s in seeds])) for c in cands}
        chosen = max(cands, key=lambda c: val[c.method]).method
        cand_res = {s: runs[s][chosen] for s in seeds}
        budget = cand_res[seeds[0]]["budget"]
        for s in seeds:
            rows = per_seed[s]
            if len(cands) > 1 or chosen != "ditmos":
                rows["ditmos"] = dict(rows[chosen], selected_candidate=chosen)
            for extra in ("strong", "ensemble_average"):
                if extra in cand_res[s]["methods"] and extra in bcfg["only"]:
                    rows[extra] = cand_res[s]["methods"][extra]
            run_dir = Path(cand_res[s]["run_dir"])
            if (run_dir / "metrics.json").is_file():
                store_baselines_in_metrics(run_dir, {k: v for k, v in rows.items() if k in BASELINE_NAMES})
        order = (
            ["ditmos"]
            + [c.method for c in cands if c.method != "ditmos"]
            + [f"ablation_{a}" for a in abl]
            + [n for n in BASELINE_NAMES if n in per_seed[seeds[0]]]
        )
        methods = {name: _mean_row([per_seed[s][name] for s in seeds]) for name in order}
        run_rel = {str(s): os.path.relpath(cand_res[s]["run_dir"], out_dir) for s in seeds}
        report["results"][tag] = {
            "width": w,
            "run_dir": run_rel[str(seeds[0])],
            "budget": budget,
            "methods": methods,
            "seeds": {str(s): {"run_dir": run_rel[str(s)], "methods": per_seed[s]} for s in seeds},
        }
        weak = methods.get("weak_equal_macs", {})
        report["search"][tag] = {
            "ditmos": {
                "candidates": [
                    {"name": c.name, "overrides": c.overrides, "val_accuracy_mean": round(val[c.method], 6)}
                    for c in cands
                ],
                "trials": len(cands) * len(seeds),
                "selected": chosen,
                "selected_on": "mean validation accuracy over seeds",
            },
            "weak_equal_macs": {
                "architectures": len(weak.get("candidates", [])),
                "depths": bcfg["depths"],
                "tolerance": bcfg["tolerance"],
                "trials": len(weak.get("candidates", [])) * len(seeds),
                "selected_on": "validation accuracy, per seed",
            },
        }
    report["summary"] = summarize(report)
    report["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    # one split for every seed (split_seed) or one per seed (older comparisons)
    report["same_split"] = len({v[0] for v in split_of_seed.values()}) == 1
    _write_json_atomic(out_dir / "compare.json", report)
    _write_text_atomic(out_dir / "compare.md", render_markdown(report))
    if not quiet:
        from rich.console import Console

        Console(stderr=True).print(f"comparison written to {out_dir / 'compare.md'}", highlight=False)
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
        best, best_in = (None, None, None), (None, None, None)
        for name, r in m.items():
            if name == "ditmos" or name.startswith("ablation_") or r.get("test_accuracy") is None:
                continue
            acc, sd = r["test_accuracy"], r.get("test_accuracy_std")
            if best[1] is None or acc > best[1]:
                best = (name, acc, sd)
            if r.get("macs", 0) <= 1.1 * budget and (best_in[1] is None or acc > best_in[1]):
                best_in = (name, acc, sd)
        rows.append(
            {
                "width": res["width"],
                "ditmos_test": dt,
                "weak_equal_macs_test": wt,
                "ditmos_test_std": d.get("test_accuracy_std"),
                "weak_equal_macs_test_std": weak.get("test_accuracy_std"),
                "best_within_budget_test_std": best_in[2],
                "best_baseline_test_std": best[2],
                "n_seeds": d.get("n_seeds", 1),
                "delta_vs_equal_macs": None if dt is None or wt is None else round(dt - wt, 6),
                "ditmos_beats_equal_macs": None if dt is None or wt is None else dt > wt,
                "ditmos_macs": d.get("macs"),
                "weak_equal_macs_macs": weak.get("macs"),
                "best_within_budget": best_in[0],
                "best_within_budget_test": best_in[1],
                "best_baseline": best[0],
                "best_baseline_test": best[1],
            }
        )
    return rows


def _verdict(summary: list[dict]) -> list[str]:
    rows = [r for r in summary if r["delta_vs_equal_macs"] is not None]
    if not rows:
        return []
    small = min(rows, key=lambda r: r["width"])
    word = "beats" if small["ditmos_beats_equal_macs"] else "does not beat"
    n = small.get("n_seeds", 1)
    mean = f"mean of {n} seeds, " if n > 1 else ""
    return [
        f"At the smallest width ({small['width']:g}) DiTMoS {word} the single CNN with "
        f"equal MACs on the test split ({mean}mean ± std): "
        f"{_pm(small['ditmos_test'], small.get('ditmos_test_std'), n)}% vs "
        f"{_pm(small['weak_equal_macs_test'], small.get('weak_equal_macs_test_std'), n)}% "
        f"({100 * small['delta_vs_equal_macs']:+.2f} pp).",
        "",
    ]


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def _pm(v, std, n: int = 1) -> str:
    """``mean ± std`` in % (just the mean for one seed)."""
    if v is None:
        return "—"
    if n > 1 and std is not None:
        return f"{100 * v:.2f} ± {100 * std:.2f}"
    return _pct(v)


def _int(v) -> str:
    return "—" if v is None else f"{int(round(v)):,}"


def _row_notes(name: str, r: dict) -> list[str]:
    notes = []
    one = " (seed 0)" if r.get("n_seeds", 1) > 1 else ""
    if "budget_ratio" in r:
        notes.append(
            f"{r['budget_metric']} ratio {r['budget_ratio']:.3f}, "
            f"depth {len(r['spec']['channels'])}, channels "
            f"{r['spec']['channels']}, fc {r['spec']['fc']}{one}"
        )
    if name == "early_exit":
        notes.append(
            f"threshold {r['threshold']:.3f} (val{one.rstrip(')').replace(' (', ', ')}), "
            f"max {r['max_macs']:,} MACs, exits {r['exit_fractions']}"
        )
    if (name == "ditmos" or name.startswith(("ablation_", "candidate_"))) and r.get("union_test_accuracy") is not None:
        notes.append(f"union {_pm(r['union_test_accuracy'], r.get('union_test_accuracy_std'), r.get('n_seeds', 1))}")
    if name == "ditmos" and r.get("selected_candidate"):
        notes.append(f"candidate {r['selected_candidate']} (best mean val)")
    if name in ("soft_moe", "ensemble_average"):
        notes.append("all K members run")
    return notes


def _search_lines(report: dict) -> list[str]:
    search = report.get("search") or {}
    if not search:
        return []
    n = len(report.get("seeds") or [report.get("seed")])
    lines = [
        "## Search effort",
        "",
        "Both sides are selected on the validation split within the same budget.",
        "",
        "| width | DiTMoS configs × seeds = trials | selected | single CNN (equal MACs) "
        "architectures × seeds = trials | depths, tolerance |",
        "|---|---|---|---|---|",
    ]
    for tag, s in search.items():
        d, w = s["ditmos"], s["weak_equal_macs"]
        lines.append(
            f"| {tag} | {len(d['candidates'])} × {n} = {d['trials']} | {d['selected']} | "
            f"{w['architectures']} × {n} = {w['trials']} | {w['depths']}, "
            f"±{100 * w['tolerance']:g} % |"
        )
    return lines + [""]


def render_markdown(report: dict) -> str:
    seeds = report.get("seeds") or [report["seed"]]
    n = len(seeds)
    seed_text = f"seeds {', '.join(map(str, seeds))}" if n > 1 else f"seed {seeds[0]}"
    lines = [f"# DiTMoS comparison: {report['dataset']} ({report['preset']} preset, {seed_text})", ""]
    own = (
        "the seeds share one train/validation/test split; each has its own initialisation and training order"
        if report.get("same_split")
        else "each seed has its own split, initialisation and training order"
    )
    stats = (
        f"Accuracies in %, mean ± standard deviation (n−1) over the {n} seeds ({own}); "
        if n > 1
        else "Accuracies in %; "
    )
    lines += [
        "Same data, split and seed for every method at a width and seed. "
        + stats
        + "model selection on the validation split, test split only reported. "
        f"Costs: {report['cost_model']}.",
        "",
    ]
    lines += [
        "## DiTMoS vs the single network with equal MACs",
        "",
        *_verdict(report.get("summary", [])),
        "| width | DiTMoS test | equal-MACs CNN test | Δ (pp) | DiTMoS MACs | "
        "CNN MACs | best baseline within the MACs (test) | best baseline (test) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report.get("summary", []):
        k = r.get("n_seeds", 1)
        delta = "—" if r["delta_vs_equal_macs"] is None else f"{100 * r['delta_vs_equal_macs']:+.2f}"
        lines.append(
            f"| {r['width']:g} | {_pm(r['ditmos_test'], r.get('ditmos_test_std'), k)} | "
            f"{_pm(r['weak_equal_macs_test'], r.get('weak_equal_macs_test_std'), k)} | "
            f"{delta} | {_int(r['ditmos_macs'])} | "
            f"{_int(r['weak_equal_macs_macs'])} | {r['best_within_budget'] or '—'} "
            f"({_pm(r['best_within_budget_test'], r.get('best_within_budget_test_std'), k)}) | "
            f"{r['best_baseline'] or '—'} "
            f"({_pm(r['best_baseline_test'], r.get('best_baseline_test_std'), k)}) |"
        )
    lines += [""] + _search_lines(report)
    for tag, res in report["results"].items():
        b = res["budget"]
        lines += [
            f"## Width {res['width']:g}",
            "",
            f"Budget: selector + one classifier = {b['inference_macs']:,} MACs; "
            f"whole DiTMoS set = {b['total_params']:,} params, "
            f"{b['total_flash_bytes']:,} flash bytes (K = {b['K']}).",
            "",
            "| method | val acc | test acc | params | MACs / inference | flash bytes | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in res["methods"].items():
            k = r.get("n_seeds", 1)
            lines.append(
                f"| {label(name)} | "
                f"{_pm(r.get('val_accuracy'), r.get('val_accuracy_std'), k)} | "
                f"{_pm(r.get('test_accuracy'), r.get('test_accuracy_std'), k)} | "
                f"{_int(r.get('params'))} | "
                f"{_int(r.get('macs'))} | {_int(r.get('flash_bytes'))} | "
                f"{'; '.join(_row_notes(name, r))} |"
            )
        lines.append("")
    if "wall_seconds" in report:
        eng = report.get("engine") or {}
        how = ""
        if eng:
            how = (
                f" ({eng.get('trained', 0)} trials trained, {eng.get('reused', 0)} reused "
                f"from an earlier, interrupted sweep; {eng.get('engine', 'sequential')})"
            )
        lines += [f"Wall time of the comparison: {report['wall_seconds']:.0f} s{how}."]
    return "\n".join(lines).rstrip("\n") + "\n"
