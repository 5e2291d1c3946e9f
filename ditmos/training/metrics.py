"""``metrics.json`` of a run.

Stable keys (scripts read them; accuracies in 0..1):
``metrics["test"]["float"]["ditmos"]``, ``["test"]["float"]["union"]``,
``["test"]["float"]["baselines"][NAME]``, ``metrics["model"]["params"]``
(deployed parameters of selector + K classifiers, BN folded) and
``metrics["model"]["macs"]`` (MACs per inference: selector + one classifier,
worst case).  The same block exists under ``"val"``.
"""

from __future__ import annotations

import numpy as np

from ditmos.models.arch import costs


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def route_constants(cls_logits_train: np.ndarray, num_classes: int) -> list[int]:
    """The class each classifier predicts most often on the training split."""
    preds = cls_logits_train.argmax(2)
    return [int(np.bincount(preds[:, k], minlength=num_classes).argmax()) for k in range(preds.shape[1])]


def collapse_diagnostics(route_logits, cls_logits, y, constants: list[int], num_classes: int) -> dict:
    """How much the classifiers add beyond the selector's routing.

    ``route_constant_accuracy``: accuracy when classifier k is replaced by the
    constant class it predicts most often on the training split.  When it is
    close to the DiTMoS accuracy the selector is doing all the classifying
    (the collapse: class-pure clusters, constant classifiers, union ~100%).
    ``classifier_top_class_share``: per classifier, the share of its
    predictions that go to its most frequent class (1.0 = constant).
    """
    route = route_logits.argmax(1)
    preds = cls_logits.argmax(2)
    const = np.asarray(constants)[route]
    share = [float(np.bincount(preds[:, k], minlength=num_classes).max() / len(preds)) for k in range(preds.shape[1])]
    return {"route_constant_accuracy": float((const == y).mean()), "classifier_top_class_share": share}


def split_metrics(route_logits, cls_logits, strong_logits, y, num_classes: int) -> dict:
    K = cls_logits.shape[1]
    route = route_logits.argmax(1)
    preds = cls_logits.argmax(2)
    right = preds == y[:, None]
    chosen = preds[np.arange(len(y)), route]
    conf = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(conf, (y, chosen), 1)
    per_class = [float(conf[c, c] / conf[c].sum()) if conf[c].sum() else None for c in range(num_classes)]
    ens = _softmax(cls_logits).mean(1).argmax(1)
    hist = np.bincount(route, minlength=K)
    return {
        "ditmos": float((chosen == y).mean()),
        "union": float(right.any(1).mean()),
        "classifiers": [float(v) for v in right.mean(0)],
        "baselines": {
            "strong": float((strong_logits.argmax(1) == y).mean()),
            "ensemble_average": float((ens == y).mean()),
        },
        # of the samples routed to k, the share classifier k gets right
        "classifier_accuracy_on_routed": [float(right[route == k, k].mean()) if hist[k] else None for k in range(K)],
        "routing_histogram": [int(v) for v in hist],
        "routing_to_a_right_classifier": float(right[np.arange(len(y)), route].mean()),
        "per_class": per_class,
        "confusion_matrix": conf.tolist(),
        "samples": int(len(y)),
    }


def compute_metrics(tr, data: dict, input_shape, keras_params: dict) -> dict:
    ncls = data["num_classes"]
    out = {"format": "ditmos-metrics/1", "dataset": tr.cfg["dataset"], "class_names": data["class_names"]}
    train_r, train_lg = tr.predict(data["x_train"])
    constants = route_constants(train_lg, ncls)
    for split in ("val", "test"):
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        r, lg = tr.predict(x)
        s_lg, _ = tr.strong_predict(x)
        out[split] = {"float": split_metrics(r, lg, s_lg, y, ncls)}
        out[split]["float"]["collapse"] = collapse_diagnostics(r, lg, y, constants, ncls)
    c = costs(tr.arch, input_shape, ncls)
    hist = np.asarray(out["test"]["float"]["routing_histogram"], np.float64)
    cls_macs = np.full(tr.arch.K, c["classifier"]["macs"], np.float64)  # same shape for all k
    avg = c["selector"]["macs"] + float((hist / max(hist.sum(), 1)) @ cls_macs)
    out["model"] = {
        "params": int(c["ditmos"]["params"]),
        "macs": int(c["ditmos"]["macs"]),
        "macs_worst_case": int(c["selector"]["macs"] + cls_macs.max()),
        "macs_average_test_routing": avg,
        "flash_weight_bytes": int(c["ditmos"]["flash_bytes"]),
        "K": tr.arch.K,
        "per_model": c,
        "keras_params_unfolded": keras_params,
        "params_note": "deployed parameters: conv/dense weights plus one bias per "
        "filter (batch norm folded); flash bytes count int8 weights and "
        "int32 biases",
    }
    out["clusters"] = tr.progress.get("cluster_info")
    out["clusters"]["method"] = tr.cfg["split"]["method"]
    right = train_lg.argmax(2) == data["y_train"][:, None]
    out["train"] = {
        "float": {
            "ditmos": float((train_lg.argmax(2)[np.arange(len(right)), train_r.argmax(1)] == data["y_train"]).mean()),
            "union": float(right.any(1).mean()),
            "classifiers": [float(v) for v in right.mean(0)],
        }
    }
    out["selection"] = tr.progress.get("best")
    out["history"] = [
        {k: h[k] for k in ("stage", "epoch", "loss") if k in h}
        | ({"val_ditmos": h["val"]["ditmos"], "val_union": h["val"]["union"]} if "val" in h else {})
        | ({"val_acc": h["val_acc"]} if "val_acc" in h else {})
        for h in tr.progress.get("history", [])
    ]
    return out
