"""Batched integer-only smoothing on the host: many noisy int8 windows per call.

The device runs one noisy inference after the other (``ditmos_smooth_vote_s8``).
On the host the same votes can be computed far faster by running thousands of
noisy windows through each int8 sub-model at once:

- the noise is the same integer noise (``noise.sample``: the 32-bit
  counter-based generator and the table, vectorised in numpy, bit-exact with
  the C generator), added with saturation (``noise.add_noise``);
- each int8 sub-model runs in LiteRT with its built-in optimised integer
  kernels (no delegates, so no XNNPACK), on a copy of the model whose RESHAPE
  ops take the batch size from their input (a leading ``1`` becomes ``-1``),
  resized to the batch;
- the composition is the device's: the selector on every window, its route
  (first maximum of the int8 route scores), the selector features requantised
  for the classifiers through a 256-entry table of the exact requantisation,
  then each classifier on the windows routed to it; the class is the first
  maximum of the int8 scores.

Integer arithmetic has one right answer, so this engine must give exactly the
C model's class for every noisy window.  It is checked, not assumed:
``ditmos certify --int8`` compares the engine's selection counts with the C
model's on every window and stops on any difference, and the tests compare
whole count vectors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.quantize import qmath


def batch_free(data: bytes) -> bytes:
    """``data`` (a batch-1 int8 .tflite) with every RESHAPE's leading 1 made -1."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    reshape = schema.BuiltinOperator.RESHAPE
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    for sg in model.subgraphs:
        for op in sg.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != reshape:
                continue
            opts = op.builtinOptions
            if opts is not None and getattr(opts, "newShape", None) is not None and len(opts.newShape):
                ns = [int(v) for v in opts.newShape]
                if ns[0] != 1:
                    raise DitmosError(f"RESHAPE to {ns} has no leading batch dimension 1")
                opts.newShape = [-1] + ns[1:]
            if len(op.inputs) > 1 and op.inputs[1] >= 0:
                buf = model.buffers[sg.tensors[op.inputs[1]].buffer]
                if buf.data is not None and len(buf.data):
                    v = np.frombuffer(bytes(bytearray(buf.data)), "<i4").copy()
                    if v[0] != 1:
                        raise DitmosError(f"RESHAPE to {v.tolist()} has no leading batch dimension 1")
                    v[0] = -1
                    buf.data = list(v.astype("<i4").tobytes())
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _Sub:
    """One sub-model in LiteRT (optimised builtin kernels), any batch size."""

    def __init__(self, data: bytes, sub: dict, what: str, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        try:
            self.it = Interpreter(
                model_content=batch_free(data),
                num_threads=int(threads),
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
        except (RuntimeError, ValueError) as err:
            raise DitmosError(f"{what}: LiteRT cannot load the model ({err})") from err
        self.inputs = sorted(sub["inputs"], key=lambda t: t["index"])
        self.outputs = sub["outputs"]
        self._in = [d["index"] for d in self.it.get_input_details()]
        self._out = [d["index"] for d in self.it.get_output_details()]
        self._batch = None

    def run(self, named: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        if batch != self._batch:
            for idx, t in zip(self._in, self.inputs):
                self.it.resize_tensor_input(idx, [batch, *t["shape"][1:]])
            self.it.allocate_tensors()
            self._batch = batch
        for idx, t in zip(self._in, self.inputs):
            self.it.set_tensor(idx, np.ascontiguousarray(named[t["name"]].reshape(batch, *t["shape"][1:])))
        self.it.invoke()
        return {t["name"]: self.it.get_tensor(self._out[t["index"]]) for t in self.outputs}


class BatchedInt8Model:
    """The composed int8 DiTMoS of an ``int8`` directory, on batches of windows."""

    def __init__(self, int8_dir, threads: int = 1):
        from ditmos.quantize.reference import load_manifest

        self.int8_dir = Path(int8_dir)
        m = load_manifest(self.int8_dir)
        self.K = int(m["K"])
        self.num_classes = int(m["num_classes"])
        self.input_shape = tuple(m["input_shape"])
        self.subs = {}
        for name, sub in m["submodels"].items():
            path = self.int8_dir / sub["file"]
            try:
                data = path.read_bytes()
            except OSError as e:
                raise DitmosError(f"{path}: cannot read ({e})") from None
            if hashlib.sha256(data).hexdigest() != sub["sha256"]:
                raise DitmosError(f"{path}: sha256 does not match manifest.json; re-run 'ditmos quantize'")
            self.subs[name] = _Sub(data, sub, str(path), threads)
        # classifier input -> (source, 256-entry requantisation table or None)
        self.links: dict[tuple[str, str], tuple[str, np.ndarray | None]] = {}
        codes = np.arange(-128, 128, dtype=np.int64).astype(np.int8)
        for link in m["links"]:
            sub, inp = link["to"].split(":", 1)
            lut = None
            if link["requantize"]:
                f, t = link["from_quant"], link["to_quant"]
                lut = qmath.requantize(codes, f["scale"], f["zero_point"], t["scale"], t["zero_point"])
            self.links[(sub, inp)] = (link["from"], lut)

    def predict(self, x_q: np.ndarray) -> np.ndarray:
        """int8 windows ``[B, T, C]`` -> classes ``[B]`` (hard routing)."""
        x_q = np.asarray(x_q, np.int8).reshape(-1, *self.input_shape)
        B = len(x_q)
        sel = self.subs["selector"].run({"window": x_q}, B)
        route = qmath.argmax_first(sel["route"].reshape(B, self.K), axis=1)
        out = np.empty(B, np.int64)
        for k in range(self.K):
            idx = np.flatnonzero(route == k)
            if len(idx) == 0:
                continue
            name = f"classifier_{k}"
            feeds = {}
            for t in self.subs[name].inputs:
                src, lut = self.links[(name, t["name"])]
                model, tensor = src.split(":", 1)
                v = x_q[idx] if model == "input" else sel[tensor][idx]
                if lut is not None:
                    v = lut[v.astype(np.int16) + 128]
                feeds[t["name"]] = v
            logits = self.subs[name].run(feeds, len(idx))["logits"]
            out[idx] = qmath.argmax_first(logits.reshape(len(idx), self.num_classes), axis=1)
        return out
