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
    "ablation_distill": "abl.: distilled generalist",
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
