"""``ditmos quantize`` for the ``network`` model kind: one CNN (a single
network of the comparison) or a multi-exit CNN, from a network run directory
(:mod:`ditmos.training.network_run`) to ``RUN_DIR/int8/``.

The network is converted as one full-int8 TFLite model.  A multi-exit
network gets, beside each intermediate exit's logits ``exit_i``, its
confidence ``exit_i_conf`` = softmax of those logits (TFLite's int8 softmax,
scale 1/256, zero point -128), so the exit test is an integer comparison in
that output's own domain (:func:`ditmos.quantize.reference.exit_threshold_q`)
that the host reference and the generated C run identically.  The manifest is
the DiTMoS one (docs/artefacts.md §3) with ``"kind": "network"``, one
sub-model ``network``, no links, and ``exits`` / ``final``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ditmos import __version__
from ditmos.errors import DitmosError
from ditmos.jsonio import read_json, replaced_dir
from ditmos.quantize import qmath
from ditmos.quantize.reference import MANIFEST_FORMAT, NetworkReference, exit_taken, exit_threshold_q

CONF_SUFFIX = "_conf"


def read_network_export(export_dir: Path) -> dict:
    info = read_json(export_dir / "export.json", "written by `ditmos train --compare`")
    for key in ("outputs", "num_classes", "input_shape", "class_names"):
        if key not in info:
            raise DitmosError(f"{export_dir / 'export.json'}: missing key {key!r}")
    if not (export_dir / "network.keras").is_file():
        raise DitmosError(f"{export_dir}: incomplete network run, missing network.keras")
    return info


def deploy_model(model, info: dict):
    """The model converted: outputs by name, plus a softmax confidence output
    after every intermediate exit."""
    import keras

    from ditmos.quantize.convert import output_names

    names = output_names(model)
    if names != list(info["outputs"]):
        raise DitmosError(f"network.keras has outputs {names}, export.json says {info['outputs']}")
    outs = dict(zip(names, model.outputs))
    if len(names) > 1:
        for name in names[:-1]:
            outs[name + CONF_SUFFIX] = keras.layers.Softmax(name=name + CONF_SUFFIX)(outs[name])
    return keras.Model(model.inputs, outs, name=f"{model.name}_deploy")


def float_exit_rule(outputs: dict[str, np.ndarray], info: dict) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, exit index) of the float network with its float rule."""
    names = list(info["outputs"])
    if len(names) == 1:
        return np.argmax(outputs[names[0]], axis=1), np.zeros(len(outputs[names[0]]), np.int64)
    from ditmos.training.baselines import apply_threshold

    ts = [float("inf") if t is None else float(t) for t in export_thresholds(info)]
    return apply_threshold([outputs[n] for n in names], ts, [0] * len(names))


def export_thresholds(info: dict) -> list[float | None]:
    """The float confidence threshold of every early exit of an export.json
    (None: that exit never answers): its per-exit ``exit_thresholds`` when
    given, else the shared ``exit_threshold``."""
    n_early = len(info["outputs"]) - 1
    per = info.get("exit_thresholds")
    if per is not None:
        if len(per) != n_early:
            raise DitmosError(f"export.json: {len(per)} exit thresholds for {n_early} early exits")
        return [None if t is None else float(t) for t in per]
    shared = None if info.get("exit_threshold_never") else info.get("exit_threshold")
    return [None if shared is None else float(shared)] * n_early


def quantize_network_run(run_dir: Path, normalization: dict, data, *, calibration_idx, console) -> Path:
    """Convert, check and write ``RUN_DIR/int8``; record float vs int8 in metrics.json."""
    from ditmos.quantize.convert import convert_int8, float_outputs, load_keras_model, output_names
    from ditmos.quantize.tflite_model import check_firmware_ops, read_tflite

    export_dir = run_dir / "export"
    info = read_network_export(export_dir)
    model = deploy_model(load_keras_model(export_dir / "network.keras"), info)
    x_train = np.asarray(data.x_train, dtype=np.float32)
    x_calib = x_train[calibration_idx]
    console.log(f"calibrating on {len(x_calib)} training windows")
    console.log(f"converting the network ({info.get('method', 'network')})")
    blob = convert_int8(model, {"window": x_calib}, what="network")
    parsed = read_tflite(blob, what="network.tflite")
    check_firmware_ops(parsed, what=f"network ({export_dir / 'network.keras'})")
    names = output_names(model)
    exits_out = list(info["outputs"])
    win = parsed.input("window")
    thresholds = export_thresholds(info)
    exit_macs = info.get("exit_macs") or []
    exits = [
        {
            "logits": n,
            "confidence": n + CONF_SUFFIX,
            "threshold": thresholds[i],
            "threshold_q": exit_threshold_q(thresholds[i]),
            "macs": int(exit_macs[i]) if i < len(exit_macs) else None,
        }
        for i, n in enumerate(exits_out[:-1])
    ]
    digest = hashlib.sha256(blob).hexdigest()
    import tensorflow as tf

    manifest = {
        "format": MANIFEST_FORMAT,
        "kind": "network",
        "method": info.get("method"),
        "model_hash": hashlib.sha256(blob).hexdigest(),
        "K": len(exits_out),
        "num_classes": int(info["num_classes"]),
        "class_names": [str(c) for c in info["class_names"]],
        "input_shape": [int(v) for v in info["input_shape"]],
        "shared_blocks": [],
        "normalization": {
            "mean": [float(v) for v in normalization["mean"]],
            "std": [float(v) for v in normalization["std"]],
        },
        "input_quant": {"scale": win.scale, "zero_point": win.zero_point},
        "submodels": {
            "network": {
                "file": "network.tflite",
                "sha256": digest,
                "inputs": [win.to_manifest()],
                "outputs": [parsed.output(n).to_manifest() for n in names],
                "ops": [op.name for op in parsed.ops],
            }
        },
        "links": [],
        "exits": exits,
        "final": exits_out[-1],
        "final_macs": int(exit_macs[-1]) if exit_macs else int(parsed.macs),
        "macs": {"network": int(parsed.macs)},
        "route_floor": None,
        "calibration": {"split": "train", "samples": int(len(x_calib)), "seed": 0},
        "versions": {"ditmos": __version__, "tensorflow": tf.__version__},
    }
    for e in exits:
        q = parsed.output(e["confidence"])
        if not (abs(q.scale - 1.0 / 256.0) < 1e-9 and q.zero_point == -128):
            raise DitmosError(
                f"network: exit confidence {e['confidence']} is quantised "
                f"({q.scale}, {q.zero_point}), expected TFLite's int8 softmax "
                f"(1/256, -128)"
            )
    int8_dir = run_dir / "int8"
    with replaced_dir(int8_dir) as tmp:
        (tmp / "network.tflite").write_bytes(blob)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    console.log(f"wrote {int8_dir}")

    x_test = np.asarray(data.x_test, dtype=np.float32)
    y_test = np.asarray(data.y_test)
    fout = dict(zip(names, float_outputs(model, {"window": x_test})))
    pred_f, exit_f = float_exit_rule(fout, info)
    ref = NetworkReference(int8_dir)
    x_q = ref.quantize_input(x_test)
    with console.progress("int8 reference (TFLM) on the test split", len(x_test)) as advance:
        allout = ref.run_all(x_q, progress=advance)
    thr = [e["threshold_q"] for e in exits]
    exit_q = np.array(
        [exit_taken([allout[e["confidence"]][i] for e in exits], thr) for i in range(len(x_q))], dtype=np.int64
    )
    stacked = np.stack([allout[n] for n in exits_out])  # [E, N, classes]
    pred_q = qmath.argmax_first(stacked[exit_q, np.arange(len(x_q))], axis=1)
    E = len(exits_out)
    results = {
        "samples": int(len(y_test)),
        "float": {"network": _acc(pred_f, y_test), "exits": np.bincount(exit_f, minlength=E).tolist()},
        "int8": {"network": _acc(pred_q, y_test), "exits": np.bincount(exit_q, minlength=E).tolist()},
        "exit_agreement": float(np.mean(exit_f == exit_q)) if len(y_test) else None,
        "prediction_agreement": float(np.mean(pred_f == pred_q)) if len(y_test) else None,
        "interpreter": "tflm",
    }
    _update_metrics(run_dir, results, len(x_calib))
    console.log(
        f"test accuracy: float {100 * results['float']['network']:.2f}%, int8 "
        f"{100 * results['int8']['network']:.2f}%; exits float "
        f"{results['float']['exits']}, int8 {results['int8']['exits']}"
    )
    return int8_dir


def _acc(pred, y) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(y))) if len(y) else float("nan")


def _update_metrics(run_dir: Path, results: dict, calibration_samples: int) -> None:
    from ditmos.training.checkpoint import atomic_write_json

    path = run_dir / "metrics.json"
    metrics = read_json(path, "written by `ditmos train --compare`") if path.exists() else {}
    test = metrics.setdefault("test", {})
    test["int8"] = {
        "network": results["int8"]["network"],
        "exits": results["int8"]["exits"],
        "exit_agreement": results["exit_agreement"],
        "interpreter": "tflm",
    }
    metrics["quantization"] = {
        "calibration_samples": int(calibration_samples),
        "test": results,
        "delta_points": 100.0 * (results["int8"]["network"] - results["float"]["network"]),
    }
    atomic_write_json(path, metrics)
