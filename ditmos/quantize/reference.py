"""The host reference: composed int8 DiTMoS inference in the TFLM interpreter.

``ComposedReference(int8_dir)`` runs selector -> argmax -> chosen classifier
exactly as the firmware must: the selector's int8 features are handed to the
classifier, requantised with :func:`ditmos.quantize.qmath.requantize` where
``manifest.json`` links say so.  Its answers are what the device must
reproduce bit for bit.

The default backend is the TensorFlow Lite Micro interpreter
(``tflite_micro.runtime``).  ``backend="litert-ref"`` runs the same models
in LiteRT with the BUILTIN_REF op resolver, an independent second check that
must agree bit for bit; LiteRT's default (XNNPACK) path is not bit-exact and
is never used here.  LiteRT-REF's int8 FULLY_CONNECTED rounds in double
precision instead of TFLite's fixed point, so it runs each model's
``conv_twin`` (FULLY_CONNECTED as the equivalent 1x1 CONV_2D; see
:mod:`ditmos.quantize.litert_twin`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.quantize import qmath

BACKENDS = ("tflm", "litert-ref")
MANIFEST_FORMAT = "ditmos-int8/1"


class _TFLMRunner:
    """One TFLM interpreter; inputs and outputs addressed by flatbuffer index."""

    def __init__(self, data: bytes, what: str):
        from tflite_micro import runtime

        arena = _arena_estimate(data)
        last_err: Exception | None = None
        for _ in range(6):
            try:
                self._it = runtime.Interpreter.from_bytes(data, arena_size=arena)
                break
            except RuntimeError as err:  # arena too small (or a broken model)
                last_err = err
                arena *= 4
        else:
            raise DitmosError(f"{what}: the TFLM interpreter cannot load the model ({last_err})")

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        # TFLM may reuse an input buffer for intermediate results: set every
        # input again before each invoke.
        for i, x in enumerate(inputs):
            self._it.set_input(x, i)
        self._it.invoke()
        return [np.array(self._it.get_output(i), copy=True) for i in range(self._n_out)]

    def set_output_count(self, n: int) -> None:
        self._n_out = n


class _LiteRTRefRunner:
    """LiteRT with the reference (BUILTIN_REF) kernels, never XNNPACK.

    Runs the model's :func:`~ditmos.quantize.litert_twin.conv_twin` (its
    FULLY_CONNECTED ops as equivalent 1x1 CONV_2D): LiteRT's reference int8
    FULLY_CONNECTED rounds in floating point, unlike TFLM.
    """

    def __init__(self, data: bytes, what: str):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        from ditmos.quantize.litert_twin import conv_twin

        try:
            self._it = Interpreter(
                model_content=conv_twin(data), experimental_op_resolver_type=OpResolverType.BUILTIN_REF
            )
            self._it.allocate_tensors()
        except (RuntimeError, ValueError) as err:
            raise DitmosError(f"{what}: LiteRT cannot load the model ({err})") from err
        self._in = [d["index"] for d in self._it.get_input_details()]
        self._out = [d["index"] for d in self._it.get_output_details()]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        for idx, x in zip(self._in, inputs):
            self._it.set_tensor(idx, x)
        self._it.invoke()
        return [np.array(self._it.get_tensor(i), copy=True) for i in self._out]

    def set_output_count(self, n: int) -> None:
        if n != len(self._out):
            raise DitmosError(f"manifest lists {n} outputs, LiteRT sees {len(self._out)}")


def _arena_estimate(data: bytes) -> int:
    from ditmos.quantize.tflite_model import read_tflite

    model = read_tflite(data)
    activations = sum(int(np.prod(s)) * 4 for s in model.tensor_shapes.values())
    return 64 * 1024 + 2 * activations


def load_manifest(int8_dir: str | Path) -> dict:
    int8_dir = Path(int8_dir)
    path = int8_dir / "manifest.json"
    if not path.is_file():
        raise DitmosError(f"{int8_dir}: no manifest.json; run 'ditmos quantize' on the run first")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DitmosError(f"{path}: not valid JSON ({err})") from err
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DitmosError(f"{path}: format is {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    return manifest


class _Int8Reference:
    """What every int8 reference shares: the checked manifest, one interpreter
    per sub-model (sha256-checked), input quantisation and the batch loop.
    Subclasses give ``predict_one`` (prediction, route or exit, int8 logits)."""

    def __init__(self, int8_dir: str | Path, *, backend: str = "tflm"):
        if backend not in BACKENDS:
            raise DitmosError(f"unknown reference backend {backend!r} (choose from {BACKENDS})")
        self.int8_dir = Path(int8_dir)
        self.backend = backend
        self.manifest = m = load_manifest(self.int8_dir)
        self.K = int(m["K"])
        self.num_classes = int(m["num_classes"])
        self.class_names = list(m["class_names"])
        self.input_shape = tuple(m["input_shape"])
        self.input_scale = float(m["input_quant"]["scale"])
        self.input_zero_point = int(m["input_quant"]["zero_point"])

    def _open_runner(self, sub: dict):
        """The interpreter of one manifest sub-model, its file checked first."""
        path = self.int8_dir / sub["file"]
        if not path.is_file():
            raise DitmosError(f"{path}: missing (listed in manifest.json)")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != sub["sha256"]:
            raise DitmosError(
                f"{path}: sha256 {digest[:16]}... does not match "
                f"manifest.json ({sub['sha256'][:16]}...); re-run 'ditmos quantize'"
            )
        runner_cls = _TFLMRunner if self.backend == "tflm" else _LiteRTRefRunner
        runner = runner_cls(data, f"{path}")
        runner.set_output_count(len(sub["outputs"]))
        return runner

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Normalised float windows ``[..., T, C]`` -> int8, exactly as the firmware."""
        x = np.asarray(x, dtype=np.float32)
        if tuple(x.shape[-2:]) != self.input_shape:
            raise DitmosError(f"input windows have shape {tuple(x.shape[-2:])}, the model expects {self.input_shape}")
        if not np.all(np.isfinite(x)):
            bad = int(np.sum(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))) if x.ndim == 3 else 1
            raise DitmosError(f"input windows contain NaN or infinity ({bad} window(s)); they cannot be quantised")
        return qmath.quantize(x, self.input_scale, self.input_zero_point)

    def _window(self, x_q: np.ndarray) -> np.ndarray:
        x_q = np.asarray(x_q)
        if x_q.dtype != np.int8:
            raise DitmosError(f"input window must be int8 (use quantize_input), got {x_q.dtype}")
        if tuple(x_q.shape[-2:]) != self.input_shape or x_q.size != np.prod(self.input_shape):
            raise DitmosError(f"one input window of shape {self.input_shape} expected, got {x_q.shape}")
        return x_q.reshape(self.input_shape)

    def predict_one(self, x_q: np.ndarray) -> tuple[int, int, np.ndarray]:
        raise NotImplementedError

    def predict(self, x_q: np.ndarray, *, progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """int8 windows ``[N, T, C]`` (or one ``[T, C]``) -> (pred ``[N]``,
        route ``[N]``, int8 logits ``[N, num_classes]``).  Ties in argmax go
        to the lowest index."""
        x_q = np.asarray(x_q)
        single = x_q.ndim == 2
        batch = x_q[None] if single else x_q
        n = len(batch)
        pred = np.empty(n, np.int64)
        route = np.empty(n, np.int64)
        logits = np.empty((n, self.num_classes), np.int8)
        for i in range(n):
            pred[i], route[i], logits[i] = self.predict_one(batch[i])
            if progress is not None:
                progress(1)
        if single:
            return pred[:1], route[:1], logits[:1]
        return pred, route, logits


class ComposedReference(_Int8Reference):
    """Composed int8 DiTMoS inference on the host (see the module docstring)."""

    def __init__(self, int8_dir: str | Path, *, backend: str = "tflm"):
        super().__init__(int8_dir, backend=backend)
        m = self.manifest
        self._runners = {name: self._open_runner(sub) for name, sub in m["submodels"].items()}
        # links: classifier input -> (source, requantise params or None)
        self._links: dict[tuple[str, str], dict] = {}
        for link in m["links"]:
            sub, inp = link["to"].split(":", 1)
            self._links[(sub, inp)] = link

    # -- single sub-models ---------------------------------------------------
    def _run(self, name: str, named_inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sub = self.manifest["submodels"][name]
        ordered = sorted(sub["inputs"], key=lambda t: t["index"])
        arrays = []
        for t in ordered:
            x = np.asarray(named_inputs[t["name"]])
            if x.dtype != np.int8:
                raise DitmosError(f"{name}: input {t['name']!r} must be int8, got {x.dtype}")
            arrays.append(np.ascontiguousarray(x.reshape(t["shape"])))
        raw = self._runners[name].run(arrays)
        return {t["name"]: raw[t["index"]].reshape(t["shape"][1:]) for t in sub["outputs"]}

    def run_selector(self, x_q: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One int8 window ``[T, C]`` -> (route logits int8 ``[K]``, {feat name: int8 map})."""
        out = self._run("selector", {"window": self._window(x_q)})
        route = out.pop("route")
        return route, out

    def classifier_inputs(self, k: int, x_q: np.ndarray, sel_feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The int8 inputs classifier ``k`` receives: window and the selector's
        features, requantised where the link says so."""
        name = f"classifier_{k}"
        sub = self.manifest["submodels"][name]
        inputs = {}
        for t in sub["inputs"]:
            link = self._links.get((name, t["name"]))
            if link is None:
                raise DitmosError(f"manifest.json has no link feeding {name}:{t['name']}")
            src_model, src_name = link["from"].split(":", 1)
            if src_model == "input":
                value = self._window(x_q)
            else:
                value = np.asarray(sel_feats[src_name])
            if link["requantize"]:
                value = qmath.requantize(
                    value,
                    link["from_quant"]["scale"],
                    link["from_quant"]["zero_point"],
                    link["to_quant"]["scale"],
                    link["to_quant"]["zero_point"],
                )
            inputs[t["name"]] = value
        return inputs

    def run_classifier(self, k: int, x_q: np.ndarray, sel_feats: dict[str, np.ndarray]) -> np.ndarray:
        """Classifier ``k`` on one int8 window and the selector's int8 features
        (as the selector produced them) -> int8 logits ``[num_classes]``."""
        if not 0 <= k < self.K:
            raise DitmosError(f"classifier index {k} out of range 0..{self.K - 1}")
        out = self._run(f"classifier_{k}", self.classifier_inputs(k, x_q, sel_feats))
        return out["logits"]

    # -- the composition -------------------------------------------------------
    def predict_one(self, x_q: np.ndarray) -> tuple[int, int, np.ndarray]:
        route_logits, feats = self.run_selector(x_q)
        route = int(qmath.argmax_first(route_logits))
        logits = self.run_classifier(route, x_q, feats)
        return int(qmath.argmax_first(logits)), route, logits

    def run_all(self, x_q: np.ndarray, *, progress=None) -> dict[str, np.ndarray]:
        """Every sub-model on every window (for per-model accuracy and checks):
        ``{"route": [N, K], "<feat>": [N, ...], "logits_<k>": [N, classes]}``
        with the same int8 tensors the composition uses."""
        x_q = np.asarray(x_q)
        result: dict[str, list] = {}
        for i in range(len(x_q)):
            route, feats = self.run_selector(x_q[i])
            result.setdefault("route", []).append(route)
            for name, f in feats.items():
                result.setdefault(name, []).append(f)
            for k in range(self.K):
                result.setdefault(f"logits_{k}", []).append(self.run_classifier(k, x_q[i], feats))
            if progress is not None:
                progress(1)
        return {k: np.stack(v) for k, v in result.items()}


# --------------------------------------------------------------------------- #
# The network model kind: one CNN, optionally with early exits
# --------------------------------------------------------------------------- #


def exit_threshold_q(threshold: float | None) -> int:
    """The int8 form of an exit's softmax-confidence threshold ``t``.

    An exit's confidence output is TFLite's int8 softmax (scale 1/256, zero
    point -128: ``q = round(256 p) - 128``).  The float rule ``max p >= t``
    becomes ``max q >= T`` with ``T = ceil(256 t) - 128``, clamped to
    [-128, 128]; ``T = 128`` (``t`` is None or infinite) never exits early,
    ``T = -128`` always does."""
    if threshold is None or not np.isfinite(threshold):
        return 128
    return int(min(128, max(-128, int(np.ceil(np.float64(threshold) * 256.0)) - 128)))


def exit_taken(confidences: list[np.ndarray], thresholds_q: list[int]) -> int:
    """Index of the exit one window leaves at: the first intermediate exit whose
    largest int8 confidence reaches its threshold, else the final one
    (``len(confidences)``).  The same integer test the generated C runs."""
    for i, (conf, t) in enumerate(zip(confidences, thresholds_q)):
        if int(np.max(conf)) >= int(t):
            return i
    return len(confidences)


class NetworkReference(_Int8Reference):
    """int8 inference of a ``network`` int8 directory (a single CNN, or a
    multi-exit CNN with its exit rule) in the TFLM interpreter; the same
    interface as :class:`ComposedReference` (``route`` = the exit taken)."""

    def __init__(self, int8_dir: str | Path, *, backend: str = "tflm"):
        super().__init__(int8_dir, backend=backend)
        m = self.manifest
        if m.get("kind") != "network":
            raise DitmosError(f"{self.int8_dir}: not a network int8 directory")
        self.exits = list(m.get("exits") or [])
        self.final = str(m["final"])
        self._runner = self._open_runner(m["submodels"]["network"])

    def run_network(self, x_q: np.ndarray) -> dict[str, np.ndarray]:
        """One int8 window -> every output of the network by name."""
        sub = self.manifest["submodels"]["network"]
        x = np.ascontiguousarray(self._window(x_q).reshape(sub["inputs"][0]["shape"]))
        raw = self._runner.run([x])
        return {t["name"]: raw[t["index"]].reshape(t["shape"][1:]) for t in sub["outputs"]}

    def predict_one(self, x_q: np.ndarray) -> tuple[int, int, np.ndarray]:
        out = self.run_network(x_q)
        e = exit_taken([out[x["confidence"]] for x in self.exits], [int(x["threshold_q"]) for x in self.exits])
        logits = out[self.exits[e]["logits"]] if e < len(self.exits) else out[self.final]
        return int(qmath.argmax_first(logits)), e, logits

    def run_all(self, x_q: np.ndarray, *, progress=None) -> dict[str, np.ndarray]:
        """Every output of the network on every window ``{name: [N, ...]}``."""
        result: dict[str, list] = {}
        for i in range(len(x_q)):
            for name, v in self.run_network(x_q[i]).items():
                result.setdefault(name, []).append(v)
            if progress is not None:
                progress(1)
        return {k: np.stack(v) for k, v in result.items()}


def reference_for(int8_dir: str | Path, *, backend: str = "tflm"):
    """The host reference of any int8 directory: :class:`ComposedReference`
    for DiTMoS (selector + K classifiers), :class:`NetworkReference` for the
    network kind (single and early-exit CNNs)."""
    kind = load_manifest(int8_dir).get("kind", "ditmos")
    if kind == "network":
        return NetworkReference(int8_dir, backend=backend)
    if kind != "ditmos":
        raise DitmosError(f"{int8_dir}: unknown model kind {kind!r} in manifest.json")
    return ComposedReference(int8_dir, backend=backend)
