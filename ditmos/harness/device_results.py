"""Every deployable method of a comparison measured on one board, as a table.

    python -m ditmos.harness.device_results RUN [--board mps2_an500] [--work DIR]
        [--limit N] [--jobs J] [--out docs/results]

(``scripts/device_results.sh`` runs exactly this.)  For each method of
``RUN/compare/compare.json`` at RUN's width that can be deployed (DiTMoS, its
ablations, the single CNNs, the early-exit CNN): ``ditmos quantize --method``
(when its ``int8/`` is missing), ``ditmos build --method`` into
``WORK/build/<method>`` and ``ditmos evaluate --emulate`` into
``WORK/eval/<method>`` (both reused when complete for the same model), then
``device_<dataset>_<preset>_<board>.md`` in the output folder: on-device
accuracy, mismatches against the host int8 reference, latency (median and
p95 in the board's unit), flash and RAM of the linked firmware, the
route/exit histogram, and for a network with early exits the measured
average cost against what its exit histogram and the cost of each exit
predict.  Nothing in the output is written by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.methods import compare_dir_of, deployable, label, method_run_dir

COMMAND = "scripts/device_results.sh RUN [--board mps2_an500] [--work DIR] [--limit N]"


def deployable_methods(run_dir: Path) -> list[str]:
    cdir = compare_dir_of(run_dir)
    if cdir is None:
        raise DitmosError(f"{run_dir} has no comparison (compare/compare.json)")
    comp = json.loads((cdir / "compare.json").read_text())
    names: list[str] = []
    for res in comp["results"].values():
        names += [n for n in res["methods"] if deployable(n) and n not in names]
    return names


def exit_prediction(samples: list[dict], num_exits: int | None = None) -> dict | None:
    """Measured average cost vs the exit histogram times each exit's cost
    (the cost of the first window that left there; the kernels' costs do not
    depend on the data, so one window per exit is the exit's cost)."""
    rows = [(int(s["route"]), float(s["cost"])) for s in samples if s.get("cost") is not None]
    if not rows:
        return None
    exits = np.array([r[0] for r in rows])
    cost = np.array([r[1] for r in rows])
    per_exit = {e: float(cost[exits == e][0]) for e in sorted(set(exits.tolist()))}
    predicted = float(np.mean([per_exit[e] for e in exits]))
    # the final exit's cost, when some window took it (else unknown)
    final = (num_exits - 1) if num_exits else max(per_exit)
    worst = per_exit.get(final)
    return {"measured_mean": float(cost.mean()), "predicted_mean": predicted,
            "error": float(cost.mean() / predicted - 1.0), "per_exit": per_exit,
            "worst_exit_cost": worst, "histogram": np.bincount(exits).tolist()}


def measure(run_dir: Path, method: str, board: str, work: Path, *, limit: int | None,
            jobs: int, log=print) -> dict:
    from ditmos.boards.build import build_firmware
    from ditmos.harness.evaluate import evaluate
    from ditmos.harness.records import read_samples
    from ditmos.quantize import quantize_run

    mdir = method_run_dir(run_dir, method)
    if not (mdir / "int8" / "manifest.json").is_file():
        log(f"[{method}] quantizing {mdir}")
        quantize_run(run_dir, method=method, quiet=True)
    model_hash = json.loads((mdir / "int8" / "manifest.json").read_text())["model_hash"]
    bdir = work / "build" / method
    bman = bdir / "manifest.json"
    if not (bman.is_file() and json.loads(bman.read_text()).get("model_hash") == model_hash):
        log(f"[{method}] building for {board}")
        build_firmware(board, mdir / "int8", bdir)
    edir = work / "eval" / method
    rep_path = edir / "report.json"
    rep = json.loads(rep_path.read_text()) if rep_path.is_file() else None
    if not (rep and rep.get("complete") and rep.get("model_hash") == model_hash):
        log(f"[{method}] evaluating on {board}")
        rep = evaluate(mdir, bdir, edir, emulate=True, jobs=jobs, limit=limit, method=method,
                       resume=rep_path.parent.is_dir() and (edir / "session.json").is_file())
    samples = list(read_samples(edir / "samples.jsonl").values())
    K = int(json.loads((mdir / "int8" / "manifest.json").read_text())["K"])
    return {"method": method, "report": rep, "run_dir": str(mdir),
            "exits": exit_prediction(samples, K) if rep["meta"].get("model_kind") == "network"
            and K > 1 else None}


def _fmt(v, unit: str) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if unit in ("instructions", "cycles") else f"{v:.3g}"


def render(rows: list[dict], *, dataset: str, preset: str, board: str) -> str:
    lat_unit = next((r["report"]["latency"].get("unit") for r in rows
                     if r["report"]["latency"].get("available")), None)
    lines = [f"# {dataset} ({preset}): every compared model on {board}", "",
             f"Written by `{COMMAND}`; never edit by hand. Accuracy on the device over "
             f"the evaluated test windows; mismatches against the host int8 reference "
             f"(prediction, route/exit); latency in {lat_unit or 'n/a'}; flash and RAM "
             f"of the linked firmware in bytes.", "",
             "| method | samples | accuracy (device) | mismatches | latency median | latency p95 "
             "| flash | RAM | routes / exits |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rep = r["report"]
        lat = rep["latency"]
        mem = (rep.get("memory") or {}).get("build") or {}
        hist = (rep.get("routing") or {}).get("device")
        lines.append(
            f"| {label(r['method'])} | {rep['samples']} | {100 * rep['accuracy']:.2f}% | "
            f"{rep['mismatches'] + rep.get('route_mismatches', 0)} | "
            f"{_fmt(lat.get('median'), lat.get('unit'))} | {_fmt(lat.get('p95'), lat.get('unit'))} | "
            f"{(mem.get('flash') or {}).get('total', '—'):,} | "
            f"{(mem.get('ram') or {}).get('total', '—'):,} | {hist} |")
    ee = [r for r in rows if r["exits"]]
    if ee:
        lines += ["", "## Early exits: measured cost against the exit histogram", "",
                  "Predicted = the mean over the windows of the cost of the exit each took "
                  "(each exit's cost measured on the first window that left there).", "",
                  "| method | exits histogram | cost per exit | measured mean | predicted mean "
                  "| error | saving vs always the final exit |", "|---|---|---|---|---|---|---|"]
        for r in ee:
            e = r["exits"]
            saving = ("final exit never taken" if not e["worst_exit_cost"] else
                      f"{100 * (1.0 - e['measured_mean'] / e['worst_exit_cost']):.1f}%")
            lines.append(f"| {label(r['method'])} | {e['histogram']} | "
                         f"{[round(v) for v in e['per_exit'].values()]} | "
                         f"{e['measured_mean']:,.0f} | {e['predicted_mean']:,.0f} | "
                         f"{100 * e['error']:+.2f}% | {saving} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="device_results", description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="RUN with compare/compare.json")
    p.add_argument("--board", default="mps2_an500", choices=["mps2_an500", "host"])
    p.add_argument("--work", type=Path, help="builds and evaluations [RUN/device]")
    p.add_argument("--limit", type=int, help="only the first N test windows")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, required=True,
                   help="folder for the table (scripts/device_results.sh: docs/results)")
    a = p.parse_args(argv)
    try:
        work = a.work or a.run / "device"
        rows = [measure(a.run, m, a.board, work, limit=a.limit, jobs=a.jobs)
                for m in deployable_methods(a.run)]
        cfg = json.loads((a.run / "config.json").read_text())
        dataset = str(cfg.get("dataset", "run")).split(":")[0]
        text = render(rows, dataset=dataset, preset=str(cfg.get("preset")), board=a.board)
        a.out.mkdir(parents=True, exist_ok=True)
        out = a.out / f"device_{dataset}_{cfg.get('preset')}_{a.board}.md"
        out.write_text(text)
        (out.with_suffix(".json")).write_text(json.dumps(
            [{k: v for k, v in r.items() if k != "report"} | {"summary": {
                k: r["report"].get(k) for k in ("samples", "accuracy", "mismatches",
                                                "route_mismatches", "latency", "routing")}}
             for r in rows], indent=1, default=str))
        print(out)
    except DitmosError as err:
        print(f"ditmos: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
