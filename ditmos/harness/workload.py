"""What an evaluation sends and what the answers must be, read from a run and a build.

``load_workload(run_dir, build_dir)`` reads only the previous stages'
artefacts (docs/artefacts.md): ``RUN_DIR/int8/manifest.json`` and the test
split, ``RUN_DIR/metrics.json`` for the accuracies the report quotes, and
``BUILD_DIR/manifest.json`` plus the codegen manifest in ``BUILD_DIR/model/``
for the memory table and layer names.  The host TFLM reference answers are
cached in ``EVAL_DIR/reference.npz`` (keyed by model hash and inputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.jsonio import read_json
from ditmos.harness.protocol import SUPPORTED_VERSIONS, device_model_hash

REFERENCE_CACHE = "reference.npz"

# {layer index: {program: "short name (kernel)"}}
LayerMap = dict[int, dict[str, str]]


@dataclass(frozen=True)
class RunFacts:
    """Figures the report quotes but the devices do not measure."""

    accuracy_float: float | None = None  # RUN_DIR/metrics.json, test split, float model
    accuracy_int8: float | None = None  # the same for the int8 reference, whole split
    build_memory: dict | None = None  # BUILD_DIR/manifest.json "memory"
    board: str | None = None  # BUILD_DIR/manifest.json "board"
    layer_map: LayerMap = field(default_factory=dict)  # from the codegen manifest


@dataclass
class Workload:
    """What to send and what the answers must be (all arrays indexed like the test split)."""

    inputs: np.ndarray  # int8 [N, T, C], quantised exactly as the host reference does
    labels: np.ndarray  # int [N]
    ref_pred: np.ndarray  # int [N] host reference predictions
    ref_route: np.ndarray  # int [N]
    ref_scores: np.ndarray  # int8 [N, num_classes]
    model_hash: str  # full model hash of the int8 manifest
    num_classes: int
    num_classifiers: int
    class_names: list[str] = field(default_factory=list)
    facts: RunFacts = field(default_factory=RunFacts)
    raw: np.ndarray | None = None  # raw test inputs (``ditmos evaluate --raw``), indexed alike
    raw_kind: str | None = None  # float / i16 / audio (docs/protocol.md, RAW)

    @property
    def hash16(self) -> str:
        """The model hash as a device built for this model reports it."""
        return device_model_hash(self.model_hash)


@dataclass(frozen=True)
class Reference:
    pred: np.ndarray
    route: np.ndarray
    scores: np.ndarray


def _short_layer(name: str) -> str:
    parts = str(name).split(";")[0].split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_map(codegen: dict) -> LayerMap:
    """``{layer_index: {program: "short name (kernel)"}}`` from a codegen manifest's
    ``layers``.  Each classifier program numbers its own layers after the
    selector's, so one index can name different layers in different classifiers."""
    out: LayerMap = {}
    for row in codegen.get("layers") or []:
        j = row.get("layer_index")
        if isinstance(j, int) and j >= 0:
            out.setdefault(j, {})[str(row.get("program", "?"))] = (
                f"{_short_layer(row.get('layer', '?'))} ({row.get('kernel', '?')})"
            )
    return out


def _build_facts(build_dir: Path, run_dir: Path, model_hash: str) -> dict:
    """Board, memory table and layer names of a build, after checking it runs
    this run's model and speaks this harness's protocol."""
    path = build_dir / "manifest.json"
    build = read_json(path, "run `ditmos build` first")
    if build.get("model_hash") and device_model_hash(build["model_hash"]) != device_model_hash(model_hash):
        raise DitmosError(
            f"{path} was built for model {build['model_hash']}, the run's "
            f"int8/manifest.json has {model_hash}: rebuild with "
            f"`ditmos build --run {run_dir}`"
        )
    if build.get("protocol_version", 1) not in SUPPORTED_VERSIONS:
        raise DitmosError(
            f"{path} speaks protocol version {build.get('protocol_version')}, this harness "
            f"knows {', '.join(map(str, SUPPORTED_VERSIONS))}: upgrade ditmos or rebuild the "
            f"firmware with this version"
        )
    facts = {"build_memory": build.get("memory"), "board": build.get("board")}
    codegen = build_dir / "model" / "manifest.json"  # docs/artefacts.md, build directory
    if codegen.is_file():
        facts["layer_map"] = layer_map(read_json(codegen, "the build's codegen manifest"))
    return facts


def _metrics_facts(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    test = read_json(path, "the run's metrics").get("test", {})
    key = "network" if "network" in (test.get("float") or {}) else "ditmos"  # the model kind
    return {"accuracy_float": (test.get("float") or {}).get(key), "accuracy_int8": (test.get("int8") or {}).get(key)}


def reference_answers(ref, x_q: np.ndarray, model_hash: str, cache: Path | None) -> Reference:
    """The host reference's answers for ``x_q``, from ``cache`` when it holds
    them for the same model and inputs (written atomically otherwise)."""
    n = len(x_q)
    if cache is not None and cache.is_file():
        z = np.load(cache)
        if str(z["model_hash"]) == model_hash and len(z["pred"]) >= n and np.array_equal(z["inputs"][:n], x_q):
            return Reference(z["pred"][:n], z["route"][:n], z["scores"][:n])
    pred, route, scores = ref.predict(x_q)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name("reference.tmp.npz")
        np.savez(tmp, model_hash=np.array(model_hash), pred=pred, route=route, scores=scores, inputs=x_q)
        os.replace(tmp, cache)
    return Reference(pred, route, scores)


RAW_KINDS = ("auto", "float", "i16", "audio")


def raw_test_inputs(run_dir: str | Path, kind: str = "auto", limit: int | None = None) -> tuple[str, np.ndarray]:
    """``(kind, raw)``: the run's test split as the device's RAW request takes it,
    before any normalisation: ``audio`` int16 clips (a dataset with an on-device
    front end), ``i16`` int16 sensor counts (a dataset with a per-channel count
    scale), or ``float`` windows in the training data's units.  ``auto`` picks the
    first the dataset has in that order."""
    from ditmos.codegen.prepare import run_frontend, run_raw_scale
    from ditmos.data import Splits, load_dataset

    if kind not in RAW_KINDS:
        raise DitmosError(f"unknown raw input kind {kind!r}; choose one of {', '.join(RAW_KINDS)}")
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "config.json", "is it a `ditmos train` run directory?")
    test = Splits.load(run_dir / "splits.npz").test
    if limit is not None:
        test = test[:limit]
    int8_dir = run_dir / "int8"
    frontend = run_frontend(int8_dir)
    scale = run_raw_scale(int8_dir)
    if kind == "auto":
        kind = "audio" if frontend is not None else "i16" if scale is not None else "float"
    if kind == "audio":
        if frontend is None:
            raise DitmosError(
                f"dataset '{cfg['dataset']}' has no on-device front end: "
                f"--raw audio needs raw audio clips (e.g. fsdd_audio)"
            )
        import importlib

        from ditmos.data.registry import parse_spec

        module = importlib.import_module(parse_spec(cfg["dataset"])[0].loader.split(":")[0])
        _, a = module.load_clips()
        clips = module.fit_clips(a["audio"], a["lengths"], frontend.clip_samples)
        return kind, np.ascontiguousarray(clips[test])
    x = np.asarray(load_dataset(cfg["dataset"]).X[test], dtype=np.float32)
    if kind == "float":
        return kind, np.ascontiguousarray(x)
    if scale is None:
        raise DitmosError(f"dataset '{cfg['dataset']}' has no int16 count scale: use --raw float")
    s = np.asarray(scale, dtype=np.float32)
    counts = np.rint(x / s)
    if np.abs(counts).max(initial=0) > 32767 or not np.array_equal(counts.astype(np.int16).astype(np.float32) * s, x):
        raise DitmosError(f"dataset '{cfg['dataset']}' windows are not int16 counts times its scale: use --raw float")
    return kind, np.ascontiguousarray(counts.astype(np.int16))


def load_workload(
    run_dir: str | Path,
    build_dir: str | Path | None,
    *,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
    raw: str | None = None,
) -> Workload:
    """The test split quantised with the int8 manifest's parameters, plus the host
    TFLM reference answers and the figures the report quotes; with ``raw`` (a
    kind of :func:`raw_test_inputs`) also the raw inputs the device prepares itself."""
    from ditmos.quantize.reference import reference_for
    from ditmos.training.rundir import load_run_data

    run_dir = Path(run_dir)
    int8_dir = run_dir / "int8"
    manifest = read_json(int8_dir / "manifest.json", "run `ditmos quantize RUN_DIR` first")
    facts = _metrics_facts(run_dir)
    if build_dir is not None:
        facts.update(_build_facts(Path(build_dir), run_dir, manifest["model_hash"]))
    data = load_run_data(run_dir)
    x, y = np.asarray(data.x_test), np.asarray(data.y_test)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    ref = reference_for(int8_dir)  # DiTMoS or a network (route = the exit taken)
    x_q = ref.quantize_input(x)
    cache = Path(cache_dir) / REFERENCE_CACHE if cache_dir is not None else None
    answers = reference_answers(ref, x_q, manifest["model_hash"], cache)
    raw_kind, raw_x = raw_test_inputs(run_dir, raw, limit) if raw else (None, None)
    if raw_x is not None and len(raw_x) != len(x_q):
        raise DitmosError(f"{run_dir}: {len(raw_x)} raw test inputs for {len(x_q)} windows")
    return Workload(
        raw=raw_x,
        raw_kind=raw_kind,
        inputs=x_q,
        labels=y,
        ref_pred=answers.pred,
        ref_route=answers.route,
        ref_scores=answers.scores,
        model_hash=manifest["model_hash"],
        num_classes=int(manifest["num_classes"]),
        num_classifiers=int(manifest["K"]),
        class_names=list(manifest.get("class_names", [])),
        facts=RunFacts(**facts),
    )
