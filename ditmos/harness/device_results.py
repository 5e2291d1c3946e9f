"""Every deployable method of a comparison measured on one board, as a table.

    python -m ditmos.harness.device_results RUN [--board mps2_an500] [--work DIR]
        [--limit N] [--jobs J] [--out docs/results]

(``scripts/device_results.sh`` runs exactly this.)  For each method of
``RUN/compare/compare.json`` at RUN's width that can be deployed (DiTMoS, its
ablations, the single CNNs, the early-exit CNN): ``ditmos quantize --method``
(when its ``int8/`` is missing), ``ditmos build --method`` into
``WORK/build/<method>`` and ``ditmos evaluate --emulate`` into
``WORK/eval/<method>`` (both reused when complete for the same model and the
same firmware sources, templates and code generator), then
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
import shutil
import sys
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.methods import compare_dir_of, deployable, label, method_run_dir

COMMAND = "scripts/device_results.sh RUN [--board mps2_an500] [--work DIR] [--limit N]"


def _sources_key() -> str:
    """sha256 over the firmware sources, templates and code generator that a
    build is made from: builds and evaluations are reused only while it holds."""
    import hashlib

    from ditmos.paths import firmware_dir, package_root, templates_dir

    h = hashlib.sha256()
    roots = [firmware_dir(), templates_dir(), package_root() / "codegen"]
    for root in roots:
        for f in sorted(p for p in Path(root).rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


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
    return {
        "measured_mean": float(cost.mean()),
        "predicted_mean": predicted,
        "error": float(cost.mean() / predicted - 1.0),
        "per_exit": per_exit,
        "worst_exit_cost": worst,
        "histogram": np.bincount(exits).tolist(),
    }


def _point(r: dict) -> dict | None:
    """A row's (accuracy, median latency, flash, RAM), or None when a figure is missing."""
    rep = r["report"]
    lat = rep.get("latency") or {}
    mem = (rep.get("memory") or {}).get("build") or {}
    flash, ram = (mem.get("flash") or {}).get("total"), (mem.get("ram") or {}).get("total")
    if not lat.get("available") or rep.get("accuracy") is None or flash is None or ram is None:
        return None
    return {"accuracy": float(rep["accuracy"]), "latency": float(lat["median"]), "flash": int(flash), "ram": int(ram)}


def pareto(rows: list[dict], costs: tuple[str, ...]) -> dict[str, list[str]]:
    """Per method: [] when it is on the front of accuracy (higher is better)
    against ``costs`` (each lower is better), else the methods dominating it
    (at least as accurate and at most as costly on every cost, better on one).
    Methods without every figure are left out."""
    pts = {r["method"]: pt for r in rows if (pt := _point(r)) is not None}
    keys = ("accuracy",) + tuple(costs)

    def better_eq(a, b):  # a at least as good as b on every key
        return a["accuracy"] >= b["accuracy"] and all(a[c] <= b[c] for c in costs)

    return {
        m: [o for o, q in pts.items() if o != m and better_eq(q, p) and any(q[k] != p[k] for k in keys)]
        for m, p in pts.items()
    }


def host_claim(run_dir: Path, method: str) -> dict | None:
    """The saving of average over worst-case MACs that the comparison's host
    table claims for an early-exit row (``saving`` = 1 - avg/max) and its
    per-exit MACs, or None."""
    cdir = compare_dir_of(run_dir)
    if cdir is None:
        return None
    comp = json.loads((cdir / "compare.json").read_text())
    cfg = json.loads((run_dir / "config.json").read_text())
    w = float(cfg.get("width", 0))
    for res in comp["results"].values():
        row = res["methods"].get(method) or {}
        if abs(float(res["width"]) - w) < 1e-9 and row.get("avg_macs") and row.get("max_macs"):
            return {
                "saving": 1.0 - float(row["avg_macs"]) / float(row["max_macs"]),
                "exit_macs": [int(v) for v in row.get("exit_macs") or []],
            }
    return None


def measure(run_dir: Path, method: str, board: str, work: Path, *, limit: int | None, jobs: int, log=print) -> dict:
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
    stamp = bdir.parent / f"{method}.sources"  # the firmware sources the build was made from
    edir = work / "eval" / method
    key = _sources_key()
    same_sources = stamp.is_file() and stamp.read_text() == key
    if not (same_sources and bman.is_file() and json.loads(bman.read_text()).get("model_hash") == model_hash):
        log(f"[{method}] building for {board}")
        if edir.exists():  # measured on another firmware: measure again
            shutil.rmtree(edir)
        build_firmware(board, mdir / "int8", bdir)
        stamp.write_text(key)
    rep_path = edir / "report.json"
    rep = json.loads(rep_path.read_text()) if rep_path.is_file() else None
    if not (rep and rep.get("complete") and rep.get("model_hash") == model_hash):
        log(f"[{method}] evaluating on {board}")
        rep = evaluate(
            mdir,
            bdir,
            edir,
            emulate=True,
            jobs=jobs,
            limit=limit,
            method=method,
            resume=rep_path.parent.is_dir() and (edir / "session.json").is_file(),
        )
    samples = list(read_samples(edir / "samples.jsonl").values())
    K = int(json.loads((mdir / "int8" / "manifest.json").read_text())["K"])
    exits = exit_prediction(samples, K) if rep["meta"].get("model_kind") == "network" and K > 1 else None
    if exits is not None:
        exits["host_claim"] = host_claim(run_dir, method)
    return {"method": method, "report": rep, "run_dir": str(mdir), "exits": exits}


def _fmt(v, unit: str) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if unit in ("instructions", "cycles") else f"{v:.3g}"


def trained_by(run_dir: Path) -> str | None:
    """The `ditmos train --compare` command line of RUN's comparison."""
    from ditmos.training.results import _command

    cdir = compare_dir_of(run_dir)
    if cdir is None:
        return None
    cmd = _command(json.loads((cdir / "compare.json").read_text()))
    w = json.loads((Path(run_dir) / "config.json").read_text()).get("width")
    return cmd + (f" --width {float(w):g}" if w is not None and float(w) != 1.0 else "")


def render(rows: list[dict], *, dataset: str, preset: str, board: str, command: str | None = None) -> str:
    lat_unit = next((r["report"]["latency"].get("unit") for r in rows if r["report"]["latency"].get("available")), None)
    lines = [
        f"# {dataset} ({preset}): every compared model on {board}",
        "",
        f"Written by `{COMMAND}`; never edit by hand. Accuracy on the device over "
        f"the evaluated test windows; mismatches against the host int8 reference "
        f"(prediction, route/exit); latency in {lat_unit or 'n/a'}; flash and RAM "
        f"of the linked firmware in bytes." + (f" The comparison (RUN) was trained by `{command}`." if command else ""),
        "",
        "| method | samples | accuracy (device) | mismatches | latency median | latency p95 "
        "| flash | RAM | routes / exits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
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
            f"{(mem.get('ram') or {}).get('total', '—'):,} | {hist} |"
        )
    ee = [r for r in rows if r["exits"]]
    if ee:
        lines += [
            "",
            "## Early exits: measured cost against the exit histogram",
            "",
            "Predicted = the mean over the windows of the cost of the exit each took "
            "(each exit's cost measured on the first window that left there).",
            "",
            "| method | exits histogram | cost per exit | measured mean | predicted mean "
            "| error | saving vs always the final exit | saving the host table claims "
            "(1 - avg/max MACs) | MACs per exit (host) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in ee:
            e = r["exits"]
            saving = (
                "final exit never taken"
                if not e["worst_exit_cost"]
                else f"{100 * (1.0 - e['measured_mean'] / e['worst_exit_cost']):.1f}%"
            )
            hc = e.get("host_claim")
            claim = "—" if hc is None else f"{100 * hc['saving']:.1f}%"
            lines.append(
                f"| {label(r['method'])} | {e['histogram']} | "
                f"{[round(v) for v in e['per_exit'].values()]} | "
                f"{e['measured_mean']:,.0f} | {e['predicted_mean']:,.0f} | "
                f"{100 * e['error']:+.2f}% | {saving} | {claim} | "
                f"{hc['exit_macs'] if hc else '—'} |"
            )
        lines += [
            "",
            "The host table's saving counts MACs only; the measured one counts every "
            "instruction, including the part of an inference that does not shrink "
            "with an earlier exit (the cost per exit minus its MACs).",
        ]
    lines += render_pareto(rows, lat_unit)
    return "\n".join(lines) + "\n"


def render_pareto(rows: list[dict], lat_unit: str | None) -> list[str]:
    """The measured Pareto fronts and where DiTMoS stands on them."""
    fronts = {"latency": pareto(rows, ("latency",)), "all": pareto(rows, ("latency", "flash", "ram"))}
    if not fronts["all"]:
        return []
    lines = [
        "",
        "## Measured Pareto front",
        "",
        f"Accuracy on the device against the median latency ({lat_unit}) alone, and "
        f"against latency, flash and RAM together: a method is on a front when no other "
        f"is at least as accurate and at most as costly on each of those figures (and "
        f"better on one). Otherwise the methods that dominate it are listed.",
        "",
        "| method | accuracy | latency median | flash | RAM | front: accuracy vs latency "
        "| front: accuracy vs latency, flash, RAM |",
        "|---|---|---|---|---|---|---|",
    ]
    by = {r["method"]: r for r in rows}
    order = sorted(fronts["all"], key=lambda m: _point(by[m])["latency"])
    for m in order:
        pt = _point(by[m])
        cells = [
            "**yes**" if not fronts[k][m] else "no (" + ", ".join(label(o) for o in fronts[k][m]) + ")"
            for k in ("latency", "all")
        ]
        lines.append(
            f"| {label(m)} | {100 * pt['accuracy']:.2f}% | "
            f"{_fmt(pt['latency'], lat_unit)} | {pt['flash']:,} | {pt['ram']:,} | "
            f"{cells[0]} | {cells[1]} |"
        )
    if "ditmos" in fronts["all"]:
        d = _point(by["ditmos"])
        parts = []
        for k, what in (("latency", "accuracy vs latency"), ("all", "accuracy vs latency, flash and RAM")):
            dom = fronts[k]["ditmos"]
            parts.append(
                f"on the {what} front"
                if not dom
                else f"not on the {what} front (dominated by " + ", ".join(label(o) for o in dom) + ")"
            )
        better = [label(m) for m in order if m != "ditmos" and _point(by[m])["accuracy"] > d["accuracy"]]
        lines += [
            "",
            f"Where DiTMoS stands: {100 * d['accuracy']:.2f}% on the device at "
            f"{_fmt(d['latency'], lat_unit)} {lat_unit or ''} median; "
            + "; ".join(parts)
            + ". More accurate on the device: "
            + (", ".join(better) if better else "none")
            + ".",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="device_results", description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="RUN with compare/compare.json")
    p.add_argument("--board", default="mps2_an500", choices=["mps2_an500", "host"])
    p.add_argument("--work", type=Path, help="builds and evaluations [RUN/device]")
    p.add_argument("--limit", type=int, help="only the first N test windows")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument(
        "--out", type=Path, required=True, help="folder for the table (scripts/device_results.sh: docs/results)"
    )
    a = p.parse_args(argv)
    try:
        work = a.work or a.run / "device"
        rows = [measure(a.run, m, a.board, work, limit=a.limit, jobs=a.jobs) for m in deployable_methods(a.run)]
        cfg = json.loads((a.run / "config.json").read_text())
        dataset = str(cfg.get("dataset", "run")).split(":")[0]
        text = render(rows, dataset=dataset, preset=str(cfg.get("preset")), board=a.board, command=trained_by(a.run))
        a.out.mkdir(parents=True, exist_ok=True)
        out = a.out / f"device_{dataset}_{cfg.get('preset')}_{a.board}.md"
        out.write_text(text)
        (out.with_suffix(".json")).write_text(
            json.dumps(
                [
                    {k: v for k, v in r.items() if k not in ("report", "run_dir")}
                    | {"run_dir": str(Path("RUN") / Path(r["run_dir"]).relative_to(a.run))}
                    | {
                        "summary": {
                            k: r["report"].get(k)
                            for k in ("samples", "accuracy", "mismatches", "route_mismatches", "latency", "routing")
                        }
                    }
                    for r in rows
                ],
                indent=1,
                default=str,
            )
        )
        print(out)
    except DitmosError as err:
        print(f"ditmos: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
