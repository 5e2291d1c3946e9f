"""Architecture search for DiTMoS inside a MAC budget.

The equal-MACs single CNN of the comparison gets a search (one candidate per
depth, channels solved to the budget, best on validation).  DiTMoS gets the
same effort: the same number of trials, each a *template* -- K, the kernels,
the channel ratios of the selector and of the classifier (how the budget is
split between the shared trunk and the head), which selector blocks feed the
classifiers, the FC width -- whose channel scale is solved so that selector +
one classifier costs the budget (within the same tolerance as the baseline).
Every candidate is a full DiTMoS run; the one best on VALIDATION is kept.

The budget is the cost of the preset architecture at the requested width, so
``--width`` keeps its meaning (0.25 = a quarter of the reference network's
channels, in MACs).  Candidates are written as architecture dicts *before*
width scaling, so a candidate run's ``config.json`` keeps the width it
stands for.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ditmos.errors import DitmosError
from ditmos.models.arch import architecture_from_dict, check_fits, costs

# Templates, most promising first (a run with ``trials`` = n uses the first n).
# ``selector``/``classifier``: channel ratios per block (block 1 of the
# selector = 1); ``kernels`` are shared by both networks (shared blocks need
# equal lengths); ``fc``: the FC width relative to the selector's block 1.
TEMPLATES = {
    "har": [
        {"K": 3, "kernels": [7, 9, 5], "selector": [1, 1, 1], "classifier": [0.5, 1, 1], "fc": 4, "shared": [1, 2]},
        {"K": 4, "kernels": [15, 9, 5], "selector": [1, 1, 0.5], "classifier": [0.5, 1, 1], "fc": 4, "shared": [1, 2]},
        {"K": 2, "kernels": [7, 9, 5], "selector": [1, 1.5, 1], "classifier": [0.25, 1, 1], "fc": 4, "shared": [1, 2]},
        {"K": 3, "kernels": [7, 5, 5], "selector": [1, 1, 0.5], "classifier": [1, 1, 1], "fc": 4, "shared": [1]},
    ],
    "mfcc": [
        {"K": 3, "kernels": [3, 3, 3], "selector": [1, 1, 1], "classifier": [0.5, 1, 1], "fc": 4, "shared": [1, 2]},
        {"K": 4, "kernels": [5, 3, 3], "selector": [1, 1, 0.5], "classifier": [0.5, 1, 1], "fc": 4, "shared": [1, 2]},
        {"K": 2, "kernels": [3, 3, 3], "selector": [1, 1.5, 1], "classifier": [0.25, 1, 1], "fc": 4, "shared": [1, 2]},
        {"K": 3, "kernels": [3, 3, 3], "selector": [1, 1, 0.5], "classifier": [1, 1, 1], "fc": 4, "shared": [1]},
    ],
}
TOLERANCE = 0.10  # the equal-MACs baseline's tolerance
TRIALS = {"quick": 2, "full": 3}  # the equal-MACs baseline's number of candidates


@dataclass(frozen=True)
class Candidate:
    name: str
    template: dict
    architecture: dict  # before width scaling
    macs: int
    ratio: float  # macs / budget

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "template": self.template,
            "architecture": self.architecture,
            "macs": self.macs,
            "ratio": round(self.ratio, 4),
        }


def budget_macs(base_arch: dict, width: float, input_shape, num_classes: int) -> int:
    """MACs per inference (selector + one classifier) of ``base_arch`` at ``width``."""
    arch = architecture_from_dict(base_arch, width=width)
    return int(costs(arch, tuple(input_shape), num_classes)["ditmos"]["macs"])


def _arch_dict(
    base_arch: dict, tpl: dict, scale: float, width: float, head: float = 1.0, fc: int | None = None
) -> dict:
    """Template at channel scale ``scale`` (channels of selector block 1, after
    width scaling; the classifier's ratios times ``head``; FC width ``fc``,
    default the template's), written before width scaling."""

    def pre(c: float) -> int:
        return max(1, round(max(1, round(c)) / width))

    out = copy.deepcopy(base_arch)
    pools = [b.get("pool", 2) for b in base_arch["selector"]["blocks"]]
    n = len(tpl["kernels"])
    pools = (pools + [pools[-1]] * n)[:n]
    out["K"] = tpl["K"]
    out["shared_blocks"] = list(tpl["shared"])
    fc = [pre(scale * tpl["fc"] if fc is None else fc)]
    for net, mult in (("selector", 1.0), ("classifier", head)):
        out[net] = {
            "blocks": [
                {"filters": pre(scale * r * mult), "kernel": k, "pool": p}
                for r, k, p in zip(tpl[net], tpl["kernels"], pools)
            ],
            "fc": fc,
        }
    return out


_HEAD = (1.0, 0.75, 1.25, 1.5, 0.5)
_FC = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def _penalty(ratio: float, head: float, fc: int, nominal_fc: float) -> float:
    """Closeness to the budget first, then to the template's own proportions."""
    return abs(math.log(ratio)) + 0.05 * abs(math.log2(head)) + 0.02 * abs(math.log2(fc / max(nominal_fc, 1.0)))


def candidates(
    base_arch: dict, width: float, input_shape, num_classes: int, *, trials: int, n_train: int | None = None
) -> tuple[int, list[Candidate]]:
    """The budget and the first ``trials`` templates that fit it.

    For each template the selector's block-1 channel count is searched (all
    other channels follow the ratios); the scale whose MACs are closest to the
    budget is kept if within :data:`TOLERANCE`.  Templates that cannot meet
    the budget or do not fit the input are skipped.
    """
    family = base_arch.get("family", "har")
    if family not in TEMPLATES:
        family = "har"
    target = budget_macs(base_arch, width, input_shape, num_classes)
    found: list[Candidate] = []
    for i, tpl in enumerate(TEMPLATES[family]):
        if len(found) >= trials:
            break
        if n_train is not None and n_train // tpl["K"] < 8:
            continue
        best = None
        for scale in range(1, 257):
            too_big = True
            for head in _HEAD:
                for fc in _FC:
                    d = _arch_dict(base_arch, tpl, scale, width, head, fc)
                    try:
                        arch = architecture_from_dict(d, width=width)
                        check_fits(arch, tuple(input_shape))
                    except DitmosError:
                        continue
                    macs = int(costs(arch, tuple(input_shape), num_classes)["ditmos"]["macs"])
                    ratio = macs / target
                    too_big = too_big and ratio > 1 + TOLERANCE
                    if abs(ratio - 1) > TOLERANCE:
                        continue
                    pen = _penalty(ratio, head, fc, scale * tpl["fc"])
                    if best is None or pen < best[0]:
                        best = (pen, Candidate(f"t{i + 1}", tpl, d, macs, ratio))
            if too_big:
                break
        if best is not None:
            found.append(best[1])
    if not found:
        raise DitmosError(
            f"no DiTMoS search template meets the budget of {target} MACs (width {width:g}) within {TOLERANCE:.0%}"
        )
    return target, found


def describe_space(family: str, trials: int) -> str:
    """One line for the comparison: what the DiTMoS search tries."""
    tpls = TEMPLATES.get(family, TEMPLATES["har"])[:trials]
    parts = [
        f"K={t['K']} kernels {t['kernels']} selector {t['selector']} classifier {t['classifier']} shared {t['shared']}"
        for t in tpls
    ]
    return f"{len(tpls)} templates (channels solved to the budget ±{TOLERANCE:.0%}): " + "; ".join(parts)


def pick_best(run_dirs) -> tuple[Path, list[dict]]:
    """The run with the best validation accuracy (ties: the earlier candidate)."""
    rows = []
    best = None
    for rd in run_dirs:
        rd = Path(rd)
        m = json.loads((rd / "metrics.json").read_text())
        val = float(m["val"]["float"]["ditmos"])
        rows.append({"run_dir": rd.name, "val_accuracy": val, "macs": int(m["model"]["macs"])})
        if best is None or val > best[0]:
            best = (val, rd)
    if best is None:
        raise DitmosError("no finished DiTMoS candidate runs to choose from")
    return best[1], rows


def search_train(
    dataset: str,
    preset: str,
    out_dir,
    *,
    width: float,
    seed: int,
    config_file=None,
    quiet: bool = False,
    trials: int | None = None,
) -> Path:
    """Train every candidate into ``out_dir/search/<name>`` (finished ones are
    reused), write ``out_dir/search.json`` and return the run directory chosen
    on validation."""
    from ditmos.training.config import resolve_config
    from ditmos.training.run import prepare_data, train_run

    out_dir = Path(out_dir)
    trials = TRIALS.get(preset, 2) if trials is None else int(trials)
    base = resolve_config(dataset, preset, config_file=config_file, width=width, seed=seed)
    ds, splits, _, data = prepare_data(base)
    target, cands = candidates(
        base["architecture"], width, ds.X.shape[1:], data["num_classes"], trials=trials, n_train=len(splits.train)
    )
    run_dirs = []
    for c in cands:
        rd = out_dir / "search" / c.name
        if not (rd / "metrics.json").is_file():
            train_run(
                dataset,
                preset,
                rd,
                config_file=config_file,
                width=width,
                seed=seed,
                resume=rd.exists(),
                quiet=quiet,
                overrides={"architecture": c.architecture},
            )
        run_dirs.append(rd)
    best, rows = pick_best(run_dirs)
    for row, c in zip(rows, cands):
        row.update(c.to_dict())
    report = {
        "budget_macs": target,
        "trials": len(cands),
        "tolerance": TOLERANCE,
        "space": describe_space(base["architecture"].get("family", "har"), trials),
        "chosen": best.name,
        "candidates": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".search.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out_dir / "search.json")
    return best
