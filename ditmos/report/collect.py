"""Gather what a report can show from the artefacts that exist, and say what is missing.

Sources (each optional except the run directory):

* ``RUN_DIR/metrics.json``: float accuracies of DiTMoS, the union and the
  baselines trained with the run, routing histogram, confusion matrix, costs;
* a comparison (``ditmos train --compare``) containing the run:
  ``compare.json`` two folders up (``OUT/width_<w>/ditmos``) or beside the
  run: accuracy, MACs and flash bytes of DiTMoS, its ablations and baselines;
* evaluation directories (``ditmos evaluate``): ``report.json``;
* the codegen manifest of the build an evaluation used (or ``--build``):
  per-layer names and the arena plan (offset, size and live range per tensor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ditmos.errors import DitmosError

_LABELS = {
    "ditmos": "DiTMoS",
    "union": "union (oracle)",
    "ablation_random_split": "abl.: random split",
    "ablation_no_adversarial": "abl.: no adversarial",
    "ablation_no_aggregation": "abl.: no aggregation",
    "weak_equal_macs": "CNN, equal MACs",
    "equal_params": "CNN, equal params",
    "strong": "strong model",
    "ensemble": "ensemble of K",
    "ensemble_average": "ensemble of K",
    "best_single_classifier": "best single classifier",
    "soft_moe": "soft-gated MoE",
    "early_exit": "early-exit CNN",
}


def label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " "))


def kind_of(name: str) -> str:
    if name == "ditmos":
        return "ditmos"
    if name == "union":
        return "oracle"
    if name.startswith("ablation_"):
        return "ablation"
    return "baseline"


@dataclass
class Method:
    name: str
    accuracy: float | None
    macs: float | None = None
    flash_bytes: float | None = None
    params: float | None = None

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
    metrics: dict | None = None
    methods: list[Method] = field(default_factory=list)
    methods_source: str = ""
    evals: list[tuple[Path, dict]] = field(default_factory=list)
    certify: list[tuple[Path, dict]] = field(default_factory=list)
    codegen: dict | None = None
    codegen_path: Path | None = None
    class_names: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DitmosError(f"{path}: cannot read it as JSON ({err})") from err


def _find_compare(run_dir: Path) -> tuple[Path, dict] | None:
    for cand in (run_dir / "compare.json", run_dir.parent / "compare.json",
                 run_dir.parent.parent / "compare.json"):
        if not cand.is_file():
            continue
        comp = _load(cand)
        for res in (comp.get("results") or {}).values():
            rd = res.get("run_dir")
            if rd and (cand.parent / rd).resolve() == run_dir.resolve():
                return cand, res
    return None


def find_codegen_manifest(build_dir: Path) -> tuple[Path, dict] | None:
    """The codegen manifest (``format: ditmos-codegen/1``) of a build directory."""
    if not build_dir.is_dir():
        return None
    top = build_dir / "manifest.json"
    if top.is_file():
        m = _load(top)
        if str(m.get("format", "")).startswith("ditmos-codegen"):
            return top, m
        if isinstance(m.get("codegen"), dict) and m["codegen"].get("tensors"):
            return top, m["codegen"]
    for cand in sorted(build_dir.glob("*/manifest.json")) + sorted(build_dir.glob("*/*/manifest.json")):
        m = _load(cand)
        if str(m.get("format", "")).startswith("ditmos-codegen"):
            return cand, m
    return None


def collect(run_dir: str | Path, evals: list[str | Path] = (),
            build_dir: str | Path | None = None) -> ReportData:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DitmosError(f"{run_dir}: no such run directory")
    data = ReportData(run_dir=run_dir, title=run_dir.resolve().name)
    mpath = run_dir / "metrics.json"
    if mpath.is_file():
        data.metrics = _load(mpath)
        data.class_names = list(data.metrics.get("class_names") or [])
        data.title = f"{data.metrics.get('dataset', '')} run {run_dir.resolve().name}".strip()
    else:
        data.missing.append(f"{mpath} (float accuracies, baselines): train the run first")

    for cpath in sorted((run_dir / "certify").glob("*.json")):
        res = _load(cpath)
        if res.get("format") == "ditmos-certify/1" and isinstance(res.get("summary"), dict):
            data.certify.append((cpath, res))

    comp = _find_compare(run_dir)
    if comp is not None:
        cpath, res = comp
        data.methods_source = f"{cpath} (width {res.get('width')})"
        for name, r in (res.get("methods") or {}).items():
            data.methods.append(Method(name, r.get("test_accuracy"), r.get("macs"),
                                       r.get("flash_bytes"), r.get("params")))
        if res.get("methods", {}).get("ditmos", {}).get("union_test_accuracy") is not None:
            data.methods.append(Method("union", res["methods"]["ditmos"]["union_test_accuracy"]))
    elif data.metrics is not None:
        data.methods_source = f"{mpath}"
        t = (data.metrics.get("test") or {}).get("float") or {}
        model = data.metrics.get("model") or {}
        if t.get("ditmos") is not None:
            data.methods.append(Method("ditmos", t["ditmos"], model.get("macs"),
                                       model.get("flash_weight_bytes"), model.get("params")))
        if t.get("union") is not None:
            data.methods.append(Method("union", t["union"]))
        for name, acc in (t.get("baselines") or {}).items():
            data.methods.append(Method(name, acc.get("accuracy") if isinstance(acc, dict) else acc))
        data.missing.append(
            "costs (MACs, flash) of the ablations and baselines: no comparison contains this run "
            "(`ditmos train --compare` writes compare.json)")
    if not any(m.kind == "ablation" for m in data.methods):
        data.missing.append("ablations: none found for this run (`ditmos train --compare`)")

    for e in evals:
        e = Path(e)
        rp = e / "report.json"
        if not rp.is_file():
            raise DitmosError(f"{rp}: missing; run `ditmos evaluate --out {e}` first")
        data.evals.append((e, _load(rp)))
    if not data.evals:
        data.missing.append("on-device results: pass --eval EVAL_DIR (from `ditmos evaluate`)")

    builds = [Path(build_dir)] if build_dir else []
    for _, rep in data.evals:
        b = (rep.get("meta") or {}).get("build_dir")
        if b and b != "None":
            builds.append(Path(b))
    for b in builds:
        found = find_codegen_manifest(b)
        if found is not None:
            data.codegen_path, data.codegen = found
            break
    if data.codegen is None:
        data.missing.append("memory plan: no codegen manifest found (pass --build BUILD_DIR, or "
                            "an --eval whose build directory still exists)")
    if not data.class_names and data.evals:
        data.class_names = list(data.evals[0][1].get("class_names") or [])
    return data
