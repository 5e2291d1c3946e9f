"""Gather what a report can show from the artefacts that exist, and say what is missing.

Sources (each optional except the run directory):

* ``RUN_DIR/metrics.json``: float accuracies of DiTMoS, the union and the
  baselines trained with the run, routing histogram, confusion matrix, costs;
* the comparison (``ditmos train --compare``) the run belongs to: its
  ``compare.json`` in ``RUN_DIR/compare/`` (where ``--compare`` writes it),
  beside the run, or one or two folders up (``OUT/width_<w>/ditmos``).  It
  gives every method at every width: accuracy (mean and standard deviation
  when several seeds were trained), MACs, flash bytes and parameters.
  ``ditmos report`` also accepts the comparison directory itself; the run at
  the largest width then provides the run-level figures;
* evaluation directories (``ditmos evaluate``): ``report.json``;
* the codegen manifest of the build an evaluation used (or ``--build``):
  per-layer names and the arena plan (offset, size and live range per tensor).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ditmos.codegen import find_codegen_manifest
from ditmos.errors import DitmosError
from ditmos.jsonio import read_json
from ditmos.methods import label

# Loaders whose argument names the user's own file or folder: its name is the
# dataset's short name.  Other loaders (unimib:DIR, ...) are named after themselves.
_PATH_LOADERS = ("npz", "csv")


def kind_of(name: str) -> str:
    if name == "ditmos":
        return "ditmos"
    if name == "union":
        return "oracle"
    if name.startswith("ablation_"):
        return "ablation"
    return "baseline"


def dataset_short_name(spec: str | None) -> str:
    """``hapt`` -> ``hapt``; ``npz:/home/me/data/walk.npz`` -> ``walk``;
    ``unimib-adl:/data/UniMiB`` -> ``unimib-adl``.  Never a path."""
    if not spec:
        return ""
    spec = str(spec)
    if ":" not in spec:
        return Path(spec).name or spec
    loader, arg = spec.split(":", 1)
    if loader in _PATH_LOADERS:
        path = Path(arg.rstrip("/\\"))
        return (path.stem if path.suffix else path.name) or loader
    return loader


def width_tag(width: float | None) -> str:
    return "" if width is None else f"{float(width):g}"


@dataclass
class Method:
    """One method at one width.  ``accuracy`` is the test accuracy (the mean
    over ``seeds`` seeds when several were trained, then ``accuracy_std`` is
    their standard deviation)."""

    name: str
    accuracy: float | None
    macs: float | None = None
    flash_bytes: float | None = None
    params: float | None = None
    width: float | None = None
    accuracy_std: float | None = None
    seeds: int = 1

    @property
    def label(self) -> str:
        return label(self.name)

    @property
    def kind(self) -> str:
        return kind_of(self.name)


@dataclass
class ReportData:
    run_dir: Path
    title: str
    subtitle: str = ""
    dataset: str = ""
    metrics: dict | None = None
    methods: list[Method] = field(default_factory=list)
    methods_source: str = ""
    comparison: dict | None = None
    comparison_path: Path | None = None
    run_width: float | None = None
    evals: list[tuple[Path, dict]] = field(default_factory=list)
    certify: list[tuple[Path, dict]] = field(default_factory=list)
    codegen: dict | None = None
    codegen_path: Path | None = None
    class_names: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def widths(self) -> list[float]:
        return sorted({m.width for m in self.methods if m.width is not None})


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DitmosError(f"{path}: cannot read it as JSON ({err})") from err


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def accuracy_stats(row: dict, key: str = "test") -> tuple[float | None, float | None, int]:
    """(mean, std, number of seeds) of ``row[f"{key}_accuracy"]``.

    A comparison over several seeds stores ``{key}_acc_mean``,
    ``{key}_acc_std`` and ``seeds`` (the list of seeds, or their number) beside
    the single-seed key; those aggregates win when present."""
    mean = _number(row.get(f"{key}_acc_mean"))
    if mean is not None:
        seeds = row.get("seeds")
        n = len(seeds) if isinstance(seeds, (list, tuple, dict)) else int(seeds) if _number(seeds) is not None else 1
        return mean, _number(row.get(f"{key}_acc_std")), max(n, 1)
    # compare.json version 2: `<key>_accuracy` is the mean over `n_seeds`
    n = row.get("n_seeds")
    n = int(n) if _number(n) is not None else 1
    std = _number(row.get(f"{key}_accuracy_std")) if n > 1 else None
    return _number(row.get(f"{key}_accuracy")), std, max(n, 1)


def _by_width(results: dict) -> list[dict]:
    return sorted(results.values(), key=lambda r: _number(r.get("width")) or 0.0)


def _methods_of_comparison(comp: dict) -> list[Method]:
    out = []
    results = _by_width(comp["results"])
    for res in results:
        w = _number(res.get("width"))
        for name, r in (res.get("methods") or {}).items():
            if not isinstance(r, dict):
                continue
            acc, std, n = accuracy_stats(r)
            out.append(
                Method(
                    name,
                    acc,
                    _number(r.get("macs")),
                    _number(r.get("flash_bytes")),
                    _number(r.get("params")),
                    w,
                    std,
                    n,
                )
            )
            if name == "ditmos":
                acc, std, n = accuracy_stats(r, "union_test")
                if acc is not None:
                    out.append(Method("union", acc, width=w, accuracy_std=std, seeds=n))
    return out


def _result_run_dir(cpath: Path, res: dict) -> Path | None:
    rd = res.get("run_dir")
    return (cpath.parent / rd).resolve() if isinstance(rd, str) and rd else None


def find_comparison(path: Path) -> tuple[Path, dict] | None:
    """The ``compare.json`` that belongs to ``path`` (a run or comparison directory).

    ``path/compare.json`` (``path`` is the comparison directory) and
    ``path/compare/compare.json`` (what ``ditmos train --out RUN --compare``
    writes) belong to it by their place; one found one or two folders up only
    when one of its results is ``path``'s run."""
    path = Path(path)
    for cand in (path / "compare.json", path / "compare" / "compare.json"):
        if cand.is_file():
            return cand, _load_comparison(cand)
    me = path.resolve()
    for cand in (path.parent / "compare.json", path.parent.parent / "compare.json"):
        if not cand.is_file():
            continue
        comp = _load_comparison(cand)
        if any(_result_run_dir(cand, res) == me for res in comp["results"].values()):
            return cand, comp
    return None


def _load_comparison(path: Path) -> dict:
    comp = _load(path)
    ok = (
        isinstance(comp, dict)
        and str(comp.get("format", "")).startswith("ditmos-compare/")
        and isinstance(comp.get("results"), dict)
        and all(isinstance(r, dict) and isinstance(r.get("methods", {}), dict) for r in comp["results"].values())
    )
    if not ok:
        raise DitmosError(
            f"{path}: not a comparison written by `ditmos train --compare` "
            "(expected format ditmos-compare/1 with results per width)"
        )
    return comp


def _resolve_run(path: Path, found: tuple[Path, dict] | None) -> Path:
    """The run whose metrics the page shows: ``path`` itself, or, for a
    comparison directory, its run at the largest width."""
    if (path / "metrics.json").is_file() or found is None or found[0].parent != path:
        return path
    for res in reversed(_by_width(found[1]["results"])):
        rd = _result_run_dir(found[0], res)
        if rd is not None and (rd / "metrics.json").is_file():
            return rd
    return path


def collect(run_dir: str | Path, evals: list[str | Path] = (), build_dir: str | Path | None = None) -> ReportData:
    path = Path(run_dir)
    if not path.is_dir():
        raise DitmosError(f"{path}: no such run directory")
    found = find_comparison(path)
    run_dir = _resolve_run(path, found)
    data = ReportData(run_dir=run_dir, title="")
    mpath = run_dir / "metrics.json"
    config = _load(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    if mpath.is_file():
        data.metrics = read_json(mpath)
        data.class_names = list(data.metrics.get("class_names") or [])
    elif found is None:
        data.missing.append(f"{mpath} (float accuracies, baselines): train the run first")
    else:
        data.missing.append(f"{mpath}: the comparison's run has no metrics (routing, confusion)")
    data.run_width = _number(config.get("width"))
    spec = (data.metrics or {}).get("dataset") or config.get("dataset") or (found[1].get("dataset") if found else None)
    data.dataset = dataset_short_name(spec)
    data.title = f"{data.dataset}: DiTMoS report" if data.dataset else "DiTMoS report"

    for cpath in sorted((run_dir / "certify").glob("*.json")):
        res = _load(cpath)
        if (
            res.get("format") == "ditmos-certify/1"
            and isinstance(res.get("summary"), dict)
            and res.get("split", "test") == "test"  # validation files choose settings
        ):
            data.certify.append((cpath, res))

    if found is not None:
        data.comparison_path, data.comparison = found
        data.methods = _methods_of_comparison(data.comparison)
        data.methods_source = str(data.comparison_path)
        if not data.methods:
            data.missing.append(f"{data.comparison_path}: the comparison has no results yet")
    if not data.methods and data.metrics is not None:
        data.methods_source = f"{mpath}"
        t = (data.metrics.get("test") or {}).get("float") or {}
        model = data.metrics.get("model") or {}
        w = data.run_width
        if t.get("ditmos") is not None:
            data.methods.append(
                Method(
                    "ditmos",
                    t["ditmos"],
                    model.get("macs"),
                    model.get("flash_weight_bytes"),
                    model.get("params"),
                    width=w,
                )
            )
        if t.get("union") is not None:
            data.methods.append(Method("union", t["union"], width=w))
        for name, acc in (t.get("baselines") or {}).items():
            data.methods.append(Method(name, acc.get("accuracy") if isinstance(acc, dict) else acc, width=w))
    if found is None:
        data.missing.append(
            "comparison (ablations, baselines' MACs and flash, other widths): none found for "
            "this run (`ditmos train ... --compare` writes it to RUN_DIR/compare/compare.json)"
        )
    elif not any(m.kind == "ablation" for m in data.methods):
        data.missing.append(f"ablations: {data.comparison_path} has none (trained with ablations switched off)")
    seeds = (data.comparison or {}).get("seeds")
    seed_text = (
        f"seeds {', '.join(str(s) for s in seeds)}"
        if isinstance(seeds, list)
        else f"seed {(data.comparison or config).get('seed', '?')}"
    )
    preset = (data.comparison or config).get("preset")
    parts = [
        f"preset {preset}" if preset else None,
        seed_text if (data.comparison or config) else None,
        f"widths {', '.join(width_tag(w) for w in data.widths)}" if data.widths else None,
    ]
    what = (
        "DiTMoS (selector + one of K classifiers) against its ablations and baselines"
        if data.comparison
        else "DiTMoS (selector + one of K classifiers)"
    )
    data.subtitle = "; ".join([what] + [p for p in parts if p])

    for e in evals:
        e = Path(e)
        rp = e / "report.json"
        if not rp.is_file():
            raise DitmosError(f"{rp}: missing; run `ditmos evaluate --out {e}` first")
        data.evals.append((e, read_json(rp)))
    if not data.evals:
        data.missing.append("on-device results: pass --eval EVAL_DIR (from `ditmos evaluate`)")

    builds = [Path(build_dir)] if build_dir else []
    for _, rep in data.evals:
        b = (rep.get("meta") or {}).get("build_dir")
        if b and b != "None":
            builds.append(Path(b))
    for b in builds:
        cg = find_codegen_manifest(b)
        if cg is not None:
            data.codegen_path, data.codegen = cg
            break
    if data.codegen is None:
        data.missing.append(
            "memory plan: no codegen manifest found (pass --build BUILD_DIR, or "
            "an --eval whose build directory still exists)"
        )
    if not data.class_names and data.evals:
        data.class_names = list(data.evals[0][1].get("class_names") or [])
    return data
