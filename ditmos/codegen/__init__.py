"""ditmos.codegen: int8 TFLite sub-models -> plain C99 for the composed
DiTMoS inference (selector -> routing -> chosen classifier), no interpreter,
no malloc, one static memory plan.

Pipeline: :mod:`.ir` reads each ``.tflite`` into a 1-D IR, :mod:`.lowering`
turns ops into kernel calls with precomputed requantisation tables,
:mod:`.schedule` lays the composed inference on one timeline (network
slicing), :mod:`.planner` places the buffers, :mod:`.render` fills the Jinja
templates.  What each TFLite op means (parser, lowering, kernel, MACs) is one
entry of the op registry, :mod:`.ops`.  The generated code calls the kernels
of ``firmware/include/ditmos_kernels.h`` (its ``DITMOS_KERNELS_API_VERSION``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ditmos import __version__
from ditmos.errors import DitmosError

KERNEL_SETS = ("ref", "cm7")
MANIFEST_FORMAT = "ditmos-codegen/1"

__all__ = [
    "generate",
    "kernel_sources",
    "include_dirs",
    "load_int8_dir",
    "plan_all",
    "find_codegen_manifest",
    "KERNEL_SETS",
    "MANIFEST_FORMAT",
]


def kernel_sources(kernels: str = "ref") -> list[Path]:
    """The kernel C files to compile for ``kernels`` ("ref" or "cm7"): every
    ``ref/<op>_s8.c``, with ``cm7/<op>_s8.c`` replacing it where it exists."""
    from ditmos.paths import firmware_dir

    if kernels not in KERNEL_SETS:
        raise DitmosError(f"unknown kernel set {kernels!r}; choose 'ref' or 'cm7'")
    root = firmware_dir() / "kernels"
    ref = {p.name: p for p in sorted((root / "ref").glob("*.c"))}
    if not ref:
        raise DitmosError(f"no reference kernels found in {root / 'ref'}")
    if kernels == "cm7":
        for p in sorted((root / "cm7").glob("*.c")):
            ref[p.name] = p
    return [ref[n] for n in sorted(ref)]


def include_dirs(kernels: str = "ref") -> list[Path]:
    """Include directories for the kernels: the public headers, plus the
    kernel set's own folder (private headers such as cm7/ditmos_cm7_dsp.h)."""
    from ditmos.paths import firmware_dir

    dirs = [firmware_dir() / "include"]
    if kernels == "cm7":
        dirs.append(firmware_dir() / "kernels" / "cm7")
    return dirs


def find_codegen_manifest(directory) -> tuple[Path, dict] | None:
    """(path, manifest) of the codegen manifest of a generated model directory
    or of a build directory (``BUILD_DIR/model/manifest.json``); None if absent."""
    from ditmos.jsonio import read_json

    for path in (Path(directory) / "manifest.json", Path(directory) / "model" / "manifest.json"):
        if path.is_file():
            m = read_json(path)
            if m.get("format") == MANIFEST_FORMAT:
                return path, m
    return None


def load_int8_dir(int8_dir) -> tuple[dict, dict]:
    """Read ``int8_dir/manifest.json`` and every sub-model into the IR."""
    from ditmos.codegen.ir import read_tflite

    int8_dir = Path(int8_dir)
    mpath = int8_dir / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError as err:
        raise DitmosError(f"{mpath} not found: run `ditmos quantize` first") from err
    except json.JSONDecodeError as err:
        raise DitmosError(f"{mpath} is not valid JSON ({err})") from err
    if manifest.get("format") != "ditmos-int8/1":
        raise DitmosError(f"{mpath}: format {manifest.get('format')!r} is not 'ditmos-int8/1'")
    K = int(manifest["K"])
    names = model_names(manifest)
    graphs = {}
    for n in names:
        sub = manifest["submodels"].get(n)
        if sub is None:
            raise DitmosError(f"{mpath} lists no sub-model '{n}' (K = {K})")
        graphs[n] = read_tflite(int8_dir / sub["file"], n)
        want = sub.get("sha256")
        if want and want != graphs[n].sha256:
            raise DitmosError(
                f"{int8_dir / sub['file']} does not match the sha256 in {mpath}; re-run `ditmos quantize`"
            )
    return manifest, graphs


def model_kind(manifest: dict) -> str:
    """``ditmos`` (selector + K classifiers; manifests without ``kind``) or
    ``network`` (one CNN, optionally with early exits)."""
    kind = str(manifest.get("kind", "ditmos"))
    if kind not in ("ditmos", "network"):
        raise DitmosError(f"unknown model kind {kind!r} in the int8 manifest")
    return kind


def model_names(manifest: dict) -> list[str]:
    """The sub-models of an int8 manifest, in model-hash order."""
    if model_kind(manifest) == "network":
        return ["network"]
    return ["selector"] + [f"classifier_{k}" for k in range(int(manifest["K"]))]


def plan_all(manifest: dict, graphs: dict, *, alignment: int = 8) -> dict:
    """Arena bytes of every strategy, of each sub-model alone, and the
    slicing schedule (with recomputation if ``ram_budget`` demands it)."""
    from ditmos.codegen import schedule

    res = {"peak_bytes": {}, "single_bytes": {}, "plans": {}}
    for strat in schedule.STRATEGIES:
        plan = schedule.build(manifest, graphs, strat, alignment=alignment).plan
        res["peak_bytes"][strat] = plan.arena_size
        res.setdefault("live_bytes", {})[strat] = plan.live_peak()
        res["plans"][strat] = plan.to_json()
    for name in graphs:
        res["single_bytes"][name] = schedule.build(
            manifest, graphs, "slicing", only=name, alignment=alignment
        ).plan.arena_size
    res["max_single_bytes"] = max(res["single_bytes"].values())
    return res


def _slicing_schedule(manifest, graphs, ram_budget, alignment):
    """The slicing schedule; under ``ram_budget`` recompute the earliest shared
    selector features first until the arena fits."""
    from ditmos.codegen import schedule

    sched = schedule.build(manifest, graphs, "slicing", alignment=alignment)
    if ram_budget is None or sched.plan.arena_size <= ram_budget:
        return sched
    if model_kind(manifest) == "network":
        raise DitmosError(
            f"the network needs {sched.plan.arena_size} bytes of activations, "
            f"more than the RAM budget of {ram_budget} bytes"
        )
    feats = [
        o["name"]
        for o in sorted(manifest["submodels"]["selector"]["outputs"], key=lambda o: o["name"])
        if o["name"] != "route"
    ]
    feats = [
        f
        for f in feats
        if any(
            i["name"] == f"sel_{f}" for n, s in manifest["submodels"].items() if n != "selector" for i in s["inputs"]
        )
    ]
    best = sched
    for n in range(1, len(feats) + 1):
        cand = schedule.build(manifest, graphs, "slicing", recompute=tuple(feats[:n]), alignment=alignment)
        if cand.plan.arena_size < best.plan.arena_size:
            best = cand
        if cand.plan.arena_size <= ram_budget:
            return cand
    raise DitmosError(
        f"the model needs {best.plan.arena_size} bytes of activations even "
        f"with recomputation, more than the RAM budget of {ram_budget} bytes"
    )


def generate(
    int8_dir,
    out_dir,
    *,
    kernels: str = "ref",
    strategy: str = "slicing",
    profile: bool = False,
    ram_budget: int | None = None,
    alignment: int = 8,
    prefix: str = "ditmos_",
    raw_scale="auto",
    frontend="auto",
) -> dict:
    """Write model.h, model.c, weights.c and manifest.json into ``out_dir``
    and return the codegen manifest (see docs/artefacts.md §4).

    ``ram_budget`` (bytes, slicing only): recompute early selector slices
    until the arena fits, or raise.  ``alignment``: 4 or 8 bytes per buffer.
    ``prefix``: the model's symbol prefix (``ditmos_infer``, ``DITMOS_INPUT_T``,
    ...); give each model linked into one program its own.
    Also writes the input pipeline prepare.h / prepare.c (when the manifest
    carries the training normalisation)
    (:mod:`ditmos.codegen.prepare`); ``raw_scale`` (one float per channel,
    None, or "auto": the run's dataset's, e.g. hapt's) adds its int16-count
    variants; ``frontend`` (a FixedMfccConfig, None, or "auto": the run's
    dataset's) adds the on-device audio front end."""
    from ditmos.codegen import render, schedule, variants

    render.check_prefix(prefix)

    if kernels not in KERNEL_SETS:
        raise DitmosError(f"unknown kernel set {kernels!r}; choose 'ref' or 'cm7'")
    if strategy not in schedule.STRATEGIES:
        raise DitmosError(f"unknown memory strategy {strategy!r}; choose one of {', '.join(schedule.STRATEGIES)}")
    if alignment not in (4, 8):
        raise DitmosError(f"alignment must be 4 or 8 bytes, got {alignment}")
    if ram_budget is not None and strategy != "slicing":
        raise DitmosError("a RAM budget needs the 'slicing' strategy")
    manifest, graphs = load_int8_dir(int8_dir)
    if strategy == "slicing":
        sched = _slicing_schedule(manifest, graphs, ram_budget, alignment)
    else:
        sched = schedule.build(manifest, graphs, strategy, alignment=alignment)
    model_hash = str(manifest.get("model_hash") or "")
    if len(model_hash) < 16:
        raise DitmosError(f"{Path(int8_dir) / 'manifest.json'} has no model_hash")
    variant_rows = variants.apply(sched, kernels)  # per-layer kernel variant + weight layout
    files, stats = render.render(
        sched, manifest, kernels=kernels, model_hash=model_hash, profile=profile, prefix=prefix
    )
    from ditmos.codegen.prepare import render_prepare, run_frontend, run_raw_scale

    if manifest.get("normalization"):  # int8 dirs made by `ditmos quantize` always have it
        if isinstance(frontend, str) and frontend == "auto":
            frontend = run_frontend(int8_dir)
        if isinstance(raw_scale, str) and raw_scale == "auto":
            raw_scale = run_raw_scale(int8_dir)
        files.update(render_prepare(manifest, raw_scale=raw_scale, frontend=frontend, prefix=prefix.rstrip("_")))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out_dir / name).write_text(text)
    summary = plan_all(manifest, graphs, alignment=alignment)
    cg = {
        "format": MANIFEST_FORMAT,
        "generator": f"ditmos {__version__}",
        "model_hash": model_hash,
        "prefix": prefix,
        "kernels": kernels,
        "strategy": strategy,
        "profile": bool(profile),
        "ram_budget": ram_budget,
        "recompute": sched.recompute,
        "arena_bytes": sched.plan.arena_size,
        "num_layers": sched.num_layers,
        "input_shape": manifest["input_shape"],
        "input_quant": manifest["input_quant"],
        "num_classes": int(manifest["num_classes"]),
        "K": int(manifest["K"]),
        "kind": model_kind(manifest),
        "exits": _exits(sched, manifest),
        "layers": _layers(sched),
        "variants": variant_rows,
        "macs": _macs(sched),
        "tensors": _tensors(sched),
        "weights_bytes": stats["weights_bytes"],
        "memory": {
            "arena_bytes": sched.plan.arena_size,
            "weights_bytes": stats["weights_bytes"],
            "plan": sched.plan.to_json(),
            "table": sched.plan.table(),
            **summary,
        },
        "hashes": {
            "tflite": {n: g.sha256 for n, g in graphs.items()},
            "files": {n: hashlib.sha256(t.encode()).hexdigest() for n, t in files.items()},
        },
        "files": sorted(files) + ["manifest.json"],
        "kernel_sources": [str(p) for p in kernel_sources(kernels)],
        "include_dirs": [str(p) for p in include_dirs(kernels)],
        "defines": ["DITMOS_PROFILE"] if profile else [],
    }
    (out_dir / "manifest.json").write_text(json.dumps(cg, indent=1))
    return cg


def _layers(sched) -> list[dict]:
    from ditmos.codegen.lowering import CONCAT_KERNEL

    rows = []
    for pname, prog in sched.programs.items():
        for st in prog.steps:
            if st.kind == "copy":
                rows.append(
                    {
                        "program": pname,
                        "layer_index": st.layer_index,
                        "kernel": CONCAT_KERNEL,
                        "kind": "concat",
                        "layer": st.output,
                        "macs": 0,
                        "inputs": [v for v, _ in st.parts],
                        "output": st.output,
                    }
                )
            elif st.kind == "call":
                c = st.call
                rows.append(
                    {
                        "program": pname,
                        "layer_index": st.layer_index,
                        "kernel": c.kernel,
                        "kind": c.kind,
                        "layer": c.layer,
                        "macs": c.macs,
                        "inputs": list(c.inputs),
                        "output": c.output,
                        "recomputed": st.recompute,
                    }
                )
    return rows


def _exits(sched, manifest: dict) -> list[dict] | None:
    """Network kind: per exit (the last is the final head) its int8 threshold
    and the MACs and layers run when the inference stops there."""
    if model_kind(manifest) != "network":
        return None
    prog = sched.programs["network"]
    rows, macs, layers = [], 0, 0
    exits = list(manifest.get("exits") or [])
    for st in prog.steps:
        if st.kind == "call":
            macs += st.call.macs
        if st.kind in ("call", "copy"):
            layers += 1
        if st.kind in ("exit", "result"):
            e = len(rows)
            rows.append(
                {
                    "exit": e,
                    "output": exits[e]["logits"] if e < len(exits) else manifest["final"],
                    "threshold_q": int(exits[e]["threshold_q"]) if e < len(exits) else None,
                    "macs": int(macs),
                    "layers": int(layers),
                }
            )
    return rows


def _macs(sched) -> dict:
    """Multiply-accumulates per program and for the composed worst case."""
    per = {name: sum(st.call.macs for st in prog.steps if st.kind == "call") for name, prog in sched.programs.items()}
    clf = [v for n, v in per.items() if n != "selector"]
    return {**per, "composed_max": per.get("selector", 0) + max(clf, default=0)}


def _tensors(sched) -> list[dict]:
    return [
        {
            "name": v.name,
            "bytes": v.size,
            "group": v.group,
            "offset": sched.plan.offsets.get(v.name),
            "first": v.first,
            "last": v.last,
        }
        for v in sched.values.values()
        if v.name != "input"
    ]
