"""A single network of the comparison (a single CNN, or a multi-exit CNN) saved
as a run directory, so that ``ditmos quantize``, ``ditmos build`` and
``ditmos evaluate`` take it exactly like a DiTMoS run (docs/artefacts.md §2b).

Layout (the files a DiTMoS run has, with one network instead of a selector
and K classifiers)::

    RUN_DIR/
      config.json, splits.npz, normalization.json   as a DiTMoS run (same split and normalisation)
      metrics.json     {"model": {"kind": "network", "method", "macs", "params", ...},
                        "val"/"test": {"float": {"network": accuracy}}}
      export/
        network.keras  input "window" [1,T,C]; outputs "logits" (single CNN) or
                       "exit_1" .. "exit_D" (logits of each exit, the last is the final head)
        export.json    {"kind": "network", "method", "num_classes", "input_shape",
                        "class_names", "outputs": [...], "exit_threshold": t or null,
                        "exit_thresholds": [t_1, ..., t_(D-1)] or null,
                        "exit_macs": [...] or null}

A multi-exit network leaves at the first exit i whose largest softmax
probability is at least its threshold (the last exit always answers):
``exit_thresholds[i]`` (null: exit i never answers) when the thresholds
differ per exit, else the shared ``exit_threshold``.
The directory is written into a temporary sibling and renamed into place, so
it is either complete or absent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ditmos.errors import DitmosError
from ditmos.jsonio import replaced_dir
from ditmos.models.keras_models import with_batch

KIND = "network"
MODEL_FILE = "network.keras"


def _finite_or_none(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def write_network_run(
    run_dir,
    *,
    model,
    method: str,
    config: dict,
    splits,
    normalizer,
    class_names,
    input_shape,
    result: dict | None = None,
) -> Path:
    """Write ``run_dir`` (see the module docstring) for the trained Keras
    ``model`` whose outputs are ``logits`` or ``exit_1`` .. ``exit_D``.
    ``result`` is the method's comparison row (``val_accuracy``,
    ``test_accuracy``, ``macs``, ``params``, ``threshold``, ``exit_macs``, ...)."""
    run_dir = Path(run_dir)
    with replaced_dir(run_dir) as tmp:
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        splits.save(tmp / "splits.npz")
        normalizer.save(tmp / "normalization.json")
        write_network_export(
            tmp, model=model, method=method, class_names=class_names, input_shape=input_shape, result=result
        )
    return run_dir


def write_network_export(run_dir, *, model, method: str, class_names, input_shape, result: dict | None = None) -> None:
    """``export/`` and ``metrics.json`` of a network run, into ``run_dir``
    (which already holds, or will hold, config, splits and normalisation): what
    ``ditmos quantize`` reads.  Used by :func:`write_network_run` and by robust
    training (docs/robustness.md), whose runs are network runs too."""
    from ditmos.quantize.convert import output_names

    run_dir = Path(run_dir)
    result = dict(result or {})
    outs = output_names(model)
    multi = len(outs) > 1
    if multi and outs != [f"exit_{i}" for i in range(1, len(outs) + 1)]:
        raise DitmosError(f"{method}: a multi-exit network's outputs must be exit_1 .. exit_D, got {outs}")
    if not multi and outs != ["logits"]:
        raise DitmosError(f"{method}: a single network's output must be 'logits', got {outs}")
    threshold = result.get("threshold") if multi else None
    if multi and threshold is None:
        raise DitmosError(
            f"{method}: a multi-exit network needs the exit threshold chosen on validation ('threshold' in its result)"
        )
    per_exit = None
    if multi and isinstance(threshold, (list, tuple)):
        from ditmos.training.baselines import exit_thresholds

        per_exit = [_finite_or_none(t) for t in exit_thresholds(threshold, len(outs) - 1)]
        threshold = float("nan")  # no shared threshold
    export_info = {
        "kind": KIND,
        "method": method,
        "num_classes": len(class_names),
        "input_shape": [int(v) for v in input_shape],
        "class_names": [str(c) for c in class_names],
        "outputs": outs,
        # +inf (never leave early) is stored as null: JSON has no infinity.
        "exit_threshold": _finite_or_none(threshold) if multi and per_exit is None else None,
        "exit_threshold_never": bool(multi and per_exit is None and not math.isfinite(float(threshold))),
        "exit_thresholds": per_exit,
        "exit_macs": [int(m) for m in result["exit_macs"]] if multi and "exit_macs" in result else None,
    }
    metrics = {
        "model": {
            "kind": KIND,
            "method": method,
            **{
                k: result[k]
                for k in ("macs", "params", "flash_bytes", "max_macs", "exit_macs", "exit_fractions", "spec")
                if k in result
            },
        },
        "val": {"float": {"network": result.get("val_accuracy")}},
        "test": {"float": {"network": result.get("test_accuracy")}},
    }
    (run_dir / "export").mkdir(parents=True, exist_ok=True)
    with_batch(model, 1).save(run_dir / "export" / MODEL_FILE)
    (run_dir / "export" / "export.json").write_text(json.dumps(export_info, indent=2) + "\n")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def is_network_run(run_dir) -> bool:
    path = Path(run_dir) / "export" / "export.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("kind") == KIND
    except (OSError, json.JSONDecodeError):
        return False
