"""Write ``models/`` (float Keras, open batch) and ``export/`` (fixed batch 1).

The export models are rebuilt from the trained bank weights and checked
against the training graph on validation windows before they are written.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ditmos.models import keras_models as km
from ditmos.training.checkpoint import atomic_write_json

_TOL = 1e-4


def _save(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def export_models(tr, run_dir: Path, input_shape, class_names) -> dict:
    """Save all Keras models; returns Keras parameter counts (BN not folded)."""
    arch, ncls = tr.arch, tr.num_classes
    models_dir, export_dir = run_dir / "models", run_dir / "export"
    models_dir.mkdir(parents=True, exist_ok=True)
    export_dir.mkdir(parents=True, exist_ok=True)
    counts = {}

    x = tr.x_val[:8] if len(tr.x_val) >= 1 else tr.x_train[:8]
    r_ref, lg_ref = tr.predict(x)

    for batch, folder in ((None, models_dir), (1, export_dir)):
        sel = km.selector_from_bank(arch, input_shape, tr.selector, batch)
        outs = [sel({"window": x[i : i + 1]}) for i in range(len(x))] if batch == 1 else [sel({"window": x})]
        route = np.concatenate([o["route"].numpy() for o in outs])
        _check(route, r_ref, f"{folder.name}/selector route")
        _save(sel, folder / "selector.keras")
        counts["selector"] = int(sel.count_params())
        for k in range(arch.K):
            cls = km.classifier_from_bank(arch, input_shape, ncls, tr.classifiers, k, batch)
            got = []
            for o, i in zip(outs, range(len(outs))):
                xi = x[i : i + 1] if batch == 1 else x
                feeds = {"window": xi}
                feeds.update({f"sel_feat_{b}": np.asarray(o[f"feat_{b}"]) for b in arch.shared_blocks})
                got.append(cls(feeds)["logits"].numpy())
            _check(np.concatenate(got), lg_ref[:, k], f"{folder.name}/classifier_{k}")
            _save(cls, folder / f"classifier_{k}.keras")
            counts["classifier"] = int(cls.count_params())
        if batch is None:
            strong = km.strong_from_bank(arch, input_shape, ncls, tr.strong)
            _save(strong, folder / "strong.keras")
            counts["strong"] = int(strong.count_params())
    atomic_write_json(
        export_dir / "export.json",
        {
            "K": arch.K,
            "shared_blocks": list(arch.shared_blocks),
            "num_classes": ncls,
            "input_shape": [int(v) for v in input_shape],
            "class_names": list(class_names),
            "concat_order": "own_then_selector",
            "feature_shapes": {
                f"feat_{b}": [int(v) for v in outs[0][f"feat_{b}"].shape[1:]] for b in arch.shared_blocks
            },
        },
    )
    return counts


def _check(got: np.ndarray, want: np.ndarray, what: str) -> None:
    err = float(np.abs(got - want).max())
    if not err <= _TOL * max(1.0, float(np.abs(want).max())):
        raise RuntimeError(f"exported {what} differs from the trained graph by {err:g}")
