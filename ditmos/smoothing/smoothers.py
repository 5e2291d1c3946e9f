"""The two smoothed classifiers: float (Gaussian noise, Keras model) and
integer-only (table noise, the generated int8 C model compiled on the host)."""

from __future__ import annotations

import ctypes
import json
import tempfile
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.smoothing import noise as N


class FloatModel:
    """The run's float DiTMoS (hard routing), batched: windows -> classes."""

    def __init__(self, run_dir, batch: int = 1000):
        import keras
        import tensorflow as tf

        run_dir = Path(run_dir)
        self.batch = int(batch)
        single = run_dir / "models" / "single.keras"
        if not (run_dir / "export" / "export.json").is_file() and single.is_file():
            self._init_single(single)
            return
        try:
            export = json.loads((run_dir / "export" / "export.json").read_text())
        except FileNotFoundError:
            raise DitmosError(
                f"{run_dir} has no export/export.json: is it a finished 'ditmos train' run directory?"
            ) from None
        models = run_dir / "models"
        try:
            self.selector = keras.models.load_model(models / "selector.keras", compile=False)
            self.classifiers = [
                keras.models.load_model(models / f"classifier_{k}.keras", compile=False)
                for k in range(int(export["K"]))
            ]
        except (OSError, ValueError) as e:
            raise DitmosError(f"cannot load the Keras models in {models}: {e}") from None
        self.shared = list(export.get("shared_blocks", []))
        self.num_classes = int(export.get("num_classes") or len(export["class_names"]))
        selector, shared = self.selector, self.shared

        @tf.function(reduce_retracing=True)
        def _route(x):
            sel = selector({"window": x}, training=False)
            return (tf.argmax(sel["route"], axis=1, output_type=tf.int32), [sel[f"feat_{b}"] for b in shared])

        def _classifier(clf):
            @tf.function(reduce_retracing=True)
            def run(x, feats):
                out = clf({"window": x, **{f"sel_feat_{b}": v for b, v in zip(shared, feats)}}, training=False)
                out = out["logits"] if isinstance(out, dict) else out
                return tf.argmax(out, axis=1, output_type=tf.int32)

            return run

        classifiers = [_classifier(c) for c in self.classifiers]

        def _classes(x):
            # hard routing: the selector on every window, then each classifier on
            # the windows routed to it only (as the device and the int8 engine do)
            route, feats = _route(x)
            route = route.numpy()
            out = np.empty(len(route), np.int32)
            for k, run in enumerate(classifiers):
                idx = np.flatnonzero(route == k)
                if len(idx):
                    out[idx] = run(tf.gather(x, idx), [tf.gather(f, idx) for f in feats]).numpy()
            return out

        self._classes = _classes

    def _init_single(self, path: Path) -> None:
        """A single-CNN run (``ditmos train --model single``): window -> logits."""
        import keras
        import tensorflow as tf

        try:
            model = keras.models.load_model(path, compile=False)
        except (OSError, ValueError) as e:
            raise DitmosError(f"cannot load the Keras model {path}: {e}") from None
        self.num_classes = int(model.output_shape[-1])

        @tf.function(reduce_retracing=True)
        def _logits_argmax(x):
            return tf.argmax(model(x, training=False), axis=1, output_type=tf.int32)

        self._classes = lambda x: _logits_argmax(x).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        out = [self._classes(tf.constant(x[i : i + self.batch], tf.float32)) for i in range(0, len(x), self.batch)]
        return np.concatenate(out) if out else np.zeros(0, np.int32)


class FloatSmoother:
    """Counts of ``f(x + e)``, ``e ~ N(0, sigma^2 I)`` in normalised units."""

    def __init__(self, model: FloatModel, sigma: float):
        self.model, self.sigma = model, float(sigma)
        self.num_classes = model.num_classes

    def counts(self, x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        c = np.zeros(self.num_classes, np.int64)
        left = n
        while left > 0:
            b = min(left, self.model.batch)
            noisy = x[None].astype(np.float32) + (
                rng.standard_normal((b, *x.shape), dtype=np.float32) * np.float32(self.sigma)
            )
            c += np.bincount(self.model.predict(noisy), minlength=self.num_classes)
            left -= b
        return c


def _runtime_sources() -> list[str]:
    from ditmos.paths import firmware_dir

    rt = firmware_dir() / "runtime"
    return [
        str(rt / "ditmos_smooth.c"),
        str(rt / "ditmos_smooth_model.c"),
        str(firmware_dir() / "tools" / "ditmos_smooth_batch.c"),
    ]


ENGINES = ("batched", "c", "fast")


class IntSmoother:
    """Integer-only smoothing of the run's int8 model.

    The generated C model (reference kernels) and the noise and vote loop of
    ``firmware/runtime/ditmos_smooth{,_model}.c`` are compiled on the host into
    one shared library, so the host runs exactly the code the device runs.
    ``sigma`` is in normalised input units; the noise table uses
    ``sigma / input_scale`` input steps.
    """

    def __init__(
        self,
        int8_dir,
        sigma: float,
        *,
        work_dir: str | Path | None = None,
        engine: str = "batched",
        chunk: int = 10000,
        threads: int = 1,
        also: tuple[str, ...] = (),
    ):
        from ditmos.codegen import generate
        from ditmos.codegen.host import compile_model
        from ditmos.quantize.reference import load_manifest

        for e in (engine, *also):
            if e not in ENGINES:
                raise DitmosError(f"unknown integer smoothing engine {e!r}; choose one of {', '.join(ENGINES)}")
        self.engine, self.chunk = engine, max(1, int(chunk))
        self.int8_dir = Path(int8_dir)
        m = load_manifest(self.int8_dir)
        self.input_scale = float(np.float32(m["input_quant"]["scale"]))
        self.input_zero_point = int(m["input_quant"]["zero_point"])
        self.input_shape = tuple(m["input_shape"])
        self.size = int(np.prod(self.input_shape))
        self.num_classes = int(m["num_classes"])
        self.sigma = float(sigma)
        self.table = N.make_table(self.sigma / self.input_scale)
        self.tv = N.table_tv(self.table)
        self.slack = self.size * self.tv  # TV bound of the d-coordinate noise
        self._tmp = None
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ditmos-smooth-")
            work_dir = self._tmp.name
        gen = Path(work_dir) / "gen"
        generate(self.int8_dir, gen, kernels="ref")
        lib = compile_model(gen, "ref", out=gen / "libditmos_smooth.so", extra_flags=_runtime_sources())
        self._lib = ctypes.CDLL(str(lib))
        f = self._lib.ditmos_smooth_counts
        f.argtypes = [
            ctypes.POINTER(ctypes.c_int8),
            ctypes.POINTER(ctypes.c_uint32),
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_uint32,
            ctypes.c_uint32,
            ctypes.c_uint32,
            ctypes.POINTER(ctypes.c_uint32),
        ]
        f.restype = ctypes.c_int
        self._thr = np.ascontiguousarray(self.table.thresholds, dtype=np.uint32)
        g = self._lib.ditmos_smooth_noisy_batch
        g.argtypes = [
            ctypes.POINTER(ctypes.c_int8),
            ctypes.POINTER(ctypes.c_uint32),
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_uint32,
            ctypes.c_uint32,
            ctypes.c_uint32,
            ctypes.c_int32,
            ctypes.POINTER(ctypes.c_int8),
        ]
        g.restype = ctypes.c_int
        self._fast = None
        if "fast" in (engine, *also):
            from ditmos.smoothing.fast import compile_fast

            self._fast = ctypes.CDLL(str(compile_fast(gen, gen / "libditmos_smooth_fast.so")))
            self._fast.ditmos_smooth_counts.argtypes = f.argtypes
            self._fast.ditmos_smooth_counts.restype = ctypes.c_int
            self._fast.ditmos_smooth_noisy_batch.argtypes = g.argtypes
            self._fast.ditmos_smooth_noisy_batch.restype = ctypes.c_int
        self.batched = None
        if "batched" in (engine, *also):
            from ditmos.smoothing.batched import BatchedInt8Model

            self.batched = BatchedInt8Model(self.int8_dir, threads)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        from ditmos.quantize import qmath

        return qmath.quantize(np.asarray(x, np.float32), self.input_scale, self.input_zero_point)

    def dequantize(self, x_q: np.ndarray) -> np.ndarray:
        return (np.asarray(x_q, np.float64) - self.input_zero_point) * self.input_scale

    def _window(self, x_q) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(x_q, dtype=np.int8).reshape(-1))
        if x.size != self.size:
            raise DitmosError(f"window has {x.size} values, the model expects {self.size}")
        return x

    def noisy(self, x_q: np.ndarray, n: int, seed: int, first: int = 0, engine: str = "c") -> np.ndarray:
        """The noisy int8 windows ``[n, size]`` of inferences ``first .. first + n - 1``
        (the device's generator, compiled on the host; ``engine="fast"``: its
        AVX2 twin, same values)."""
        x = self._window(x_q)
        out = np.empty((int(n), self.size), np.int8)
        lib = self._lib
        if engine == "fast":
            if self._fast is None:
                raise DitmosError("this smoother was built without the fast engine")
            lib = self._fast
        err = lib.ditmos_smooth_noisy_batch(
            x.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
            self._thr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
            self.table.size,
            self.table.offset,
            int(seed) & N.M32,
            int(first) & N.M32,
            int(n),
            self.size,
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )
        if err != 0:
            raise DitmosError(f"ditmos_smooth_noisy_batch failed ({err})")
        return out

    def counts(self, x_q: np.ndarray, n: int, seed: int, first: int = 0, engine: str | None = None) -> np.ndarray:
        """Class counts of inferences ``first .. first + n - 1`` on int8 window ``x_q``,
        by ``engine`` (default: the smoother's): ``c`` = the device's vote loop and
        generated C model, ``batched`` = the same noise classified in batches
        (:mod:`ditmos.smoothing.batched`), ``fast`` = the device's vote loop with
        the AVX2 noise and host kernels (:mod:`ditmos.smoothing.fast`)."""
        engine = engine or self.engine
        if engine == "batched":
            if self.batched is None:
                raise DitmosError("this smoother was built without the batched engine")
            out = np.zeros(self.num_classes, np.int64)
            for off in range(0, int(n), self.chunk):
                b = min(self.chunk, int(n) - off)
                pred = self.batched.predict(self.noisy(x_q, b, seed, int(first) + off))
                out += np.bincount(pred, minlength=self.num_classes)
            return out
        lib = self._lib
        if engine == "fast":
            if self._fast is None:
                raise DitmosError("this smoother was built without the fast engine")
            lib = self._fast
        x = self._window(x_q)
        out = np.zeros(self.num_classes, np.uint32)
        err = lib.ditmos_smooth_counts(
            x.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
            self._thr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
            self.table.size,
            self.table.offset,
            int(seed) & N.M32,
            int(first) & N.M32,
            int(n),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
        )
        if err != 0:
            raise DitmosError(f"ditmos_smooth_counts failed ({err})")
        return out.astype(np.int64)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def reference_counts(reference, table: N.NoiseTable, x_q: np.ndarray, n: int, seed: int, first: int = 0) -> np.ndarray:
    """The specification: numpy noise and the TFLM composed reference, for tests."""
    x = np.asarray(x_q, np.int8).reshape(-1)
    noisy = N.add_noise(x, N.sample(table, seed, first, n, x.size))
    pred, _, _ = reference.predict(noisy.reshape(n, *reference.input_shape))
    return np.bincount(pred, minlength=reference.num_classes).astype(np.int64)
