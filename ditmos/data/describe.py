"""A JSON-ready description of a dataset (``ditmos data info``)."""

from __future__ import annotations

import numpy as np

from ditmos.data.core import SPLIT_NAMES, Dataset, make_splits
from ditmos.errors import DitmosError


def describe(ds: Dataset, seed: int = 0) -> dict:
    """Classes, shapes, per-split counts (for ``make_splits(ds, seed)``), subjects, provenance.

    When no split is possible (too few subjects or samples) ``splits`` holds
    ``{"error": message}`` instead of the counts.
    """
    per_split: dict = {}
    try:
        splits = make_splits(ds, seed)
    except DitmosError as err:
        splits, per_split = None, {"error": str(err)}
    for name in SPLIT_NAMES if splits is not None else ():
        idx = getattr(splits, name)
        entry = {
            "samples": int(idx.size),
            "per_class": {c: int(n) for c, n in zip(ds.class_names, np.bincount(ds.y[idx], minlength=ds.num_classes))},
        }
        if ds.groups is not None:
            entry["subjects"] = [int(g) for g in np.unique(ds.groups[idx])]
        per_split[name] = entry
    if ds.split is not None:
        split_rule = "predefined by the dataset (honoured exactly)"
    elif ds.groups is not None:
        split_rule = "subject-disjoint, seeded"
    else:
        split_rule = "stratified by class, seeded (no subject ids)"
    info = {k: v for k, v in ds.info.items()}
    return {
        "name": ds.name,
        "num_samples": len(ds),
        "input_shape": list(ds.input_shape),
        "dtype": str(ds.X.dtype),
        "num_classes": ds.num_classes,
        "class_names": list(ds.class_names),
        "class_counts": {c: int(n) for c, n in zip(ds.class_names, np.bincount(ds.y, minlength=ds.num_classes))},
        "channel_names": list(ds.channel_names),
        "subjects": None if ds.groups is None else int(np.unique(ds.groups).size),
        "split_seed": seed,
        "split_rule": split_rule,
        "splits": per_split,
        "info": info,
    }
