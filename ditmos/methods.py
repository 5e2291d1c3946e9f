"""Names of the methods compared in a run (DiTMoS, its ablations, the
baselines) and how tables, plots and reports label them: one table for every
stage that prints them."""

from __future__ import annotations

LABELS = {
    "ditmos": "DiTMoS",
    "union": "union (oracle upper bound)",
    "ablation_random_split": "abl.: random split",
    "ablation_no_adversarial": "abl.: no adversarial",
    "ablation_no_aggregation": "abl.: no aggregation",
    "ablation_no_generalist": "abl.: no generalist (heads from scratch)",
    "ablation_no_fallback": "abl.: generalist not a candidate",
    "ablation_kmeans_split": "abl.: KMeans split, best-classifier routing",
    "ablation_no_overlap": "abl.: class-pure head pre-training",
    "ablation_no_restarts": "abl.: one generalist start",
    "ablation_distill": "abl.: distilled generalist",
    "ablation_weight_average": "abl.: weight-averaged generalist",
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
    """The printed label of method ``name`` (unknown names: underscores to spaces)."""
    return LABELS.get(name, name.replace("_", " "))


# --------------------------------------------------------------------------- #
# Deployable methods of a comparison: where each one's run directory is
# --------------------------------------------------------------------------- #

DEFAULT_METHOD = "ditmos"
#: Baselines that are one network (deployed as the ``network`` model kind).
NETWORK_METHODS = ("weak_equal_macs", "equal_params", "early_exit")
#: Rows of a comparison that cannot be put on the device, and why.
NOT_DEPLOYABLE = {
    "union": "an oracle (it needs the label)",
    "ensemble_average": "runs all K classifiers and averages them (not a deployable model kind)",
    "soft_moe": "its gate multiplies expert outputs (an operator the firmware lacks)",
    "strong": "the teacher model; it is not a comparison trial",
}


def deployable(name: str) -> bool:
    return (
        name == DEFAULT_METHOD
        or name in NETWORK_METHODS
        or name.startswith("ablation_")
        or name.startswith("candidate_")
    )


def compare_dir_of(run_dir):
    """``RUN/compare`` (or RUN itself when it is a comparison directory), or None."""
    from pathlib import Path

    run_dir = Path(run_dir)
    for d in (run_dir / "compare", run_dir):
        if (d / "compare.json").is_file():
            return d
    return None


def method_run_dir(run_dir, method: str = DEFAULT_METHOD, *, width: float | None = None):
    """The run directory holding ``method`` of RUN's comparison: RUN itself for
    ``ditmos``; ``RUN/compare/width_<w>/<method>_s<seed>`` otherwise (a DiTMoS
    run for ablations and candidates, a network run for the single and
    early-exit CNNs), at RUN's width when the method was trained there, else at
    the largest width that has it.  Raises DitmosError with the choices."""
    import json
    from pathlib import Path

    from ditmos.errors import DitmosError

    run_dir = Path(run_dir)
    if method == DEFAULT_METHOD and width is None:
        return run_dir
    if method in NOT_DEPLOYABLE:
        raise DitmosError(f"method '{method}' cannot be deployed: {NOT_DEPLOYABLE[method]}")
    cdir = compare_dir_of(run_dir)
    if cdir is None:
        raise DitmosError(
            f"{run_dir} has no comparison (compare/compare.json); train it with "
            f"`ditmos train --compare` to deploy method '{method}'"
        )
    comp = json.loads((cdir / "compare.json").read_text())
    results = comp.get("results") or {}
    have = {w: res for w, res in results.items() if method in (res.get("methods") or {})}
    if not have:
        names = sorted({n for res in results.values() for n in res.get("methods") or {} if deployable(n)})
        raise DitmosError(
            f"method '{method}' is not in {cdir / 'compare.json'}; deployable "
            f"methods there: {', '.join(names) or 'none'}"
        )
    if not deployable(method):
        raise DitmosError(f"method '{method}' cannot be deployed")
    if width is not None:
        tag = next((w for w in have if float(w) == float(width)), None)
        if tag is None:
            raise DitmosError(
                f"method '{method}' was not trained at width {width:g} (widths: {', '.join(sorted(have, key=float))})"
            )
    else:
        own = None
        cfg = run_dir / "config.json"
        if cfg.is_file():
            own = json.loads(cfg.read_text()).get("width")
        tag = next((w for w in have if own is not None and float(w) == float(own)), max(have, key=float))
    res = have[tag]
    seed = comp.get("seed", 0)
    if method == DEFAULT_METHOD:
        path = (cdir / res["run_dir"]).resolve()
    else:
        path = cdir / f"width_{float(tag):g}" / f"{method}_s{seed}"
    if not (path / "export" / "export.json").is_file():
        raise DitmosError(
            f"method '{method}' (width {float(tag):g}, seed {seed}) has no saved "
            f"model in {path}: comparisons made before models were saved "
            f"for deployment must train that trial again (delete "
            f"{cdir / 'trials' / f'w{float(tag):g}_s{seed}_{method}.json'} and "
            f"run the comparison again)"
        )
    return path
