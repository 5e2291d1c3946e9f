"""Render a :class:`~ditmos.codegen.schedule.Schedule` through the Jinja
templates (``templates/model.h.j2``, ``model.c.j2``, ``weights.c.j2``).

Python computes every value (offsets, struct fields, table contents) and
names it; the templates own the C layout.  Every generated identifier is
checked to be a valid C identifier; free text (TFLite layer names) only ever
lands in comments, sanitised.
"""

from __future__ import annotations

import re

import numpy as np

from ditmos import __version__
from ditmos.errors import DitmosError
from ditmos.harness.protocol import device_model_hash

from ditmos.codegen.lowering import CONCAT_KERNEL, KERNELS, kernels_header_define
from ditmos.codegen.schedule import INPUT, Schedule

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PREFIX = re.compile(r"^[a-z][a-z0-9_]*_$")
DEFAULT_PREFIX = "ditmos_"
#: ``DITMOS_MODEL_KIND`` in model.h (reported in HELLO_OK, docs/protocol.md).
MODEL_KINDS = {"ditmos": 0, "network": 1}
_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for "
    "goto if inline int long register restrict return short signed sizeof static struct "
    "switch typedef union unsigned void volatile while _Bool _Complex _Imaginary".split()
)


def c_identifier(name: str) -> str:
    """Return ``name`` if it is a usable C identifier, else raise DitmosError."""
    if not _IDENT.match(name) or name in _C_KEYWORDS or len(name) > 63:
        raise DitmosError(f"generated identifier {name!r} is not a valid C identifier")
    return name


def short_layer(name: str, limit: int = 72) -> str:
    """A TFLite tensor name made readable: its first ';'-separated part, capped."""
    name = str(name).split(";")[0]
    return name if len(name) <= limit else name[: limit - 3] + "..."


def comment(text: str) -> str:
    """Text safe inside a C block comment."""
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))
    return text.replace("*/", "* /").replace("/*", "/ *")


def _env():
    import jinja2

    from ditmos.paths import templates_dir

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
        autoescape=False,
    )


def _rows(values: np.ndarray, per_row: int = 16) -> list[str]:
    flat = [_c_int(v) for v in np.asarray(values).reshape(-1)]
    rows = [", ".join(flat[i : i + per_row]) + "," for i in range(0, len(flat), per_row)]
    return rows or ["0,"]


def _c_int(v: int, ctype: str = "int32_t") -> str:
    v = int(v)
    if v == -(1 << 31):
        return "(-2147483647 - 1)"
    return str(v)


def _float_literal(x: float) -> str:
    s = f"{float(np.float32(x)):.9g}"
    if "e" not in s and "." not in s:
        s += ".0"
    return s + "f"


class _Tables:
    """Constant arrays for weights.c, deduplicated by content (a recomputed
    selector slice reuses the selector's weights)."""

    def __init__(self):
        self.arrays: list[dict] = []
        self._by_key: dict[tuple, str] = {}

    def add(self, name: str, ctype: str, values: np.ndarray, note: str) -> str:
        npt = np.int8 if ctype == "int8_t" else np.int32
        data = np.asarray(values).astype(npt)
        if not np.array_equal(data.astype(np.int64), np.asarray(values).astype(np.int64)):
            raise DitmosError(f"table {name} has values outside {ctype}")
        key = (ctype, data.tobytes())
        if key in self._by_key:
            return self._by_key[key]
        c_identifier(name)
        self._by_key[key] = name
        self.arrays.append(dict(name=name, ctype=ctype, count=int(data.size), rows=_rows(data), comment=comment(note)))
        return name


def _ptr(sched: Schedule, value: str) -> str:
    if value == INPUT:
        return "input"
    return f"ARENA({sched.plan.offsets[value]})"


def check_prefix(prefix: str) -> str:
    """The model's symbol prefix: lower-case letters, digits and underscores,
    starting with a letter and ending with ``_`` (``ditmos_`` by default)."""
    if not _PREFIX.match(prefix) or len(prefix) > 24:
        raise DitmosError(
            f"symbol prefix {prefix!r} must be lower-case letters, digits and "
            f"underscores, start with a letter and end with '_' (e.g. 'kws_')"
        )
    return prefix


def render(
    sched: Schedule,
    manifest: dict,
    *,
    kernels: str,
    model_hash: str,
    profile: bool = False,
    prefix: str = DEFAULT_PREFIX,
) -> tuple[dict[str, str], dict]:
    """Return ({file name: text} for model.h, model.c and weights.c, stats)
    where stats has ``weights_bytes`` (all constant tables in weights.c).
    Every external symbol of the model starts with ``prefix`` (its macros
    with ``prefix.upper()``), so several models link into one program."""
    check_prefix(prefix)
    tables = _Tables()
    programs = []
    exit_rows = []  # network kind: one per exit step (then the final result)
    for pname, prog in sched.programs.items():
        c_identifier(pname)
        steps = []
        segment = 0
        seg_input = False
        n_exits = sum(1 for st in prog.steps if st.kind == "exit")
        for st in prog.steps:
            if st.kind in ("call", "copy") and INPUT in st.reads:
                seg_input = True
            if st.kind in ("exit", "result") and n_exits:
                # A network with exits: one function per segment, ending here.
                programs.append(dict(name=c_identifier(f"{pname}_s{segment}"), steps=steps, reads_input=seg_input))
                steps, seg_input = [], False
                segment += 1
            if st.kind == "exit" or (st.kind == "result" and pname == "network"):
                exit_rows.append(
                    dict(
                        segment=f"{pname}_s{segment - 1}" if n_exits else pname,
                        reads=[_ptr(sched, v) for v in st.reads],
                        final=st.kind == "result",
                    )
                )
            if st.kind == "copy":
                concat = KERNELS[CONCAT_KERNEL]
                pn = c_identifier(f"{pname}_l{st.layer_index}_concat")
                chans = tables.add(
                    f"{prefix}{pn}_channels", "int32_t", np.array([c for _, c in st.parts]), f"{pname} concat channels"
                )
                steps.append(
                    dict(
                        kind="multi",
                        kernel=concat.name,
                        params_type=concat.params_type,
                        params_name=pn,
                        layer_index=st.layer_index,
                        comment=comment(f"{pname} materialised concatenation -> {st.output}"),
                        fields=[
                            dict(name="rows", value=st.rows),
                            dict(name="num_parts", value=len(st.parts)),
                            dict(name="channels", value=chans),
                        ],
                        inputs=[_ptr(sched, v) for v, _ in st.parts],
                        output=_ptr(sched, st.output),
                    )
                )
                continue
            if st.kind != "call":
                continue
            call = st.call
            pn = c_identifier(f"{pname}_l{st.layer_index}_{call.kind}")
            fields = []
            for fname, val in call.fields.items():
                if fname == "parts":
                    inner = ", ".join(
                        "{ .channels = %d, .input_offset = %d }" % (p["channels"], p["input_offset"]) for p in val
                    )
                    fields.append(dict(name="parts", value="{ " + inner + " }"))
                elif isinstance(val, (list, tuple)):  # a fixed-size int32 array member
                    fields.append(dict(name=fname, value="{ " + ", ".join(_c_int(v) for v in val) + " }"))
                else:
                    fields.append(dict(name=fname, value=_c_int(val)))
            for fname, arr in call.arrays.items():
                nm = tables.add(
                    f"{prefix}{pn}_{fname}",
                    arr.ctype,
                    arr.values,
                    f"{pname} layer {st.layer_index} {call.kind} {fname}: {short_layer(call.layer)}",
                )
                fields.append(dict(name=fname, value=nm))
            kernel = call.spec
            if kernel.optional_bias and "bias" not in call.arrays:
                fields.append(dict(name="bias", value="0"))
            out = _ptr(sched, call.output)
            if kernel.output_ctype != "int8_t":
                out = f"({kernel.output_ctype} *){out}"
            steps.append(
                dict(
                    kind="multi" if kernel.multi_input else "call",
                    kernel=call.kernel,
                    params_type=call.params_type,
                    params_name=pn,
                    layer_index=st.layer_index,
                    comment=comment(
                        f"{call.kind} '{short_layer(call.layer)}'"
                        + (" (recomputed selector slice)" if st.recompute else "")
                    ),
                    fields=fields,
                    inputs=[_ptr(sched, v) for v in call.inputs],
                    output=out,
                )
            )
        if n_exits:
            continue  # every segment was added at its exit / result step
        reads_input = any(INPUT in st.reads for st in prog.steps)
        programs.append(dict(name=pname, steps=steps, reads_input=reads_input))

    kind = str(manifest.get("kind", "ditmos"))
    if kind not in MODEL_KINDS:
        raise DitmosError(f"unknown model kind {kind!r}")
    K = int(manifest["K"])
    if not 1 <= K <= 255 or not 1 <= int(manifest["num_classes"]) <= 65535:
        raise DitmosError(
            f"K = {K} and num_classes = {manifest['num_classes']} must fit ditmos_result_t (K <= 255, classes <= 65535)"
        )
    T, C = (int(v) for v in manifest["input_shape"])
    iq = manifest["input_quant"]
    banner = _banner(
        model_hash, kernels, sched.strategy, {n: str(sub.get("sha256", "")) for n, sub in manifest["submodels"].items()}
    )
    ctx = dict(
        banner=banner,
        profile=bool(profile),
        input_t=T,
        input_c=C,
        num_classes=int(manifest["num_classes"]),
        num_classifiers=K,
        arena_size=max(sched.plan.arena_size, 8),
        strategy=sched.strategy,
        num_layers=max(sched.num_layers, 1),
        device_hash=device_model_hash(model_hash),
        kernels=kernels,
        kernels_api=kernels_header_define("DITMOS_KERNELS_API_VERSION"),
        P=prefix,
        PU=prefix.upper(),
        input_scale=_float_literal(iq["scale"]),
        input_zero_point=int(iq["zero_point"]),
        arrays=tables.arrays,
        programs=programs,
        kind=kind,
        model_kind=MODEL_KINDS[kind],
    )
    if kind == "network":
        exits = list(manifest.get("exits") or [])
        if len(exit_rows) != len(exits) + 1 or K != len(exit_rows):
            raise DitmosError(
                f"the network has {len(exit_rows)} exits in its schedule, the "
                f"manifest {len(exits)} + the final one and K = {K}"
            )
        ctx["exits"] = [
            dict(
                k=i,
                segment=r["segment"],
                logits=r["reads"][0],
                confidence=None if r["final"] else r["reads"][1],
                threshold_q=None if r["final"] else int(exits[i]["threshold_q"]),
            )
            for i, r in enumerate(exit_rows)
        ]
        for e in ctx["exits"]:
            if e["threshold_q"] is not None and not -128 <= e["threshold_q"] <= 128:
                raise DitmosError(f"exit {e['k']}: int8 threshold {e['threshold_q']} is outside [-128, 128]")
    else:
        ctx["route"] = _ptr(sched, sched.programs["selector"].outputs["route"])
        ctx["classifiers"] = [
            dict(k=k, name=f"classifier_{k}", logits=_ptr(sched, sched.programs[f"classifier_{k}"].outputs["logits"]))
            for k in range(K)
        ]
    env = _env()
    files = {
        out: env.get_template(tpl).render(**ctx)
        for out, tpl in (("model.h", "model.h.j2"), ("model.c", "model.c.j2"), ("weights.c", "weights.c.j2"))
    }
    weights_bytes = sum(a["count"] * (1 if a["ctype"] == "int8_t" else 4) for a in tables.arrays)
    return files, {"weights_bytes": int(weights_bytes), "tables": len(tables.arrays)}


def _banner(model_hash: str, kernels: str, strategy: str, submodels: dict[str, str] | None = None) -> str:
    lines = [f"/* Generated by ditmos {__version__} (ditmos.codegen); do not edit.", f" * model hash: {model_hash}"]
    for name, digest in (submodels or {}).items():
        lines.append(f" *   {c_identifier(name)}.tflite sha256: {comment(digest)}")
    lines += [f" * kernels: {kernels}, memory strategy: {strategy}", " */"]
    return "\n".join(lines)
