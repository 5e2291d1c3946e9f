"""``ditmos quantize``: a trained run directory -> ``RUN_DIR/int8/``.

Steps: check the run directory against the contract (docs/artefacts.md §2),
convert the selector and every classifier to full-int8 TFLite calibrated on
the TRAINING split (the classifiers' ``sel_feat_<b>`` inputs calibrated with
the float selector's features on the same windows), check every operator is
one the firmware implements, write the ``.tflite`` files and
``manifest.json`` (§3), then run the composed int8 inference on the test
split in the TFLM interpreter and record float vs int8 accuracy in the run's
``metrics.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ditmos import __version__
from ditmos.errors import DitmosError
from ditmos.jsonio import read_json, replaced_dir
from ditmos.quantize import qmath
from ditmos.quantize.reference import MANIFEST_FORMAT, ComposedReference
from ditmos.quantize.tflite_model import check_firmware_ops, read_tflite

CALIBRATION_SEED = 0
_EXPORT_KEYS = ("K", "shared_blocks", "num_classes", "input_shape", "class_names")


@dataclass
class ExportModels:
    """The float deployment models of a run and their export.json."""

    export_dir: Path
    info: dict
    selector: object
    classifiers: list

    @property
    def K(self) -> int:
        return int(self.info["K"])

    @property
    def feat_names(self) -> list[str]:
        return [f"feat_{b}" for b in self.info["shared_blocks"]]


def read_export_info(export_dir: Path) -> dict:
    """export.json, validated; names every missing model file at once."""
    if not export_dir.is_dir():
        raise DitmosError(f"{export_dir}: missing; the run directory is incomplete (did 'ditmos train' finish?)")
    info = read_json(export_dir / "export.json", "written by 'ditmos train' at the end of training")
    missing = [k for k in _EXPORT_KEYS if k not in info]
    if missing:
        raise DitmosError(f"{export_dir / 'export.json'}: missing key(s) {', '.join(missing)}")
    K = info["K"]
    if not isinstance(K, int) or K < 1:
        raise DitmosError(f"{export_dir / 'export.json'}: K must be a positive integer, got {K!r}")
    if len(info["class_names"]) != info["num_classes"]:
        raise DitmosError(
            f"{export_dir / 'export.json'}: {len(info['class_names'])} class names "
            f"for num_classes={info['num_classes']}"
        )
    files = ["selector.keras"] + [f"classifier_{k}.keras" for k in range(K)]
    absent = [f for f in files if not (export_dir / f).is_file()]
    if absent:
        raise DitmosError(f"{export_dir}: incomplete run directory, missing {', '.join(absent)}")
    return info


def load_export(export_dir: str | Path) -> ExportModels:
    """Load and check the export models against the stage contract."""
    from ditmos.quantize.convert import input_names, load_keras_model, output_names

    export_dir = Path(export_dir)
    info = read_export_info(export_dir)
    T, C = info["input_shape"]
    feats = [f"feat_{b}" for b in info["shared_blocks"]]
    sel = load_keras_model(export_dir / "selector.keras")
    where = export_dir / "selector.keras"
    if input_names(sel) != ["window"]:
        raise DitmosError(f"{where}: inputs are {input_names(sel)}, expected ['window']")
    if tuple(sel.inputs[0].shape) != (1, T, C):
        raise DitmosError(f"{where}: input shape {tuple(sel.inputs[0].shape)}, expected {(1, T, C)}")
    outs = output_names(sel)
    want = ["route"] + feats
    if sorted(outs) != sorted(want):
        raise DitmosError(f"{where}: outputs are {outs}, expected {want}")
    route_shape = tuple(sel.outputs[outs.index("route")].shape)
    if route_shape != (1, info["K"]):
        raise DitmosError(f"{where}: output 'route' has shape {route_shape}, expected {(1, info['K'])}")
    feat_shapes = {n: tuple(sel.outputs[outs.index(n)].shape) for n in feats}
    classifiers = []
    for k in range(info["K"]):
        where = export_dir / f"classifier_{k}.keras"
        m = load_keras_model(where)
        names = input_names(m)
        want_in = ["window"] + [f"sel_{f}" for f in feats]
        if sorted(names) != sorted(want_in):
            raise DitmosError(f"{where}: inputs are {names}, expected {want_in}")
        for n, t in zip(names, m.inputs):
            expect = (1, T, C) if n == "window" else feat_shapes[n[len("sel_") :]]
            if tuple(t.shape) != expect:
                raise DitmosError(f"{where}: input {n!r} has shape {tuple(t.shape)}, expected {expect}")
        if output_names(m) != ["logits"]:
            raise DitmosError(f"{where}: outputs are {output_names(m)}, expected ['logits']")
        if tuple(m.outputs[0].shape) != (1, info["num_classes"]):
            raise DitmosError(
                f"{where}: output 'logits' has shape {tuple(m.outputs[0].shape)}, expected {(1, info['num_classes'])}"
            )
        classifiers.append(m)
    return ExportModels(export_dir=export_dir, info=info, selector=sel, classifiers=classifiers)


def selector_features(models: ExportModels, x: np.ndarray) -> dict[str, np.ndarray]:
    """Float selector outputs by name over windows ``x [N, T, C]``."""
    from ditmos.quantize.convert import float_outputs, output_names

    outs = float_outputs(models.selector, {"window": x})
    return dict(zip(output_names(models.selector), outs))


def floored_output(model, name: str, calib: np.ndarray):
    """``model`` with its output ``name`` floored: ``relu(logits - floor)``.

    Used for the selector's route, of which only the argmax matters.  Calibrated as
    plain logits, the int8 output spends its 256
    steps on the whole logit range, most of it far below any sample's
    maximum; near-equal top logits then collapse to one int8 value and the
    tie goes to the lower index (measured on a width-0.25 hapt run: 65 of 77
    float/int8 routing disagreements were such ties, route scale 0.24 for
    logits in [-47, 12]).  Folding ``relu(. - floor)`` into the final dense
    layer (bias - floor, fused RELU) keeps the argmax wherever the top logit
    exceeds ``floor`` -- chosen below every calibration window's top logit --
    and gives the int8 output a several times finer step.  (Doing the same to
    the classifiers' logits did not change the composed accuracy measurably
    on that run, so their logits stay plain.)  Returns
    ``(model, floor)``; ``(model, None)`` when the output does not come from a
    linear Dense layer.
    """
    import keras

    from ditmos.quantize.convert import output_names

    try:
        layer = model.get_layer(name)
    except ValueError:
        return model, None
    if not isinstance(layer, keras.layers.Dense) or layer.get_config().get("activation") != "linear":
        return model, None
    weights = layer.get_weights()
    if len(weights) != 2 or name not in output_names(model):
        return model, None
    top = np.max(calib, axis=1)
    spread = float(top.max() - top.min())
    floor = float(top.min() - max(0.1 * spread, 1e-3))
    dense = keras.layers.Dense(layer.units, activation="relu", name=name)
    outputs = dict(zip(output_names(model), model.outputs))
    outputs[name] = dense(layer.input)
    dense.set_weights([weights[0], weights[1] - np.float32(floor)])
    return keras.Model(model.input, outputs, name=f"{model.name}_floored"), floor


def calibration_indices(n_train: int, samples: int) -> np.ndarray:
    """Which training windows calibrate: a seeded random subset, in order."""
    if samples < 1:
        raise DitmosError(f"--calibration-samples must be at least 1, got {samples}")
    if samples >= n_train:
        return np.arange(n_train)
    rng = np.random.default_rng(CALIBRATION_SEED)
    return np.sort(rng.choice(n_train, size=samples, replace=False))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quantize_models(
    models: ExportModels,
    out_dir: str | Path,
    x_calib: np.ndarray,
    normalization: dict,
    *,
    log: Callable[[str], None] = lambda s: None,
    calibration_noise: float = 0.0,
) -> Path:
    """Convert every sub-model, check its operators, write ``out_dir`` (replaced
    atomically) with the .tflite files and manifest.json.  ``x_calib`` are
    normalised training windows ``[N, T, C]``."""
    from ditmos.quantize.convert import check_finite, convert_int8

    out_dir = Path(out_dir)
    x_calib = np.asarray(x_calib, dtype=np.float32)
    check_finite({"window": x_calib}, "calibration set (training split)")
    info = models.info
    log(f"calibrating on {len(x_calib)} training windows")
    feats = selector_features(models, x_calib)
    check_finite({n: feats[n] for n in models.feat_names}, "float selector features on the calibration set")

    blobs: dict[str, bytes] = {}
    log("converting selector")
    selector, route_floor = floored_output(models.selector, "route", feats["route"])
    blobs["selector"] = convert_int8(selector, {"window": x_calib}, what="selector")
    for k, clf in enumerate(models.classifiers):
        log(f"converting classifier_{k}")
        calib = {"window": x_calib}
        calib.update({f"sel_{n}": feats[n] for n in models.feat_names})
        blobs[f"classifier_{k}"] = convert_int8(clf, calib, what=f"classifier_{k}")

    parsed = {}
    for name, data in blobs.items():
        model = read_tflite(data, what=f"{name}.tflite")
        check_firmware_ops(model, what=f"{name} ({models.export_dir / (name + '.keras')})")
        parsed[name] = model
    manifest = build_manifest(info, normalization, blobs, parsed, calibration_samples=len(x_calib))
    if calibration_noise > 0:
        manifest["calibration"]["noise_sigma"] = float(calibration_noise)
    manifest["route_floor"] = route_floor

    with replaced_dir(out_dir) as tmp:
        for name, data in blobs.items():
            (tmp / f"{name}.tflite").write_bytes(data)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir


def build_manifest(
    info: dict, normalization: dict, blobs: dict[str, bytes], parsed: dict, *, calibration_samples: int
) -> dict:
    """manifest.json (docs/artefacts.md §3) from the converted models."""
    import tensorflow as tf

    order = ["selector"] + [f"classifier_{k}" for k in range(info["K"])]
    total = hashlib.sha256()
    for name in order:
        total.update(blobs[name])
    sel = parsed["selector"]
    win = sel.input("window")
    submodels = {}
    for name in order:
        model = parsed[name]
        submodels[name] = {
            "file": f"{name}.tflite",
            "sha256": _sha256(blobs[name]),
            # Keras order; "index" is the position in the flatbuffer's list.
            "inputs": [model.input(n).to_manifest() for n in _keras_inputs(name, info)],
            "outputs": [model.output(n).to_manifest() for n in _keras_outputs(name, info)],
            "ops": [op.name for op in model.ops],
        }
    links = []
    for k in range(info["K"]):
        name = f"classifier_{k}"
        for inp in _keras_inputs(name, info):
            to = parsed[name].input(inp)
            src = win if inp == "window" else sel.output(inp[len("sel_") :])
            frm = "input:window" if inp == "window" else f"selector:{src.name}"
            # Requantise unless TFLM's int8 -> int8 arithmetic maps every int8
            # value to itself (equal parameters, or scales a few ULP apart).
            requant = not requantize_is_identity(src.scale, src.zero_point, to.scale, to.zero_point)
            link = {
                "from": frm,
                "to": f"{name}:{inp}",
                "requantize": requant,
                "from_quant": {"scale": src.scale, "zero_point": src.zero_point},
                "to_quant": {"scale": to.scale, "zero_point": to.zero_point},
            }
            if requant:
                m, s = qmath.quantize_multiplier(qmath.effective_scale(src.scale, to.scale))
                link["multiplier"] = m
                link["shift"] = s
            links.append(link)
    return {
        "format": MANIFEST_FORMAT,
        "model_hash": total.hexdigest(),
        "K": int(info["K"]),
        "num_classes": int(info["num_classes"]),
        "class_names": [str(c) for c in info["class_names"]],
        "input_shape": [int(v) for v in info["input_shape"]],
        "shared_blocks": [int(b) for b in info["shared_blocks"]],
        "normalization": {
            "mean": [float(v) for v in normalization["mean"]],
            "std": [float(v) for v in normalization["std"]],
        },
        "input_quant": {"scale": win.scale, "zero_point": win.zero_point},
        "submodels": submodels,
        "links": links,
        "macs": {name: int(parsed[name].macs) for name in order},
        "calibration": {"split": "train", "samples": int(calibration_samples), "seed": CALIBRATION_SEED},
        "versions": {"ditmos": __version__, "tensorflow": tf.__version__},
    }


def requantize_is_identity(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> bool:
    every = np.arange(-128, 128, dtype=np.int8)
    return bool(np.array_equal(qmath.requantize(every, in_scale, in_zp, out_scale, out_zp), every))


def _keras_inputs(name: str, info: dict) -> list[str]:
    if name == "selector":
        return ["window"]
    return ["window"] + [f"sel_feat_{b}" for b in info["shared_blocks"]]


def _keras_outputs(name: str, info: dict) -> list[str]:
    if name == "selector":
        return ["route"] + [f"feat_{b}" for b in info["shared_blocks"]]
    return ["logits"]


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y)) if len(y) else float("nan")


def evaluate(models: ExportModels, int8_dir: Path, x: np.ndarray, y: np.ndarray, *, progress=None) -> dict:
    """Float (Keras export models) vs int8 (TFLM) accuracy on ``x, y``: each
    classifier alone on every window, the composition, and how often the
    float and int8 selectors route a window to the same classifier."""
    from ditmos.quantize.convert import float_outputs

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    K = models.K
    feats = selector_features(models, x)
    route_f = np.argmax(feats["route"], axis=1)
    logits_f = []
    for clf in models.classifiers:
        inputs = {"window": x}
        inputs.update({f"sel_{n}": feats[n] for n in models.feat_names})
        logits_f.append(float_outputs(clf, inputs)[0])
    logits_f = np.stack(logits_f, axis=1)  # [N, K, classes]
    pred_f = np.argmax(logits_f[np.arange(len(x)), route_f], axis=1)

    ref = ComposedReference(int8_dir)
    x_q = ref.quantize_input(x)
    allout = ref.run_all(x_q, progress=progress)
    route_q = qmath.argmax_first(allout["route"], axis=1)
    logits_q = np.stack([allout[f"logits_{k}"] for k in range(K)], axis=1)
    pred_q = qmath.argmax_first(logits_q[np.arange(len(x)), route_q], axis=1)

    per_f = [_accuracy(np.argmax(logits_f[:, k], axis=1), y) for k in range(K)]
    per_q = [_accuracy(qmath.argmax_first(logits_q[:, k], axis=1), y) for k in range(K)]
    # union (oracle): at least one classifier right
    union_f = float(np.mean((np.argmax(logits_f, axis=2) == y[:, None]).any(axis=1)))
    union_q = float(np.mean((qmath.argmax_first(logits_q, axis=2) == y[:, None]).any(axis=1)))
    return {
        "samples": int(len(y)),
        "float": {
            "ditmos": _accuracy(pred_f, y),
            "classifiers": per_f,
            "union": union_f,
            "routing": np.bincount(route_f, minlength=K).tolist(),
        },
        "int8": {
            "ditmos": _accuracy(pred_q, y),
            "classifiers": per_q,
            "union": union_q,
            "routing": np.bincount(route_q, minlength=K).tolist(),
        },
        "route_agreement": float(np.mean(route_f == route_q)),
        "prediction_agreement": float(np.mean(pred_f == pred_q)),
        "interpreter": "tflm",
    }


def update_metrics(run_dir: Path, results: dict, calibration_samples: int) -> Path:
    """Read-modify-write ``RUN_DIR/metrics.json`` atomically, keeping other keys."""
    path = Path(run_dir) / "metrics.json"
    metrics = read_json(path, "written by 'ditmos train'") if path.exists() else {}
    test = metrics.setdefault("test", {})
    if not isinstance(test, dict):
        raise DitmosError(f"{path}: 'test' is not an object")
    int8 = test.setdefault("int8", {})
    int8["ditmos"] = results["int8"]["ditmos"]
    int8["classifiers"] = results["int8"]["classifiers"]
    int8["union"] = results["int8"]["union"]
    int8["route_agreement"] = results["route_agreement"]
    int8["interpreter"] = "tflm"
    metrics["quantization"] = {
        "calibration_samples": int(calibration_samples),
        "test": results,
        "delta_points": 100.0 * (results["int8"]["ditmos"] - results["float"]["ditmos"]),
    }
    fd, tmp = tempfile.mkstemp(prefix=".metrics.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(metrics, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_run_dir(run_dir: Path) -> dict:
    """Files the quantiser needs, before any heavy work."""
    if not run_dir.is_dir():
        raise DitmosError(f"{run_dir}: no such run directory")
    missing = [f for f in ("config.json", "splits.npz", "normalization.json") if not (run_dir / f).is_file()]
    if missing:
        raise DitmosError(f"{run_dir}: incomplete run directory, missing {', '.join(missing)}")
    norm = read_json(run_dir / "normalization.json", "the training normalisation")
    for key in ("mean", "std"):
        if key not in norm:
            raise DitmosError(f"{run_dir / 'normalization.json'}: missing key {key!r}")
    return norm


def noisy_calibration(x: np.ndarray, sigma: float) -> np.ndarray:
    """The calibration windows and, for ``sigma`` > 0, a copy of them under
    Gaussian noise of std ``sigma`` (normalised units, seeded): the ranges of a
    model that will run under randomized smoothing's noise."""
    if sigma <= 0:
        return x
    rng = np.random.default_rng([CALIBRATION_SEED, 29])
    noisy = x + np.float32(sigma) * rng.standard_normal(x.shape, dtype=np.float32)
    return np.concatenate([x, noisy.astype(np.float32)])


def quantize_run(
    run_dir: str | Path,
    *,
    calibration_samples: int = 500,
    quiet: bool = False,
    method: str = "ditmos",
    calibration_noise: float = 0.0,
) -> Path:
    """Quantise a trained run; returns ``RUN_DIR/int8`` (see the module docstring).

    ``method`` names a method of RUN's comparison (``ditmos.methods.method_run_dir``):
    its own run directory is quantised instead (a DiTMoS ablation run, or a
    network run of a single or early-exit CNN, :mod:`ditmos.quantize.network`)."""
    from ditmos.methods import method_run_dir
    from ditmos.quantize.console import Console
    from ditmos.training.network_run import is_network_run

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    if not (np.isfinite(calibration_noise) and 0 <= calibration_noise <= 10):
        raise DitmosError(f"--calibration-noise must lie in [0, 10], got {calibration_noise}")
    run_dir = method_run_dir(Path(run_dir), method)
    console = Console(quiet=quiet)
    normalization = check_run_dir(run_dir)
    if is_network_run(run_dir):
        if calibration_noise > 0:
            raise DitmosError(
                "--calibration-noise is for DiTMoS runs (the smoothed models); this is a single- or early-exit-CNN run"
            )
        if calibration_samples < 1:
            raise DitmosError(f"--calibration-samples must be at least 1, got {calibration_samples}")
        from ditmos.quantize.network import quantize_network_run
        from ditmos.training.rundir import load_run_data

        console.log(f"loading run data of {run_dir}")
        data = load_run_data(run_dir)
        if len(data.x_train) == 0:
            raise DitmosError(f"{run_dir}: the training split is empty; nothing to calibrate on")
        idx = calibration_indices(len(data.x_train), calibration_samples)
        return quantize_network_run(run_dir, normalization, data, calibration_idx=idx, console=console)
    info = read_export_info(run_dir / "export")
    if calibration_samples < 1:
        raise DitmosError(f"--calibration-samples must be at least 1, got {calibration_samples}")
    if len(normalization["mean"]) != info["input_shape"][1]:
        raise DitmosError(
            f"{run_dir / 'normalization.json'}: {len(normalization['mean'])} channels, "
            f"the models expect {info['input_shape'][1]}"
        )

    from ditmos.training.rundir import load_run_data

    console.log(f"loading run data of {run_dir}")
    data = load_run_data(run_dir)
    models = load_export(run_dir / "export")
    x_train = np.asarray(data.x_train, dtype=np.float32)
    if len(x_train) == 0:
        raise DitmosError(f"{run_dir}: the training split is empty; nothing to calibrate on")
    idx = calibration_indices(len(x_train), calibration_samples)
    int8_dir = quantize_models(
        models,
        run_dir / "int8",
        noisy_calibration(x_train[idx], calibration_noise),
        normalization,
        log=console.log,
        calibration_noise=calibration_noise,
    )
    console.log(f"wrote {int8_dir}")

    x_test = np.asarray(data.x_test, dtype=np.float32)
    y_test = np.asarray(data.y_test)
    with console.progress("int8 reference (TFLM) on the test split", len(x_test)) as advance:
        results = evaluate(models, int8_dir, x_test, y_test, progress=advance)
    update_metrics(run_dir, results, len(idx))
    console.summary(results)
    return int8_dir
