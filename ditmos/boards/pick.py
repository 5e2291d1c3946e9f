"""``ditmos build --pick best``: among the deployable methods of a run's
comparison, the most accurate on the validation split that fits the given
latency, flash and RAM limits.

Each candidate is built for the board into a temporary folder, so flash and
RAM are the linked image's own figures.  Latency is a measured evaluation's
median when one of the ``--eval`` directories holds that method on that board,
else an estimate: the method's MACs per inference (for the early-exit CNN
the average over the exits taken on the validation split) x the board's measured instructions per
MAC for the kernel set (``instructions_per_mac`` in boards.json, from
``ditmos bench latency``) / the board's core clock, i.e. one instruction per
cycle.  The host board has no clock, so only a measured evaluation gives it a
latency.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ditmos.errors import DitmosError


class NoFit(DitmosError):
    """No candidate fits; ``candidates`` says why each was rejected."""

    def __init__(self, message: str, candidates: list) -> None:
        super().__init__(message)
        self.candidates = candidates


@dataclass
class Candidate:
    method: str
    width: float | None = None
    val_accuracy: float | None = None
    macs: float | None = None
    latency_ms: float | None = None
    latency_source: str = ""  # "estimated" / "measured" / ""
    flash: int | None = None
    ram: int | None = None
    int8_dir: Path | None = None
    rejected: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "; ".join(self.rejected) if self.rejected else "fits"


def _width_tag(have: dict, own) -> str:
    return next((w for w in have if own is not None and float(w) == float(own)), max(have, key=float))


def comparison_candidates(run_dir: Path) -> list[Candidate]:
    """One Candidate per deployable method of RUN's comparison, with its
    validation accuracy and MACs at the width `ditmos build --method` deploys
    (RUN's own width when the method was trained there, else the largest)."""
    from ditmos.methods import compare_dir_of, deployable, method_run_dir

    cdir = compare_dir_of(run_dir)
    if cdir is None:
        raise DitmosError(
            f"{run_dir} has no comparison (compare/compare.json): --pick chooses "
            f"among a comparison's methods; train one with `ditmos train "
            f"--compare`, or build one method with --method"
        )
    comp = json.loads((cdir / "compare.json").read_text())
    results = comp.get("results") or {}
    seed, seeds = comp.get("seed", 0), comp.get("seeds") or []
    own = None
    if (run_dir / "config.json").is_file():
        own = json.loads((run_dir / "config.json").read_text()).get("width")
    names = sorted({n for res in results.values() for n in res.get("methods") or {} if deployable(n)})
    out = []
    for name in names:
        have = {w: res for w, res in results.items() if name in (res.get("methods") or {})}
        tag = _width_tag(have, own)
        row = have[tag]["methods"][name]
        # the early-exit CNN: its average over the exits taken on the validation split
        c = Candidate(name, width=float(tag), macs=row.get("val_avg_macs", row.get("macs")))
        per_seed = row.get("val_accuracy_per_seed")
        if per_seed and seed in seeds and len(per_seed) == len(seeds):
            c.val_accuracy = per_seed[seeds.index(seed)]
        else:
            c.val_accuracy = row.get("val_accuracy")
        try:
            mdir = method_run_dir(run_dir, name)
        except DitmosError as e:
            c.rejected.append(f"not deployable: {e}")
            out.append(c)
            continue
        if name == "ditmos" and mdir == run_dir:
            v = _own_val_accuracy(run_dir)  # RUN itself is what is deployed: its own figure
            c.val_accuracy = v if v is not None else c.val_accuracy
        if not (mdir / "int8" / "manifest.json").is_file():
            c.rejected.append(
                f"not quantised (run `ditmos quantize {run_dir}"
                + ("" if name == "ditmos" else f" --method {name}")
                + "`)"
            )
        else:
            c.int8_dir = mdir / "int8"
        if c.val_accuracy is None:
            c.rejected.append("no validation accuracy in the comparison")
        out.append(c)
    if not out:
        raise DitmosError(f"{cdir / 'compare.json'} holds no deployable method")
    return out


def _own_val_accuracy(run_dir: Path) -> float | None:
    try:
        v = json.loads((run_dir / "metrics.json").read_text())["val"]["float"]["ditmos"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    v = v.get("accuracy") if isinstance(v, dict) else v
    return None if v is None else float(v)


def measured_latency_ms(eval_dirs, method: str, board) -> tuple[float, str] | None:
    """The median latency in ms of ``method`` on ``board`` from the first of
    ``eval_dirs`` whose report.json evaluated it there, and that directory."""
    for d in eval_dirs:
        path = Path(d) / "report.json"
        if not path.is_file():
            raise DitmosError(f"{d} has no report.json (give the --out directory of `ditmos evaluate`)")
        rep = json.loads(path.read_text())
        meta = rep.get("meta") or {}
        lat = rep.get("latency") or {}
        if (
            meta.get("method", "ditmos") != method
            or meta.get("board") != board.name
            or not lat.get("available")
            or lat.get("median") is None
        ):
            continue
        unit, med = lat.get("unit"), float(lat["median"])
        if unit == "ms":
            return med, str(d)
        if unit == "us":
            return med / 1000.0, str(d)
        if unit == "instructions" and board.core_clock_hz:
            return 1000.0 * med / board.core_clock_hz, str(d)
    return None


def estimated_latency_ms(macs, board, kernels: str) -> float | None:
    per_mac = (board.extra.get("instructions_per_mac") or {}).get(kernels)
    if macs is None or not per_mac or not board.core_clock_hz:
        return None
    return 1000.0 * float(macs) * float(per_mac) / board.core_clock_hz


def pick_best(
    board_name: str,
    run_dir: Path,
    *,
    max_latency_ms=None,
    max_flash=None,
    max_ram=None,
    eval_dirs=(),
    kernels=None,
    strategy="slicing",
    stack_size=None,
    echo: Callable[[str], None] = lambda s: None,
) -> tuple[list[Candidate], Candidate]:
    """Measure every candidate and choose; returns (candidates, picked).
    Raises DitmosError (with the table) when none fits."""
    from ditmos.boards.build import build_firmware
    from ditmos.boards.registry import get_board

    board = get_board(board_name)
    kernels = kernels or board.default_kernels
    cands = comparison_candidates(Path(run_dir))
    for c in cands:
        measured = measured_latency_ms(eval_dirs, c.method, board)
        if measured is not None:
            c.latency_ms, c.latency_source = measured[0], f"measured ({measured[1]})"
        else:
            c.latency_ms = estimated_latency_ms(c.macs, board, kernels)
            c.latency_source = "estimated" if c.latency_ms is not None else ""
        if c.int8_dir is None or max_latency_ms is None:
            continue
        if c.latency_ms is None:
            c.rejected.append(f"latency unknown on {board.name} (no clock and no measured evaluation: give --eval)")
        elif c.latency_ms > max_latency_ms:
            c.rejected.append(f"latency {c.latency_ms:.3g} ms > {max_latency_ms:g} ms")
    # only what can still be picked is built (flash and RAM of the others: "-")
    todo = [c for c in cands if c.int8_dir is not None and not c.rejected]
    with tempfile.TemporaryDirectory(prefix="ditmos-pick-") as tmp:
        for i, c in enumerate(todo, 1):
            echo(f"[{i}/{len(todo)}] building {c.method} for {board.name} to measure its flash and RAM")
            try:
                out = build_firmware(
                    board.name,
                    c.int8_dir,
                    Path(tmp) / c.method,
                    kernels=kernels,
                    strategy=strategy,
                    stack_size=stack_size,
                )
            except DitmosError as e:
                c.rejected.append(f"does not build: {e}")
                continue
            mem = json.loads((out / "manifest.json").read_text())["memory"]
            c.flash, c.ram = int(mem["flash"]["total"]), int(mem["ram"]["total"])
    for c in todo:
        if c.flash is None:
            continue
        if max_flash is not None and c.flash > max_flash:
            c.rejected.append(f"flash {c.flash} B > {max_flash} B")
        if max_ram is not None and c.ram > max_ram:
            c.rejected.append(f"RAM {c.ram} B > {max_ram} B")
    fits = [c for c in cands if not c.rejected]
    if not fits:
        given = ", ".join(
            f"{n} {v:g}"
            for n, v in (("--max-latency-ms", max_latency_ms), ("--max-flash", max_flash), ("--max-ram", max_ram))
            if v is not None
        )
        raise NoFit(f"no method of the comparison fits the limits ({given or 'none given'}); nothing was built", cands)
    best = max(fits, key=lambda c: c.val_accuracy)
    return cands, best


def format_candidates(cands: list[Candidate], picked: Candidate | None) -> str:
    lines = [f"{'method':<28}{'width':>6}{'val acc':>9}{'latency ms':>12}{'':<4}{'flash B':>9}{'RAM B':>9}  verdict"]
    for c in sorted(cands, key=lambda c: -(c.val_accuracy or -1)):
        acc = f"{100 * c.val_accuracy:.2f}%" if c.val_accuracy is not None else "-"
        lat = f"{c.latency_ms:.4g}" if c.latency_ms is not None else "-"
        src = {"estimated": " est", "": ""}.get(c.latency_source, " meas")
        verdict = "picked" if c is picked else ("rejected: " + c.verdict if c.rejected else "fits, less accurate")
        lines.append(
            f"{c.method:<28}{(c.width if c.width is not None else 0):>6g}{acc:>9}"
            f"{lat:>12}{src:<4}{c.flash if c.flash is not None else '-':>9}"
            f"{c.ram if c.ram is not None else '-':>9}  {verdict}"
        )
    notes = sorted({c.latency_source for c in cands if c.latency_source.startswith("measured")})
    lines.append(
        "latency: est = MACs x the board's measured instructions per MAC / core "
        "clock; meas = median of a measured evaluation"
        + (" (" + ", ".join(n[len("measured (") : -1] for n in notes) + ")" if notes else "")
    )
    return "\n".join(lines)
