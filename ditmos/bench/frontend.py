"""``ditmos bench frontend``: what the fixed-point MFCC front end costs in
accuracy on ``fsdd_audio``, measured two ways.

(a) **The same model, two front ends.**  Each trained model classifies the
validation and test clips twice: with the features of the front end it was
trained on and with those of the other front end, mapped exactly onto its
units (:func:`ditmos.data.mfcc_fixed.to_float_units`).  For a model trained
on float features this is what deploying it with the on-device front end
does; the accuracy difference and the agreement rate (same answer for the
same clip) isolate the front end's arithmetic from training noise, since
model, clips and normalisation are the same.

(b) **Models trained on each front end.**  Runs trained on ``fsdd_audio``
(fixed-point features) against runs trained on ``fsdd_audio_float`` (float
features), each on its own features, mean ± std over the seeds.  This also
contains everything that differs between two trainings (initialisation,
order), which on a one-speaker test split is larger than 1 point; see the
printed binomial standard error.

Accuracies are those of the float Keras models (the DiTMoS composition and
the run's strong CNN), selected on validation as in training; quantisation
is the same for both front ends and is left out.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import click
import numpy as np

from ditmos.errors import DitmosError

KINDS = {"fsdd_audio": "fixed", "fsdd_audio_float": "float"}
SPLITS = ("val", "test")
MODELS = ("ditmos", "strong")


def _run_info(run_dir: Path) -> dict:
    from ditmos.jsonio import read_json

    hint = f"is {run_dir} a finished `ditmos train` run directory?"
    if not run_dir.is_dir():
        raise DitmosError(f"run directory {run_dir} does not exist")
    cfg = read_json(run_dir / "config.json", hint)
    if cfg.get("dataset") not in KINDS:
        raise DitmosError(
            f"{run_dir} was trained on '{cfg.get('dataset')}'; the front-end "
            f"benchmark takes runs of {' or '.join(KINDS)}"
        )
    for name in ("export/export.json", "models/strong.keras", "splits.npz", "normalization.json"):
        if not (run_dir / name).exists():
            raise DitmosError(f"{run_dir} has no {name}: {hint}")
    return cfg


def _features(clips: np.ndarray, cfg) -> dict[str, np.ndarray]:
    """Both front ends' features of ``clips``, in each front end's dataset units."""
    from ditmos.data.fsdd_audio import features
    from ditmos.data.mfcc_fixed import to_float_units

    fixed = features(clips, "fixed", cfg)  # log2 Q10 / 1024, as fsdd_audio
    flt = features(clips, "float", cfg)  # natural log, as fsdd_audio_float
    per_c0 = 45.0 * math.sqrt(cfg.n_mels)
    float_as_fixed = flt / np.log(2.0)
    float_as_fixed[..., 0] += per_c0
    return {
        # what a model trained on fsdd_audio sees from each front end
        "fixed": {"fixed": fixed, "float": float_as_fixed.astype(np.float32)},
        # what a model trained on fsdd_audio_float sees from each front end
        "float": {"fixed": to_float_units(fixed * 1024.0, cfg).astype(np.float32), "float": flt},
    }


class _Strong:
    """The run's strong CNN (``models/strong.keras``): window -> class."""

    def __init__(self, path: Path):
        import keras

        try:
            self.model = keras.models.load_model(path, compile=False)
        except (OSError, ValueError) as e:
            raise DitmosError(f"cannot load {path}: {e}") from None

    def predict(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        import tensorflow as tf

        outs = []
        for i in range(0, len(x), batch):
            z = self.model({"window": tf.constant(x[i : i + batch], tf.float32)}, training=False)
            outs.append(np.argmax(np.asarray(z["logits"] if isinstance(z, dict) else z), axis=1))
        return np.concatenate(outs).astype(np.int64)


def _predictors(run_dir: Path):
    from ditmos.robust.targets import DitmosTarget

    return {"ditmos": DitmosTarget.from_run(run_dir), "strong": _Strong(run_dir / "models" / "strong.keras")}


def _spread(idx: np.ndarray, samples: int | None) -> np.ndarray:
    """``samples`` indices spread evenly over ``idx`` (all of them without a limit)."""
    if not samples or samples >= len(idx):
        return idx
    return idx[np.linspace(0, len(idx) - 1, samples).round().astype(np.int64)]


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _pm(values: list[float], scale: float = 100.0, signed: bool = False) -> str:
    m, s = _mean_std(values)
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return fmt.format(m * scale) + (f" ± {s * scale:.2f}" if len(values) > 1 else "")


def measure(
    fixed_runs: list[Path], float_runs: list[Path], samples: int | None = None, progress=lambda msg: None
) -> dict:
    """The benchmark's result (see the module doc); runs must share one split."""
    from ditmos.data import Normalizer, Splits
    from ditmos.data.fsdd_audio import CONFIG, fit_clips, load_clips

    runs = [(Path(r), "fixed") for r in fixed_runs] + [(Path(r), "float") for r in float_runs]
    if not runs:
        raise DitmosError("give at least one run (--fixed RUN or --float RUN)")
    infos = []
    for run_dir, kind in runs:
        cfg = _run_info(run_dir)
        if KINDS[cfg["dataset"]] != kind:
            flag = "--fixed" if KINDS[cfg["dataset"]] == "fixed" else "--float"
            raise DitmosError(f"{run_dir} was trained on '{cfg['dataset']}'; pass it with {flag}")
        infos.append(cfg)
    splits = [Splits.load(r / "splits.npz") for r, _ in runs]
    for (r, _), s in zip(runs[1:], splits[1:]):
        if any(not np.array_equal(getattr(s, n), getattr(splits[0], n)) for n in ("train", "val", "test")):
            raise DitmosError(
                f"{r} has another data split than {runs[0][0]}; compare runs of one split (the same split_seed)"
            )
    split = splits[0]
    _, a = load_clips()
    clips = fit_clips(a["audio"], a["lengths"], CONFIG.clip_samples)
    idx = {n: _spread(getattr(split, n), samples) for n in SPLITS}
    progress(f"front-end features of {sum(len(v) for v in idx.values())} clips (both front ends)")
    feats = {n: _features(clips[idx[n]], CONFIG) for n in SPLITS}
    labels = {n: a["label"][idx[n]].astype(np.int64) for n in SPLITS}
    speakers = [str(s) for s in a["speaker_names"]]
    out = {
        "dataset": "fsdd_audio",
        "samples": samples,
        "split": {
            n: {
                "clips": int(len(getattr(split, n))),
                "clips_used": int(len(idx.get(n, []))),
                "speakers": sorted({speakers[int(s)] for s in a["speaker"][getattr(split, n)]}),
            }
            for n in ("train", "val", "test")
        },
        "runs": [],
    }
    for (run_dir, kind), cfg in zip(runs, infos):
        progress(f"{run_dir} (trained on {kind} features, seed {cfg.get('seed')})")
        norm = Normalizer.load(run_dir / "normalization.json")
        row = {
            "run": str(run_dir),
            "trained_on": kind,
            "seed": cfg.get("seed"),
            "preset": cfg.get("preset"),
            "models": {},
        }
        for name, target in _predictors(run_dir).items():
            res = {}
            for n in SPLITS:
                y = labels[n]
                pred = {fe: target.predict(norm.apply(feats[n][kind][fe])) for fe in ("fixed", "float")}
                res[n] = {
                    "fixed_features": float(np.mean(pred["fixed"] == y)),
                    "float_features": float(np.mean(pred["float"] == y)),
                    "agreement": float(np.mean(pred["fixed"] == pred["float"])),
                    "clips": int(len(y)),
                }
            row["models"][name] = res
        out["runs"].append(row)
    return out


def _binomial_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


def render_markdown(res: dict, command: str) -> str:
    sp = res["split"]
    lines = [
        "# Fixed-point vs float MFCC front end (fsdd_audio)",
        "",
        f"Written by `{command}`; do not edit by hand. Accuracies in %, mean ± standard "
        "deviation (n−1) over the runs; float Keras models (DiTMoS and the run's strong CNN).",
        "",
        "## Split",
        "",
        "| split | speakers | clips | clips used |",
        "|---|---|---|---|",
    ]
    for n in ("train", "val", "test"):
        lines.append(
            f"| {n} | {len(sp[n]['speakers'])} ({', '.join(sp[n]['speakers'])}) | "
            f"{sp[n]['clips']} | {sp[n]['clips_used'] or '—'} |"
        )
    runs = res["runs"]
    accs = [r["models"][m]["test"][f"{r['trained_on']}_features"] for r in runs for m in MODELS]
    n_test = sp["test"]["clips_used"]
    if accs:
        p = float(np.mean(accs))
        lines += [
            "",
            f"One accuracy on {n_test} test clips of {len(sp['test']['speakers'])} "
            f"speaker(s) has a binomial standard error of "
            f"{100 * _binomial_se(p, n_test):.1f} points at the mean accuracy here "
            f"({100 * p:.1f}%), and the clips of one speaker are not independent, so "
            "differences between separately trained models of about a point are noise; "
            "table (a) compares the same model on the same clips and is the measure "
            "of the front end itself.",
        ]
    lines += [
        "",
        "## (a) The same model, fed by each front end",
        "",
        "Each model classifies the same clips with the features of both front ends "
        "(the other front end's features mapped exactly onto its units). Δ = fixed-point − "
        "float; agreement = same answer for the same clip.",
        "",
        "| trained on | model | split | runs | float features | fixed-point features | Δ (pp) | agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("float", "fixed"):
        group = [r for r in runs if r["trained_on"] == kind]
        if not group:
            continue
        for m in MODELS:
            for n in SPLITS:
                v = [r["models"][m][n] for r in group]
                lines.append(
                    f"| {kind} features | {m} | {n} | {len(group)} | "
                    f"{_pm([x['float_features'] for x in v])} | {_pm([x['fixed_features'] for x in v])} | "
                    f"{_pm([x['fixed_features'] - x['float_features'] for x in v], signed=True)} | "
                    f"{_pm([x['agreement'] for x in v])} |"
                )
    fixed = [r for r in runs if r["trained_on"] == "fixed"]
    flt = [r for r in runs if r["trained_on"] == "float"]
    if fixed and flt:
        lines += [
            "",
            "## (b) Models trained on each front end's features",
            "",
            "Each run evaluated on the features it was trained on.",
            "",
            "| model | split | trained on fixed-point (runs) | trained on float (runs) | Δ (pp) |",
            "|---|---|---|---|---|",
        ]
        for m in MODELS:
            for n in SPLITS:
                a = [r["models"][m][n]["fixed_features"] for r in fixed]
                b = [r["models"][m][n]["float_features"] for r in flt]
                lines.append(
                    f"| {m} | {n} | {_pm(a)} ({len(a)}) | {_pm(b)} ({len(b)}) | "
                    f"{100 * (np.mean(a) - np.mean(b)):+.2f} |"
                )
    lines += [
        "",
        "## Runs",
        "",
        "| run | trained on | seed | preset | DiTMoS val | DiTMoS test | strong val | strong test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        own = f"{r['trained_on']}_features"
        cells = [f"{100 * r['models'][m][n][own]:.2f}" for m in MODELS for n in SPLITS]
        lines.append(
            f"| `{Path(r['run']).name}` ({Path(r['run']).parent.name}) | {r['trained_on']} | "
            f"{r['seed']} | {r['preset']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


@click.command()
@click.option(
    "--fixed",
    "fixed_runs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A run trained on fsdd_audio (fixed-point features); repeat for each seed.",
)
@click.option(
    "--float",
    "float_runs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A run trained on fsdd_audio_float (float features); repeat for each seed.",
)
@click.option(
    "--samples",
    default=None,
    type=click.IntRange(1),
    help="Only N clips of the validation and test splits, spread evenly (default: all).",
)
@click.option(
    "--write",
    "write_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the tables as Markdown to this file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(fixed_runs, float_runs, samples, write_path, as_json):
    """Accuracy cost of the fixed-point MFCC front end on fsdd_audio: (a) each
    given run's models classify the validation and test clips with the
    features of both front ends (accuracy, difference, agreement); (b) runs
    trained on fixed-point features (--fixed) against runs trained on float
    features (--float), mean ± std over the runs.

    The runs come from 'ditmos train --dataset fsdd_audio' and '--dataset
    fsdd_audio_float' with the same split; scripts/frontend_results.sh
    trains seeds 0, 1, 2 of each and writes docs/results/frontend_fsdd_audio.md
    with this command."""
    import sys

    def progress(msg: str) -> None:
        click.echo(f"[frontend] {msg}", err=True)

    res = measure(list(fixed_runs), list(float_runs), samples, progress)
    # the command as run, with the runs' common folder shown as RUNS
    paths = [str(Path(r).resolve()) for r in (*fixed_runs, *float_runs)]
    common = os.path.commonpath(paths) if len(paths) > 1 else str(Path(paths[0]).parent)
    argv = ["ditmos", "bench", "frontend"]
    for flag, group in (("--fixed", fixed_runs), ("--float", float_runs)):
        for r in group:
            argv += [flag, "RUNS/" + os.path.relpath(Path(r).resolve(), common)]
    if samples:
        argv += ["--samples", str(samples)]
    text = render_markdown(res, " ".join(argv))
    if write_path is not None:
        write_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = write_path.with_name(write_path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, write_path)
        progress(f"wrote {write_path}")
    if as_json:
        click.echo(json.dumps(res, indent=1))
    else:
        sys.stdout.write(text)
