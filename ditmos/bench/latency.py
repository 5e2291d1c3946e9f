"""``ditmos bench latency``: retired instructions per inference on QEMU
``mps2-an500`` (Cortex-M7), reference kernels vs Cortex-M7 optimised kernels.

For a quantised run (``RUN_DIR/int8``: a DiTMoS run, or a compared single
network -- plain or with early exits -- under ``compare/``) the same generated
model is built twice
for the ``mps2_an500`` board with profiling (``kernels=ref`` and
``kernels=cm7``), and the first ``--samples`` windows of the test split are
run through each build in QEMU with the project's instruction-count plugin
(``ditmos.harness.evaluate`` with emulation).  Counts are exact and repeatable,
so a handful of samples suffices; both builds must answer exactly like the
host TFLM reference (``mismatches``).

Result (``--json``; stable keys):

- ``reference_instructions`` / ``optimized_instructions``: mean retired
  instructions per composed inference (selector -> routed classifier);
- ``macs``: mean multiply-accumulates per inference (selector + the routed
  classifier), ``ratio`` = reference / optimized, ``*_per_mac``;
- ``routes``: one row per route taken (for a composed model the routed
  classifier, for an early-exit network the exit): ``route``, ``samples``,
  ``macs`` of the layers that route runs, mean ``reference_instructions`` /
  ``optimized_instructions``, and ``instructions_minus_macs`` (optimized
  minus MACs: the part of the cost the MAC count does not see);
- ``layers``: one row per profiled layer that ran (program, layer index,
  kind, the kernel each set called -- ``kernel`` for cm7, which may be a
  register-blocked variant, ``reference_kernel`` for ref --, MACs, mean
  instructions with each kernel set, ``ratio`` = reference / optimized,
  ``*_per_mac``, samples that ran it);
- ``floor_per_mac`` = 0.5 (one SMLAD does two multiply-accumulates) and
  ``optimized_vs_floor`` = optimized_per_mac / floor_per_mac;
- ``input_pipeline`` (None for a model without ``prepare.h``): the samples go
  to the device raw (RAW requests, ``ditmos evaluate --raw``), so the device
  runs the generated input pipeline (for audio the MFCC front end) before
  each inference; ``raw`` (the kind of input), ``instructions`` (mean, with
  ``min`` / ``max``) counted between the marks around the pipeline in the cm7
  build, ``with_inference`` = pipeline + inference, ``share`` = pipeline /
  (pipeline + inference).  The inference figures above exclude the pipeline.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import click

from ditmos.errors import DitmosError

BOARD = "mps2_an500"
KERNEL_SETS = ("ref", "cm7")
FLOOR_PER_MAC = 0.5  # SMLAD: two 16-bit multiply-accumulates per instruction


def _short(name: str) -> str:
    first = str(name).split(";")[0]
    return first if len(first) <= 60 else first[:57] + "..."


def _rows_by_program(codegen: dict) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in codegen.get("layers") or []:
        if isinstance(row.get("layer_index"), int) and row["layer_index"] >= 0:
            rows.setdefault(str(row.get("program", "?")), []).append(row)
    if "selector" not in rows and "network" not in rows:
        raise DitmosError(
            "the codegen manifest lists no profiled selector or network layers; "
            "this build cannot be benchmarked per layer"
        )
    return rows


def _layers_run(codegen: dict, rows: dict[str, list[dict]], route: int) -> list[dict]:
    """The profiled layers one inference runs.  A composed model runs everything
    that is not a classifier plus the routed classifier; a single network runs
    all its layers, or, with early exits, the layers up to the exit it took
    (``route`` is then the exit's index)."""
    if "selector" not in rows:
        layers = rows["network"]
        exits = codegen.get("exits") or []
        if exits:
            if not 0 <= route < len(exits):
                raise DitmosError(f"an inference left at exit {route}, which the codegen manifest does not list")
            return layers[: int(exits[route]["layers"])]
        return layers
    progs = [p for p in rows if not re.fullmatch(r"classifier_\d+", p)]
    k = f"classifier_{route}"
    if k not in rows:
        raise DitmosError(f"an inference was routed to {k}, which the codegen manifest does not list")
    return [row for p in progs + [k] for row in rows[p]]


def _measure_set(run_dir: Path, int8_dir: Path, work: Path, kernels: str, samples: int, strategy: str) -> dict:
    from ditmos.boards import build_firmware
    from ditmos.harness.evaluate import SAMPLES_FILE, evaluate, read_samples
    from ditmos.codegen import find_codegen_manifest

    build_dir = build_firmware(
        BOARD, int8_dir, work / f"build_{kernels}", kernels=kernels, profile=True, strategy=strategy
    )
    eval_dir = work / f"eval_{kernels}"
    # with an input pipeline the device gets raw inputs and prepares them itself
    raw = "auto" if (Path(build_dir) / "model" / "prepare.h").is_file() else None
    report = evaluate(run_dir, build_dir, eval_dir, emulate=True, limit=samples, raw=raw)
    records = read_samples(eval_dir / SAMPLES_FILE)
    found = find_codegen_manifest(Path(build_dir))
    if found is None:
        raise DitmosError(f"{build_dir} has no codegen manifest; cannot attribute layers")
    recs = [records[i] for i in sorted(records)]
    if not recs or any(r.get("cost") in (None, 0) for r in recs):
        raise DitmosError(
            f"the {kernels} build reported no instruction counts (is the QEMU plugin working?); see {eval_dir}"
        )
    return {
        "records": recs,
        "codegen": found[1],
        "raw": (report.get("input_pipeline") or {}).get("raw"),
        "mismatches": int(report.get("mismatches", 0) or 0) + int(report.get("score_mismatches", 0) or 0),
    }


def measure_latency(
    run_dir: str | Path, *, samples: int = 8, work_dir: str | Path | None = None, strategy: str = "slicing"
) -> dict:
    """Build and run both kernel sets; return the benchmark dictionary."""
    run_dir = Path(run_dir)
    int8_dir = run_dir / "int8"
    if not (int8_dir / "manifest.json").is_file():
        raise DitmosError(f"{int8_dir / 'manifest.json'} does not exist: run `ditmos quantize {run_dir}` first")
    if samples < 1:
        raise DitmosError(f"--samples must be at least 1, got {samples}")
    with tempfile.TemporaryDirectory(prefix="ditmos_latency_") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        sets = {k: _measure_set(run_dir, int8_dir, work, k, samples, strategy) for k in KERNEL_SETS}
    return summarize(sets["ref"], sets["cm7"], strategy)


def summarize(ref: dict, opt: dict, strategy: str = "slicing") -> dict:
    """The benchmark dictionary from the two measured kernel sets (each:
    ``records`` of the evaluation, the build's ``codegen`` manifest, ``raw``
    input kind or None, ``mismatches``)."""
    rows = _rows_by_program(opt["codegen"])
    ref_kernels = {
        (r.get("program"), r.get("layer_index")): r.get("kernel") for r in ref["codegen"].get("layers") or []
    }
    by_index = {i: r for i, r in enumerate(ref["records"])}
    if [r["index"] for r in ref["records"]] != [r["index"] for r in opt["records"]]:
        raise DitmosError("the two builds measured different samples")

    layers: dict[tuple[str, int], dict] = {}
    macs_total = 0
    for i, r_opt in enumerate(opt["records"]):
        r_ref = by_index[i]
        lc_ref, lc_opt = r_ref.get("layer_cost") or [], r_opt.get("layer_cost") or []
        for row in _layers_run(opt["codegen"], rows, int(r_opt["route"])):
            prog, j = str(row.get("program", "?")), row["layer_index"]
            macs_total += int(row.get("macs", 0) or 0)
            if j >= len(lc_ref) or j >= len(lc_opt):
                continue
            entry = layers.setdefault(
                (prog, j),
                {
                    "program": prog,
                    "layer_index": j,
                    "kind": row.get("kind"),
                    "kernel": row.get("kernel"),
                    "reference_kernel": ref_kernels.get((prog, j)),
                    "layer": _short(row.get("layer", "")),
                    "macs": int(row.get("macs", 0) or 0),
                    "samples": 0,
                    "_ref": 0,
                    "_opt": 0,
                },
            )
            entry["samples"] += 1
            entry["_ref"] += int(lc_ref[j])
            entry["_opt"] += int(lc_opt[j])
    n = len(opt["records"])
    ref_mean = sum(int(r["cost"]) for r in ref["records"]) / n
    opt_mean = sum(int(r["cost"]) for r in opt["records"]) / n
    pipeline = None
    if opt["raw"] is not None:
        prep = [r.get("prepare_cost") for r in opt["records"]]
        if any(p in (None, 0) for p in prep):
            raise DitmosError("the cm7 build reported no instruction count for its input pipeline (marks 254/255)")
        prep_mean = sum(prep) / n
        pipeline = {
            "raw": opt["raw"],
            "instructions": prep_mean,
            "min": min(prep),
            "max": max(prep),
            "share": prep_mean / (prep_mean + opt_mean),
            "with_inference": prep_mean + opt_mean,
        }
    macs = macs_total / n
    by_route: dict[int, dict] = {}
    for i, r_opt in enumerate(opt["records"]):
        route = int(r_opt["route"])
        run = _layers_run(opt["codegen"], rows, route)
        e = by_route.setdefault(
            route,
            {"route": route, "samples": 0, "macs": sum(int(x.get("macs", 0) or 0) for x in run), "_r": 0, "_o": 0},
        )
        e["samples"] += 1
        e["_r"] += int(by_index[i]["cost"])
        e["_o"] += int(r_opt["cost"])
    routes = []
    for route in sorted(by_route):
        e = by_route[route]
        rr, oo = e.pop("_r") / e["samples"], e.pop("_o") / e["samples"]
        e.update(
            {"reference_instructions": rr, "optimized_instructions": oo, "instructions_minus_macs": oo - e["macs"]}
        )
        routes.append(e)
    out_layers = []
    for key in sorted(layers, key=lambda k: (k[0] not in ("selector", "network"), k[0], k[1])):
        e = layers[key]
        rr, oo = e.pop("_ref") / e["samples"], e.pop("_opt") / e["samples"]
        e.update(
            {
                "reference_instructions": rr,
                "optimized_instructions": oo,
                "ratio": rr / oo if oo else None,
                "reference_per_mac": rr / e["macs"] if e["macs"] else None,
                "optimized_per_mac": oo / e["macs"] if e["macs"] else None,
            }
        )
        out_layers.append(e)
    return {
        "board": BOARD,
        "strategy": strategy,
        "samples": n,
        "unit": "retired instructions (QEMU TCG plugin)",
        "reference_instructions": ref_mean,
        "optimized_instructions": opt_mean,
        "macs": macs,
        "ratio": ref_mean / opt_mean if opt_mean else None,
        "reference_per_mac": ref_mean / macs if macs else None,
        "optimized_per_mac": opt_mean / macs if macs else None,
        "floor_per_mac": FLOOR_PER_MAC,
        "optimized_vs_floor": opt_mean / macs / FLOOR_PER_MAC if macs else None,
        "mismatches": {"ref": ref["mismatches"], "cm7": opt["mismatches"]},
        "input_pipeline": pipeline,
        "layers": out_layers,
        "routes": routes,
    }


def format_latency(res: dict) -> str:
    def per(v):
        return f"{v:.2f}" if v else "-"

    lines = [
        f"{'program':<14}{'#':>3} {'cm7 kernel':<18}{'MACs':>8}{'ref instr':>11}"
        f"{'cm7 instr':>11}{'ref/MAC':>9}{'cm7/MAC':>9}{'ref/cm7':>9}"
    ]
    for e in res["layers"]:
        lines.append(
            f"{e['program']:<14}{e['layer_index']:>3} {str(e['kernel']):<18}"
            f"{e['macs']:>8}{e['reference_instructions']:>11.0f}"
            f"{e['optimized_instructions']:>11.0f}{per(e.get('reference_per_mac')):>9}"
            f"{per(e['optimized_per_mac']):>9}{e['ratio']:>9.2f}"
        )
    lines.append(
        f"whole inference ({res['samples']} samples, {res['board']}, {res['unit']}): "
        f"ref {res['reference_instructions']:.0f}, cm7 {res['optimized_instructions']:.0f} "
        f"instructions for {res['macs']:.0f} MACs -> ref/cm7 {res['ratio']:.2f}"
    )
    lines.append(
        f"instructions per MAC: ref {res['reference_per_mac']:.2f}, cm7 "
        f"{res['optimized_per_mac']:.3f} = {res['optimized_vs_floor']:.2f}x the "
        f"{res['floor_per_mac']} floor (one SMLAD per two MACs)"
    )
    pipe = res.get("input_pipeline")
    if pipe:
        lines.append(
            f"input pipeline on the device (raw {pipe['raw']} -> int8 window, cm7 build): "
            f"{pipe['instructions']:.0f} instructions (min {pipe['min']}, max {pipe['max']}); "
            f"with the inference {pipe['with_inference']:.0f}, pipeline share "
            f"{100 * pipe['share']:.1f}%"
        )
    routes = res.get("routes") or []
    if len(routes) > 1:
        lines.append(
            "per route (classifier or exit taken), cm7: "
            + "; ".join(
                f"{e['route']}: {e['samples']} samples, {e['macs']} MACs, "
                f"{e['optimized_instructions']:.0f} instructions"
                for e in routes
            )
        )
    mm = res["mismatches"]
    if mm["ref"] or mm["cm7"]:
        lines.append(f"WARNING: answers differ from the TFLM reference (ref {mm['ref']}, cm7 {mm['cm7']})")
    return "\n".join(lines)


@click.command("latency")
@click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A run directory with a quantised int8/ subdirectory.",
)
@click.option(
    "--samples",
    default=8,
    show_default=True,
    type=int,
    help="Test windows to run per kernel set (counts are exact; few suffice).",
)
@click.option(
    "--strategy",
    default="slicing",
    show_default=True,
    type=click.Choice(["slicing", "greedy", "none"]),
    help="Memory plan to build.",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the builds and evaluation directories here (default: temporary).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(run_dir: Path, samples: int, strategy: str, work_dir: Path | None, as_json: bool) -> None:
    """Instructions per inference in QEMU (Cortex-M7): reference vs optimised kernels."""
    res = measure_latency(run_dir, samples=samples, work_dir=work_dir, strategy=strategy)
    click.echo(json.dumps(res, indent=2) if as_json else format_latency(res))
