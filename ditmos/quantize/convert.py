"""Keras export models -> full-int8 TFLite flatbuffers.

One sub-model at a time: the model is exported with a ``serve`` signature
whose inputs and outputs carry the Keras names (so the flatbuffer's own,
different, tensor order can be mapped back by name), then converted with
post-training full-integer quantisation: int8 inputs and outputs,
``TFLITE_BUILTINS_INT8`` only, per-channel weights (convolutions and dense
layers), BatchNorm folded by the converter.  The representative dataset is a dict keyed by input name
(a positional list once mis-ordered the inputs of a multi-input model).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError

SIGNATURE = "serve"


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def load_keras_model(path: Path):
    """Load an export ``.keras`` file without its training configuration."""
    _tf()
    import keras

    import ditmos.models  # noqa: F401  (registers ditmos' custom Keras layers, if any)

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - keras raises many types
        raise DitmosError(
            f"{path}: cannot load the Keras model ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})"
        ) from err


def input_names(model) -> list[str]:
    return [t.name for t in model.inputs]


def output_names(model) -> list[str]:
    """Names of ``model.outputs``, in that order."""
    return list(model.output_names)


def call_model(model, inputs_by_name: dict, *, training: bool = False) -> list:
    """Call a functional model whose inputs may be a dict, a list or one tensor;
    returns its outputs as a list in :func:`output_names` order."""
    struct = model.input
    if isinstance(struct, dict):
        args = {k: inputs_by_name[k] for k in struct}
    elif isinstance(struct, (list, tuple)):
        args = [inputs_by_name[t.name] for t in struct]
    else:
        args = inputs_by_name[struct.name]
    result = model(args, training=training)
    if isinstance(result, dict):
        return [result[n] for n in output_names(model)]
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


@contextlib.contextmanager
def _quiet_native_output():
    """Silence the converter's C++ chatter (it writes to fd 1/2 directly)."""
    saved = []
    with tempfile.TemporaryFile() as sink:
        for fd in (1, 2):
            try:
                copy = os.dup(fd)
            except OSError:
                continue
            saved.append((fd, copy))
            os.dup2(sink.fileno(), fd)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def check_finite(arrays: dict[str, np.ndarray], what: str) -> None:
    for name, arr in arrays.items():
        bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DitmosError(
                f"{what}: calibration input {name!r} contains NaN or infinity in "
                f"{int(bad.sum())} of {len(arr)} samples (first at sample {first}); "
                "clean the data or fix the normalisation before quantising"
            )


def convert_int8(model, calibration: dict[str, np.ndarray], *, what: str) -> bytes:
    """Convert ``model`` to full-int8 TFLite.

    ``calibration`` maps every Keras input name to an array ``[N, ...]`` (the
    per-sample shape of that input without its batch dimension of 1).
    """
    tf = _tf()
    import keras

    names = input_names(model)
    outs = output_names(model)
    missing = [n for n in names if n not in calibration]
    if missing:
        raise DitmosError(f"{what}: no calibration data for input(s) {missing}")
    check_finite({n: calibration[n] for n in names}, what)
    n_samples = len(calibration[names[0]])
    if n_samples == 0:
        raise DitmosError(f"{what}: the calibration set is empty")
    specs = {}
    for n, t in zip(names, model.inputs):
        shape = tuple(t.shape)
        if shape[0] != 1:
            raise DitmosError(
                f"{what}: input {n!r} has batch dimension {shape[0]}; export models must have a fixed batch of 1"
            )
        if tuple(calibration[n].shape[1:]) != shape[1:]:
            raise DitmosError(
                f"{what}: calibration data for {n!r} has per-sample shape "
                f"{tuple(calibration[n].shape[1:])}, the model expects {shape[1:]}"
            )
        specs[n] = tf.TensorSpec(shape, tf.float32, name=n)

    def serve(inputs):
        return dict(zip(outs, call_model(model, inputs)))

    def representative():
        for i in range(n_samples):
            yield {n: calibration[n][i : i + 1].astype(np.float32) for n in names}

    with tempfile.TemporaryDirectory(prefix="ditmos-export-") as tmp, _quiet_native_output():
        try:
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint(SIGNATURE, serve, [specs])
            archive.write_out(tmp, verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[SIGNATURE])
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
            data = converter.convert()
        except DitmosError:
            raise
        except Exception as err:  # noqa: BLE001 - the converter raises many types
            first = str(err).strip().splitlines()
            raise DitmosError(
                f"{what}: full-int8 conversion failed: {first[0] if first else type(err).__name__}"
            ) from err
    return bytes(data)


def batch_model(model):
    """A batch-size-agnostic twin of a batch-1 export model (same weights).

    Used only for fast float evaluation; checked against the original on the
    first sample by :func:`float_outputs`.
    """
    from ditmos.models.keras_models import with_batch

    return with_batch(model, None)


def float_outputs(model, inputs: dict[str, np.ndarray], *, batch_size: int = 256) -> list[np.ndarray]:
    """Run a batch-1 export model over ``N`` samples: outputs in Keras order, each ``[N, ...]``."""
    tf = _tf()
    names = input_names(model)
    n = len(inputs[names[0]])
    twin = batch_model(model)

    chunks: list[list[np.ndarray]] = []
    for start in range(0, n, batch_size):
        args = {k: tf.constant(inputs[k][start : start + batch_size], tf.float32) for k in names}
        chunks.append([np.asarray(r) for r in call_model(twin, args)])
    result = [np.concatenate([c[j] for c in chunks]) for j in range(len(chunks[0]))]
    # The twin must equal the real batch-1 model (guards against layers that
    # bake the batch size in).
    probe = call_model(model, {k: tf.constant(inputs[k][:1], tf.float32) for k in names})
    for j, p in enumerate(probe):
        if not np.allclose(np.asarray(p), result[j][:1], rtol=1e-4, atol=1e-4):
            raise DitmosError(
                f"model {model.name!r}: its batch-agnostic twin disagrees with the batch-1 export model on output {j}"
            )
    return result
