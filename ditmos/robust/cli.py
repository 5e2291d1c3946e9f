"""``ditmos robust``: adversarial robustness of a trained run."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from ditmos.errors import DitmosError
from ditmos.jsonio import write_json

FORMAT = "ditmos-robust-attack/1"


def _atomic_npz(path: Path, **arrays) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the artefact is as readable as the rest
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.group()
def robust() -> None:
    """Adversarial robustness: attacks on every l_p norm and union accuracy.

    \b
    Radii are in normalised input units (zero mean, unit std per channel on
    the training split). Defaults depend on the window size d = T*C:
    l_inf 0.1, l_2 = 0.65*l_inf*sqrt(d), l_1 = 0.38*l_2*sqrt(d) (hapt: 0.1,
    1.8, 19; chosen so that each norm alone breaks an undefended model about
    equally, see docs/robustness.md).
    """


@robust.command("attack")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--eps",
    "eps_text",
    default=None,
    metavar="NORM=R,...",
    help="Radii, e.g. 'linf=0.1,l2=0.8,l1=9'; unnamed norms keep their defaults.",
)
@click.option("--steps", default=20, show_default=True, type=click.IntRange(0), help="PGD steps per restart.")
@click.option(
    "--restarts",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    help="PGD restarts (the first starts at the clean window).",
)
@click.option(
    "--queries",
    default=300,
    show_default=True,
    type=click.IntRange(0),
    help="Square-attack queries (gradient-free l_inf check).",
)
@click.option(
    "--samples",
    default=None,
    type=click.IntRange(1),
    help="Attack only the first N test windows (default: the whole test split).",
)
@click.option(
    "--int8/--no-int8",
    "with_int8",
    default=None,
    help="Also classify the adversarial windows with the int8 TFLM reference "
    "(needs 'ditmos quantize RUN_DIR' first) and run Square on it directly. "
    "Default: on for DiTMoS, and for a robust single or multi-exit CNN run "
    "once 'ditmos quantize RUN_DIR' has made its int8/ (a multi-exit network "
    "through its integer exit test, with the exits the int8 policy takes).",
)
@click.option(
    "--model",
    "--method",
    "model_kind",
    type=click.Choice(["auto", "ditmos", "single", "early_exit"]),
    default="auto",
    show_default=True,
    help="Which model of RUN_DIR: the DiTMoS model, the single CNN of a "
    "'ditmos train --method single --robust MODE' run or the multi-exit CNN "
    "of a '--method early_exit' run, or a comparison's network directory "
    "(RUN/compare/.../METHOD; auto: from RUN_DIR).",
)
@click.option(
    "--build",
    "build_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="A firmware build of RUN_DIR ('ditmos build --run RUN_DIR'): the device "
    "classifies every adversarial window (with --emulate or --port) and must "
    "agree with the host int8 reference on each.",
)
@click.option("--emulate", is_flag=True, help="With --build: run the build on QEMU (mps2_an500) or as host processes.")
@click.option("--port", "ports", multiple=True, metavar="URL", help="With --build: a board's serial port (repeatable).")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1), help="Emulator instances for --emulate.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--write",
    "write_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the table as markdown (e.g. for docs/results/).",
)
@click.option("--quiet", is_flag=True, help="No progress lines.")
def attack(
    run_dir: Path,
    eps_text,
    steps,
    restarts,
    queries,
    samples,
    with_int8,
    model_kind,
    build_dir,
    emulate,
    ports,
    jobs,
    seed,
    write_path,
    quiet,
) -> None:
    """Attack RUN_DIR's model on the test split with PGD (l_inf, l_2, l_1;
    for DiTMoS through the held route and through a soft-routing surrogate)
    and Square (l_inf), and report clean, per-norm and union accuracy.

    A multi-exit run (--method early_exit) is attacked through its exit
    policy (the exit the threshold takes on each iterate, a soft surrogate
    of the policy, all exits jointly, each exit alone; worst case per
    window), and its average MACs are reported clean, on those adversarial
    windows, and under a latency attack that forces late exits.

    Writes RUN_DIR/robust/attack.json and RUN_DIR/robust/adversarial.npz
    (the adversarial windows at each full radius, for on-device checks; for
    a multi-exit run also the latency attack's windows as late_NORM).
    With --build and --emulate/--port the device classifies every
    adversarial window; the command fails unless it agrees with the host int8
    reference on each (class, route and int8 scores); the harness report is
    in RUN_DIR/robust/device/.

    \b
    Example:
      ditmos robust attack runs/hapt --samples 50 --steps 5 --queries 50 --eps linf=0.1
    """
    from ditmos.robust.evaluate import AttackBudget, parse_eps
    from ditmos.robust.targets import load_target, run_model_kind
    from ditmos.training.rundir import load_run_data

    kind = run_model_kind(run_dir) if model_kind == "auto" else model_kind
    if with_int8 is None:  # DiTMoS always; the robust CNNs once `ditmos quantize` made int8/
        with_int8 = kind == "ditmos" or (run_dir / "int8" / "manifest.json").is_file()
    if build_dir is not None:
        if bool(ports) == bool(emulate):
            raise DitmosError("--build needs either --emulate or --port URL")
        if not (run_dir / "int8" / "manifest.json").is_file():
            raise DitmosError(f"--build: the device check needs the int8 model: run `ditmos quantize {run_dir}` first")
        with_int8 = True
    elif emulate or ports:
        raise DitmosError("--emulate/--port need --build BUILD_DIR (a firmware of RUN_DIR)")
    data = load_run_data(run_dir)
    x, y = data.x_test, data.y_test
    if samples:
        x, y = x[:samples], y[:samples]
    radii = parse_eps(eps_text, data.input_shape)
    budget = AttackBudget(steps=steps, restarts=restarts, square_queries=queries)
    int8_dir = run_dir / "int8"
    if with_int8 and not (int8_dir / "manifest.json").is_file():
        raise DitmosError(
            f"{int8_dir}/manifest.json not found: run 'ditmos quantize {run_dir}' first, or pass --no-int8"
        )
    kind, target = load_target(run_dir, model_kind)
    t0 = time.monotonic()

    def progress(norm, frac):
        if not quiet:
            click.echo(
                f"  {norm}: radius {frac:g} x {radii.get(norm, 0):g} done ({time.monotonic() - t0:.0f} s)", err=True
            )

    if not quiet:
        click.echo(
            f"attacking {len(x)} test windows of {run_dir} (radii {', '.join(f'{k}={v:g}' for k, v in radii.items())})",
            err=True,
        )
    out, arrays = attack_target(kind, target, x, y, radii, budget, seed, progress=progress)
    advs = {k: v for k, v in arrays.items() if k in radii}
    if with_int8:
        from ditmos.robust.int8 import int8_robustness

        out["int8"] = int8_robustness(
            int8_dir, x, y, advs, radii, queries=queries, seed=seed, exit_macs=getattr(target, "exit_macs", None)
        )
    folder = run_dir / "robust"
    folder.mkdir(exist_ok=True)
    _atomic_npz(folder / "adversarial.npz", y=y, clean=x, **arrays)
    if build_dir is not None:
        from ditmos.robust.device import device_check

        if not quiet:
            click.echo(f"classifying {3 * len(x)} adversarial windows on the device", err=True)
        out["device"] = device_check(
            run_dir, build_dir, advs, y, folder / "device", ports=ports, emulate=emulate, jobs=jobs
        )
    write_json(folder / "attack.json", out, indent=2)
    click.echo(format_table(out))
    click.echo(f"wrote {folder / 'attack.json'}")
    dev = out.get("device")
    dev_line = None
    if dev is not None:
        dev_line = (
            f"device ({dev['board']}): {dev['measured']} adversarial windows, "
            f"{dev['mismatches']} class, {dev['route_mismatches']} route and "
            f"{dev['score_mismatches']} score mismatches with the host int8 reference"
        )
        click.echo(dev_line)
    if write_path:
        f = out["float"]
        text = "\n".join(
            [
                f"# Union robustness of {run_dir.name} ({kind})",
                "",
                "Written by `ditmos robust attack` (see docs/robustness.md); do not edit by hand.",
                "",
                f"Test split, {f['n']} windows; radii "
                + ", ".join(f"{k} {v:g}" for k, v in f["radii"].items())
                + f" (normalised units); PGD {steps} steps x {restarts} restarts per norm and view"
                f", Square {queries} queries (l_inf); {out['seconds']} s.",
                "",
                format_table(out),
                "",
            ]
            + ([dev_line, ""] if dev_line else [])
        )
        write_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = write_path.with_name(f".{write_path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, write_path)
        click.echo(f"wrote {write_path}")
    if dev is not None and not dev["agree"]:
        raise DitmosError(
            f"the device disagrees with the host int8 reference on adversarial windows (see {dev['report']})"
        )


def attack_target(
    kind: str, target, x, y, radii, budget, seed: int, *, fractions=None, progress=None
) -> tuple[dict, dict]:
    """The attack report of one model (``attack.json`` without the int8 part)
    and the arrays for ``adversarial.npz``."""
    from ditmos.robust.evaluate import CURVE_FRACTIONS, exit_costs, union_robustness

    t0 = time.monotonic()
    res, advs = union_robustness(
        target, x, y, radii, budget=budget, seed=seed, fractions=fractions or CURVE_FRACTIONS, progress=progress
    )
    out = {"format": FORMAT, "model": kind, "split": "test", "seed": seed, "float": res.to_dict()}
    arrays = dict(advs)
    if kind == "early_exit":
        out["macs"], late = exit_costs(target, x, y, advs, radii, budget=budget, seed=seed, progress=progress)
        arrays.update({f"late_{k}": v for k, v in late.items()})
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out, arrays


def format_macs(m: dict) -> str:
    """The MACs a multi-exit model spends, clean and under attack (markdown)."""
    from ditmos.training.baselines import format_thresholds

    lines = [
        f"exit policy: threshold {format_thresholds(m.get('thresholds', m['threshold']))}; cumulative MACs per exit "
        f"{', '.join(f'{v:,}' for v in m['exit_macs'])}",
        "",
        "| inputs | avg MACs | vs max | exit fractions | accuracy |",
        "|---|---|---|---|---|",
    ]

    def row(name, r, acc="—"):
        lines.append(
            f"| {name} | {r['avg_macs']:,.0f} | {r['avg_macs'] / m['max_macs']:.2f} | "
            f"{' / '.join(f'{f:.2f}' for f in r['exit_fractions'])} | {acc} |"
        )

    row("clean", m["clean"])
    for n, r in m["accuracy_attack"].items():
        row(f"accuracy attack {n}", r)
    for n, r in m["latency_attack"].items():
        row(f"latency attack {n}", r, f"{100 * r['accuracy']:.2f}")
    return "\n".join(lines)


def format_table(out: dict) -> str:
    rows = [("float", out["float"])]
    if "int8" in out:
        rows.append(("int8 (float adv.)", out["int8"]["transfer"]))
        if "square" in out["int8"]:
            rows.append(("int8 (Square on int8)", out["int8"]["square"]))
    lines = ["| model | clean | linf | l2 | l1 | union |", "|---|---|---|---|---|---|"]
    for name, r in rows:
        rob = r["robust"]
        cells = [f"{100 * rob[k]:.2f}" if k in rob else "—" for k in ("linf", "l2", "l1")]
        union = "—" if r.get("union") is None else f"{100 * r['union']:.2f}"
        lines.append(f"| {name} | {100 * r['clean']:.2f} | {' | '.join(cells)} | {union} |")
    if "macs" in out:
        lines += ["", format_macs(out["macs"])]
    ex = (out.get("int8") or {}).get("exits")
    if ex:
        lines += [
            "",
            "int8 exit policy (integer confidence test, as on the device):",
            "",
            "| int8 inputs | avg MACs | exit fractions |",
            "|---|---|---|",
        ]
        rows = [("clean", ex["clean"])] + [(f"float adv. {n}", r) for n, r in ex["transfer"].items()]
        rows += [(f"Square on int8 {n}", r) for n, r in (ex.get("square") or {}).items()]
        for name, r in rows:
            lines.append(f"| {name} | {r['avg_macs']:,.0f} | {' / '.join(f'{f:.2f}' for f in r['exit_fractions'])} |")
    return "\n".join(lines)


TABLE_MODES = ("none", "linf", "l2", "l1", "max", "avg", "eat", "ramp")
TABLE_METHODS = ("single", "early_exit")


def _run_name(method: str, mode: str) -> str:
    return mode if method == "single" else f"{method}_{mode}"


@robust.command("table")
@click.option("--dataset", required=True, help="Dataset spec (hapt, fsdd, ...).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for one run directory per method and mode (MODE for the single "
    "CNN, early_exit_MODE for the multi-exit CNN; finished runs are reused).",
)
@click.option("--modes", default=",".join(TABLE_MODES), show_default=True, help="Comma-separated training modes.")
@click.option(
    "--methods",
    default="single",
    show_default=True,
    help="Comma-separated models: single (the equal-MACs CNN) and/or early_exit "
    "(the RDI-Nets multi-exit CNN; modes none, linf, l2, l1). With early_exit "
    "the table compares the two per mode, MACs included.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help='JSON config for every run (e.g. {"robust": {"epochs": 5}}).',
)
@click.option(
    "--steps", default=20, show_default=True, type=click.IntRange(1), help="Evaluation PGD steps per restart."
)
@click.option("--restarts", default=2, show_default=True, type=click.IntRange(1))
@click.option(
    "--queries", default=300, show_default=True, type=click.IntRange(0), help="Square-attack queries (l_inf)."
)
@click.option("--samples", default=None, type=click.IntRange(1), help="Attack only N test windows (see --spread).")
@click.option(
    "--spread",
    is_flag=True,
    help="With --samples N: N windows evenly spaced over the whole test split "
    "(every subject of a subject-wise split) instead of the first N.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--seeds",
    default=None,
    help="Comma-separated seeds (e.g. 0,1,2): the whole table once per seed under "
    "OUT/seedS (--seed is then ignored; a single-CNN table also writes "
    "OUT/seedS/table.md); the table gives each row as mean ± std over the seeds "
    "and the target's verdict per seed and on the means.",
)
@click.option(
    "--write",
    "write_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Markdown file for the table (e.g. docs/results/robust_hapt.md).",
)
@click.option(
    "--train/--no-train",
    "do_train",
    default=True,
    show_default=True,
    help="--no-train: only attack and tabulate the finished runs under --out "
    "(modes without one are listed as not trained).",
)
@click.option(
    "--cheap",
    is_flag=True,
    help="Tabulate the cheap-PGD accuracies each finished run recorded at the end of "
    "training (whole validation and test splits; no restarts, no Square) instead "
    "of attacking; implies --no-train.",
)
@click.option(
    "--ramp-lambdas",
    default=None,
    help="Comma-separated RAMP logit-pairing weights to sweep (e.g. 0.5,2). With "
    "this or --ramp-betas, RAMP trains one run per (lambda, beta) as "
    "OUT/ramp_lamLAMBDA_betaBETA and the table reports the one with the best "
    "union accuracy on the VALIDATION split.",
)
@click.option(
    "--ramp-betas",
    default=None,
    help="Comma-separated gradient-projection blends to sweep (0 = no gradient projection), e.g. 0,0.5.",
)
@click.option(
    "--init-mode",
    default=None,
    type=click.Choice(["none", "linf", "l2", "l1", "max", "avg", "eat", "ramp"]),
    help="Fine-tuning table: first train OUT/init_MODE from scratch (with "
    "--init-config), then train every --modes run starting from its weights "
    "with --config (a short schedule). The table adds the starting model as a row.",
)
@click.option(
    "--init-config",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --init-mode: JSON config of the starting run (default: --config).",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME:KEY=VALUE[,KEY=VALUE]",
    help="One more row per mode, trained with these 'robust' hyper-parameters on "
    "top of --config: a multi-exit row with --methods early_exit (run OUT/"
    "early_exit_MODE_NAME, e.g. 'rthr:threshold_on=robust' or "
    "'mf12:mac_factor=1.2,threshold_on=robust'), else a single-CNN row (run "
    "OUT/MODE_NAME, e.g. 'e6:epochs=6' or 'l2pair:pair=linf-l2'). Repeatable.",
)
@click.option("--quiet", is_flag=True)
def table(
    dataset,
    out_dir,
    modes,
    methods,
    config_file,
    steps,
    restarts,
    queries,
    samples,
    spread,
    seed,
    seeds,
    write_path,
    do_train,
    cheap,
    ramp_lambdas,
    ramp_betas,
    init_mode,
    init_config,
    variants,
    quiet,
):
    """Train the equal-MACs single CNN (and with --methods early_exit the
    multi-exit CNN) with every robust-training mode, attack each on the test
    split (float model, radius 1.0 x the defaults) and write a table of clean
    / per-norm / union accuracy (multi-exit: also average MACs clean, under
    the accuracy attacks and under the latency attack).

    The RAMP key pair follows the RAMP rule when the linf, l2 and l1 runs are
    part of the table: the two norms whose single-norm AT models are least
    robust against their own attack (cheap PGD on the VALIDATION split);
    otherwise the config's "pair" (or a cheap proxy).

    \b
    With --init-mode MODE every run fine-tunes the same starting run
    OUT/init_MODE (trained first with --init-config), e.g. RAMP's protocol:
    --init-mode linf --init-config base.json --config finetune.json.
    """
    from ditmos.robust.evaluate import AttackBudget
    from ditmos.robust.training import MODES, MultiExitTrainer

    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in wanted if m not in MODES]
    if bad or not wanted:
        raise DitmosError(f"--modes: unknown mode(s) {bad}; choose from {', '.join(MODES)}")
    meths = [m.strip() for m in methods.split(",") if m.strip()]
    badm = [m for m in meths if m not in TABLE_METHODS]
    if badm or not meths:
        raise DitmosError(f"--methods: unknown method(s) {badm}; choose from {', '.join(TABLE_METHODS)}")
    var = parse_variants(variants)
    if var and cheap:
        raise DitmosError("--variant and --cheap do not go together")
    if "early_exit" in meths:
        no_ee = [m for m in wanted if m not in MultiExitTrainer.MODES]
        if no_ee:
            raise DitmosError(
                f"--methods early_exit trains modes {', '.join(MultiExitTrainer.MODES)}"
                f" only; drop {', '.join(no_ee)} from --modes"
            )
    if init_config is not None and init_mode is None:
        raise DitmosError("--init-config applies with --init-mode only")
    if init_mode is not None and ("early_exit" in meths or cheap):
        raise DitmosError("--init-mode (fine-tuning table) applies to --methods single without --cheap")
    grid = _ramp_grid(ramp_lambdas, ramp_betas, config_file)
    if grid and "early_exit" in meths:
        raise DitmosError("--ramp-lambdas/--ramp-betas apply to the single CNN's ramp mode only")
    # single-norm runs first: RAMP's key pair is read from them
    wanted = sorted(wanted, key=lambda m: (m != "none", m not in ("linf", "l2", "l1"), TABLE_MODES.index(m)))
    if cheap:
        if seeds:
            raise DitmosError("--seeds and --cheap do not go together")
        text = cheap_table(dataset, out_dir, wanted)
        click.echo(text)
        if write_path:
            _write_text(write_path, text)
            click.echo(f"wrote {write_path}")
        return
    budget = AttackBudget(steps=steps, restarts=restarts, square_queries=queries)
    key = _budget_key(steps, restarts, queries, samples, spread)

    def rows_of(folder: Path, s_: int):
        return _table_rows(
            dataset,
            folder,
            wanted,
            meths,
            var,
            grid,
            config_file,
            budget,
            key,
            (samples, spread),
            s_,
            do_train,
            quiet,
            init_mode=init_mode,
            init_config=init_config,
        )

    if seeds:
        seed_list = _seeds(seeds)
        if grid and "early_exit" in meths:
            raise DitmosError("--seeds does not go with a RAMP sweep of a multi-exit table")
        per_seed = []
        for s_ in seed_list:
            if not quiet:
                click.echo(f"seed {s_} -> {out_dir / f'seed{s_}'}", err=True)
            r, miss, pair_note, sweep_note = rows_of(out_dir / f"seed{s_}", s_)
            per_seed.append((s_, r, [f"seed{s_}/{m}" for m in miss]))
            if r and "early_exit" not in meths:  # each seed's own single-CNN table
                _write_text(
                    out_dir / f"seed{s_}" / "table.md",
                    format_mode_table(dataset, r, budget, samples, pair_note, miss, sweep_note),
                )
        if not any(r for _, r, _ in per_seed):
            raise DitmosError(f"no finished run under {out_dir}/seed* for modes {', '.join(wanted)}")
        if "early_exit" in meths:
            text = format_seed_table(dataset, per_seed, budget)
        else:
            text = format_seeds_table(dataset, {s_: r for s_, r, _ in per_seed if r}, budget)
        click.echo(text)
        if write_path:
            _write_text(write_path, text)
            click.echo(f"wrote {write_path}")
        return
    rows, missing, pair_note, sweep_note = rows_of(out_dir, seed)
    if not rows:
        raise DitmosError(f"no finished run under {out_dir} for modes {', '.join(wanted)}")
    if "early_exit" in meths:
        text = format_method_table(dataset, rows, budget, missing)
    else:
        text = format_mode_table(dataset, rows, budget, samples, pair_note, missing, sweep_note)
    click.echo(text)
    if write_path:
        _write_text(write_path, text)
        click.echo(f"wrote {write_path}")


def _table_rows(
    dataset,
    out_dir: Path,
    wanted,
    meths,
    var,
    grid,
    config_file,
    budget,
    key,
    samples,
    seed,
    do_train,
    quiet,
    *,
    init_mode=None,
    init_config=None,
):
    """Train (unless finished) and attack (unless attacked with this budget
    ``key``) every run of one seed's table under ``out_dir`` (with
    ``init_mode``: first the starting run OUT/init_MODE, which every other
    run fine-tunes); returns (rows, missing run names, RAMP pair note, RAMP
    sweep note)."""
    from ditmos.robust.evaluate import default_radii
    from ditmos.robust.targets import load_target
    from ditmos.robust.training import train_robust
    from ditmos.training.rundir import load_run_data

    out_dir.mkdir(parents=True, exist_ok=True)
    rows, pair_note, missing = [], None, []
    sweep_note = None
    base_cfg = _read_config(config_file)
    init_run = None
    todo = [("init", m, None) for m in meths] if init_mode else []
    for mode in wanted:
        todo += [(mode, m, None) for m in meths]
        todo += [(mode, "early_exit" if "early_exit" in meths else "single", v) for v in var]
    if init_mode:
        init_run = out_dir / f"init_{init_mode}"
        if not (init_run / "robust.json").is_file() and not do_train:
            raise DitmosError(f"--no-train: the starting run {init_run} is not finished")
    for mode, method, variant in todo:
        name = _run_name(method, mode) + (f"_{variant[0]}" if variant else "")
        run = init_run if mode == "init" else out_dir / name
        if mode == "ramp" and grid and method == "single" and variant is None:
            run, sweep_note = _ramp_sweep(
                dataset, out_dir, grid, config_file, seed, do_train, quiet, missing, init_from=init_run
            )
            if run is None:
                continue
        if not (run / "robust.json").is_file() and not do_train:
            missing.append(name)
            continue
        if not (run / "robust.json").is_file():
            if run.exists():
                import shutil

                shutil.rmtree(run)  # an unfinished run of an interrupted table
            pair = None
            if mode == "ramp":
                pair, pair_note = rule_pair(out_dir)
            if not quiet:
                what = f"{init_mode} (the starting run)" if mode == "init" else mode
                click.echo(f"training {method} {what} -> {run}", err=True)
            over = None if variant is None else {"robust": {**(base_cfg.get("robust") or {}), **variant[1]}}
            train_robust(
                dataset,
                run,
                method=method,
                mode=init_mode if mode == "init" else mode,
                seed=seed,
                config_file=(init_config or config_file) if mode == "init" else config_file,
                overrides=over,
                pair=pair,
                init_from=None if mode == "init" else init_run,
                quiet=quiet,
            )
        info = json.loads((run / "robust.json").read_text())
        if variant is not None:
            info = dict(info, variant={"name": variant[0], "robust": variant[1]})
        if mode == "ramp" and pair_note is None and info.get("pair"):
            if info["pair"]["rule"] == "given":
                pair, note = rule_pair(out_dir)
                if pair == ",".join(info["pair"]["pair"]):
                    pair_note = note  # given as the rule picks it from these runs
        if mode == "ramp" and pair_note is None and info.get("pair"):
            pair_note = f"RAMP key pair {'-'.join(info['pair']['pair'])} ({info['pair']['rule']})"
        att = run / "robust" / "attack.json"
        if att.is_file() and json.loads(att.read_text()).get("budget_key") == key:
            res = json.loads(att.read_text())
        else:
            data = load_run_data(run)
            x, y = data.x_test, data.y_test
            idx = attack_subset(len(x), *samples)
            x, y = x[idx], y[idx]
            kind, target = load_target(run)
            res, _ = attack_target(kind, target, x, y, default_radii(data.input_shape), budget, seed, fractions=(1.0,))
            res.update(mode=mode, budget_key=key)
            att.parent.mkdir(exist_ok=True)
            write_json(att, res, indent=2)
        if not quiet:
            f = res["float"]
            click.echo(f"  {name}: clean {f['clean']:.4f} union {f['union']:.4f} ({res['seconds']} s)", err=True)
        rows.append((mode, info, res))
    return rows, missing, pair_note, sweep_note


def _budget_key(steps, restarts, queries, samples, spread) -> list:
    """What a cached attack.json must match to be reused."""
    key = [steps, restarts, queries, samples]
    return key + ["spread"] if spread and samples else key


def attack_subset(n: int, samples: int | None, spread: bool = False) -> np.ndarray:
    """Indices of the test windows a table attacks: all, the first
    ``samples``, or (``spread``) ``samples`` evenly spaced over the split."""
    if not samples or samples >= n:
        return np.arange(n)
    if spread:
        return np.unique(np.linspace(0, n - 1, samples).round().astype(np.int64))
    return np.arange(samples)


def _seeds(text) -> list[int]:
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        vals = []
    if vals and len(set(vals)) != len(vals):
        raise DitmosError(f"--seeds lists a seed twice: {text!r}")
    if not vals or any(v < 0 for v in vals):
        raise DitmosError(f"--seeds must be comma-separated distinct non-negative integers, got {text!r}")
    return vals


def _floats(text, what: str) -> list[float]:
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals or any(not np.isfinite(v) or v < 0 for v in vals):
        raise DitmosError(f"{what} must be comma-separated non-negative numbers, got {text!r}")
    return vals


def _ramp_grid(lambdas, betas, config_file) -> list[tuple[float, float]]:
    """The (lambda, beta) points of a RAMP sweep ([] = no sweep); an option
    left out takes the config's (or the default) value."""
    from ditmos.robust.training import DEFAULTS

    if lambdas is None and betas is None:
        return []
    rob = {**DEFAULTS, **(_read_config(config_file).get("robust") or {})}
    lams = _floats(lambdas, "--ramp-lambdas") if lambdas is not None else [float(rob["ramp_lambda"])]
    bets = (
        _floats(betas, "--ramp-betas") if betas is not None else [float(rob["gp_beta"]) if rob.get("gp", True) else 0.0]
    )
    if any(b >= 1 for b in bets):
        raise DitmosError("--ramp-betas must lie in [0, 1) (beta 1 drops the adversarial update)")
    return [(lam, b) for lam in dict.fromkeys(lams) for b in dict.fromkeys(bets)]


def _read_config(config_file) -> dict:
    if not config_file:
        return {}
    try:
        cfg = json.loads(Path(config_file).read_text())
    except (OSError, ValueError) as e:
        raise DitmosError(f"cannot read --config {config_file}: {e}") from e
    if not isinstance(cfg, dict):
        raise DitmosError(f"--config {config_file} must hold a JSON object")
    return cfg


def rule_pair(out_dir: Path):
    """RAMP's key pair by its rule from the single-norm AT runs under
    ``out_dir`` (the two norms least robust against their own attack, cheap
    PGD on the validation split) and a sentence saying so; (None, None)
    unless the linf, l2 and l1 runs are all finished."""
    if not all((out_dir / n / "robust.json").is_file() for n in ("linf", "l2", "l1")):
        return None, None
    own = {
        n: json.loads((out_dir / n / "robust.json").read_text())["cheap_pgd"]["val"][n] for n in ("linf", "l2", "l1")
    }
    pick = sorted(own, key=lambda n: own[n])[:2]
    return ",".join(pick), (
        f"RAMP key pair {pick[0]}-{pick[1]}: own-norm validation robust "
        f"accuracy of the single-norm AT runs " + ", ".join(f"{n} {100 * v:.1f}" for n, v in own.items())
    )


def ramp_run_name(lam: float, beta: float) -> str:
    return f"ramp_lam{lam:g}_beta{beta:g}"


def _ramp_sweep(dataset, out_dir: Path, grid, config_file, seed, do_train, quiet, missing, init_from=None):
    """Train (or reuse) one RAMP run per (lambda, beta) of ``grid`` and pick
    the one with the best union accuracy on the validation split (cheap PGD
    over the whole split, recorded by each run; ties: higher validation clean
    accuracy, then the earlier grid point).  Returns (chosen run or None, note)."""
    import shutil

    from ditmos.robust.training import train_robust

    cfg = _read_config(config_file)
    pair = rule_pair(out_dir)[0]
    scored = []
    for lam, beta in grid:
        run = out_dir / ramp_run_name(lam, beta)
        if not (run / "robust.json").is_file():
            if not do_train:
                missing.append(run.name)
                continue
            if run.exists():
                shutil.rmtree(run)  # an unfinished run of an interrupted table
            rob = {**(cfg.get("robust") or {}), "ramp_lambda": lam, "gp_beta": beta, "gp": beta > 0}
            if not quiet:
                click.echo(f"training single ramp lambda {lam:g} beta {beta:g} -> {run}", err=True)
            train_robust(
                dataset,
                run,
                method="single",
                mode="ramp",
                seed=seed,
                config_file=None,
                overrides={**cfg, "robust": rob},
                pair=pair,
                init_from=init_from,
                quiet=quiet,
            )
        val = json.loads((run / "robust.json").read_text())["cheap_pgd"]["val"]
        scored.append(((val["union"], val["clean"], -len(scored)), lam, beta, run, val))
    if not scored:
        return None, None
    best = max(scored, key=lambda t: t[0])
    note = (
        "RAMP hyper-parameters chosen on the validation split (cheap-PGD union / clean "
        "accuracy of each run; beta 0 = no gradient projection): "
        + ", ".join(
            f"lambda {lam:g} beta {beta:g}: {100 * v['union']:.1f} / {100 * v['clean']:.1f}"
            for _, lam, beta, _, v in scored
        )
        + f"; reported: lambda {best[1]:g}, beta {best[2]:g}"
    )
    return best[3], note


def parse_variants(texts) -> list[tuple[str, dict]]:
    """``NAME:KEY=VALUE[,KEY=VALUE]`` -> (NAME, {KEY: VALUE}); values are read
    as JSON when they parse (numbers, true/false, lists such as [1,2]), else
    kept as text."""
    import re

    from ditmos.robust.training import DEFAULTS

    out = []
    for text in texts:
        name, sep, body = text.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not body.strip():
            raise DitmosError(
                f"--variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE] with a "
                f"NAME of letters, digits, '_', '-' or '.'"
            )
        hp = {}
        for item in re.split(r",(?![^\[]*\])", body):  # commas inside [...] belong to a list value
            key, eq, val = item.partition("=")
            key = key.strip()
            if not eq or key not in DEFAULTS:
                raise DitmosError(
                    f"--variant {text!r}: {item!r} is not KEY=VALUE with a 'robust' key ({', '.join(sorted(DEFAULTS))})"
                )
            try:
                hp[key] = json.loads(val)
            except json.JSONDecodeError:
                hp[key] = val.strip()
        if name in {n for n, _ in out}:
            raise DitmosError(f"--variant: the name {name!r} is given twice")
        out.append((name, hp))
    return out


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cheap_table(dataset: str, out_dir: Path, modes) -> str:
    """The cheap-PGD figures every finished run of ``out_dir`` recorded."""
    rows, missing = [], []
    for mode in modes:
        names = [mode]
        if mode == "ramp":  # the runs of a RAMP sweep as well
            names += sorted(p.parent.name for p in out_dir.glob("ramp_lam*_beta*/robust.json"))
        found = [n for n in names if (out_dir / n / "robust.json").is_file()]
        if not found:
            missing.append(mode)
        rows += [(n, json.loads((out_dir / n / "robust.json").read_text())) for n in found]
    if not rows:
        raise DitmosError(f"no finished run under {out_dir} for modes {', '.join(modes)}")
    info0 = rows[0][1]
    hp = info0["hyper"]
    lines = [
        f"# Robust training of the single CNN on {dataset}: cheap-PGD figures",
        "",
        "Written by `ditmos robust table --cheap` (see docs/robustness.md); do not edit by hand.",
        "",
        f"Model: the equal-MACs single CNN ({info0['macs']} MACs, {info0['params']} "
        f"parameters), seed {info0['seed']}, {hp['epochs']} epochs, batch "
        f"{hp['batch_size']}, training attack {hp['attack_steps']}-step PGD; epoch kept by "
        f"the validation score.",
        "",
        f"Accuracies recorded by each run after training, on the WHOLE validation and test "
        f"splits, under a cheap {hp['val_steps']}-step PGD per norm (random start, no "
        f"restarts, no Square): weaker than `ditmos robust attack`, so an upper bound "
        f"on robust accuracy. Radii " + ", ".join(f"{k} {v:g}" for k, v in info0["radii"].items()) + ".",
        "",
    ]
    pairs: dict[str, list[str]] = {}
    for m, i in rows:
        if i.get("pair"):
            pairs.setdefault(f"{'-'.join(i['pair']['pair'])} ({i['pair']['rule']})", []).append(m)
    if pairs:
        lines += ["RAMP key pair " + "; ".join(f"{p} for {', '.join(ms)}" for p, ms in pairs.items()) + ".", ""]
    lines += [
        "| mode | split | clean | l_inf | l_2 | l_1 | union | best epoch | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, info in rows:
        for split in ("val", "test"):
            r = info["cheap_pgd"][split]
            lines.append(
                f"| {mode} | {split} | {100 * r['clean']:.2f} | {100 * r['linf']:.2f} | "
                f"{100 * r['l2']:.2f} | {100 * r['l1']:.2f} | {100 * r['union']:.2f} | "
                f"{info['best_epoch']} | {info['train_seconds']:.0f} |"
            )
    if missing:
        lines += ["", f"No finished run: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def _variant_label(info: dict) -> str:
    v = info.get("variant")
    if not v:
        return "RDI-Nets multi-exit"
    return f"RDI-Nets multi-exit, {v['name']} (" + ", ".join(f"{k} {val}" for k, val in v["robust"].items()) + ")"


def _val_cell(info: dict) -> str:
    """Validation clean / robust figures of a robust run (see format_method_table)."""

    def pct(v):
        return "—" if v is None else f"{100 * float(v):.2f}"

    if info["model"] == "single":
        val = (info.get("cheap_pgd") or {}).get("val") or {}
        return f"{pct(val.get('clean'))} / {pct(val.get('union'))}"
    pol = info.get("exit_policy") or {}
    return f"{pct(pol.get('val_accuracy'))} / {pct(pol.get('val_robust_score'))}"


def format_method_table(dataset, rows, budget, missing=()) -> str:
    """RDI-Nets (multi-exit, robust) against the single CNN trained with the
    same attack: accuracy and average MACs side by side, with the verdict per
    mode (and per variant) computed from the numbers."""
    from ditmos.robust.training import DEFAULTS as TRAIN_DEFAULTS

    single = {m: (i, r) for m, i, r in rows if i["model"] == "single"}
    ee = [(m, i, r) for m, i, r in rows if i["model"] == "early_exit"]
    any_info, any_res = next(
        ((i, r) for _, i, r in ee if not i.get("variant")), (ee[0][1], ee[0][2]) if ee else (rows[0][1], rows[0][2])
    )
    # the hyper-parameters every row shares: the base ones, without a variant's changes
    hp = {
        **TRAIN_DEFAULTS,
        **any_info["hyper"],
        **{k: TRAIN_DEFAULTS[k] for k in (any_info.get("variant") or {}).get("robust", {})},
    }
    f0 = any_res["float"]
    thr_on = (
        "the share of validation windows right clean and under a cheap PGD on each exit "
        "and on all exits jointly, through the policy"
        if hp.get("threshold_on") == "robust"
        else "the most accurate on clean validation windows"
    )
    per_exit = (
        " (one per early exit, every combination of quantiles of each exit's validation confidence)"
        if hp.get("exit_thresholds") == "per_exit"
        else " (one for every early exit)"
    )
    spread = " evenly spaced over the split" if "spread" in (any_res.get("budget_key") or []) else ""
    weights = "" if hp.get("exit_weights") is None else f"; training loss weights per exit {hp['exit_weights']}"
    lines = [
        f"# Robust multi-exit networks (RDI-Nets) vs the single CNN on {dataset}",
        "",
        "Written by `ditmos robust table --methods single,early_exit` (see docs/robustness.md); do not edit by hand.",
        "",
        f"Training: seed {any_info['seed']}, {hp['epochs']} epochs, batch "
        f"{hp['batch_size']}, {hp['attack_steps']}-step PGD per training example "
        f"(multi-exit: the '{hp['exit_attack']}' attack on all exits, full-depth backbone "
        f"{hp['mac_factor']:g} x the single CNN's MACs); epoch kept by the validation score. "
        f"Multi-exit exit threshold{per_exit}: {thr_on}, among those whose average clean MACs "
        f"on the validation split stay within {hp['mac_budget']:g} x the single CNN's MACs"
        f"{weights}. A row named after a variant "
        f"was trained with the listed hyper-parameters changed (`--variant`).",
        "",
        f"Attack (test split, {f0['n']} windows{spread}, float models): radii "
        + ", ".join(f"{k} {v:g}" for k, v in f0["radii"].items())
        + f" (normalised units); PGD {budget.steps} steps x {budget.restarts} restarts per "
        f"norm and view (multi-exit: through the exit policy, its soft surrogate, all "
        f"exits jointly and each exit alone), plus Square ({budget.square_queries} "
        f"queries) for l_inf. Union = correct clean and under every norm's attack. "
        f"Latency attack: PGD with the same budget that lowers every early exit's "
        f"confidence below the threshold (maximises MACs).",
        "",
        "The validation column is what a choice between rows may use: clean accuracy "
        "and the robust score (multi-exit: the policy's score of the robust threshold "
        "choice, when the threshold was chosen on it; single CNN: the cheap-PGD union) "
        "on the validation split.",
        "",
        "| training | model | validation clean / robust | clean | l_inf | l_2 | l_1 | "
        "union | avg MACs clean | exits clean | avg MACs under accuracy attack "
        "(l_inf / l_2 / l_1) | avg MACs under latency attack (l_inf / l_2 / l_1) | "
        "max MACs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, info, res in rows:
        f = res["float"]
        rob = f["robust"]
        cells = [f"{100 * f['clean']:.2f}"] + [f"{100 * rob[k]:.2f}" for k in ("linf", "l2", "l1")]
        cells.append(f"{100 * f['union']:.2f}")
        cells.insert(0, _val_cell(info))
        if info["model"] == "single":
            name = "single CNN"
            macs = [f"{info['macs']:,}", "—", "= clean", "= clean", f"{info['macs']:,}"]
        else:
            name = _variant_label(info)
            m = res["macs"]
            macs = [
                f"{m['clean']['avg_macs']:,.0f}",
                " / ".join(f"{v:.2f}" for v in m["clean"].get("exit_fractions", [])) or "—",
                " / ".join(
                    f"{m['accuracy_attack'][k]['avg_macs']:,.0f}"
                    for k in ("linf", "l2", "l1")
                    if k in m["accuracy_attack"]
                ),
                " / ".join(
                    f"{m['latency_attack'][k]['avg_macs']:,.0f}"
                    for k in ("linf", "l2", "l1")
                    if k in m["latency_attack"]
                ),
                f"{m['max_macs']:,}",
            ]
        lines.append(f"| {mode} | {name} | {' | '.join(cells)} | {' | '.join(macs)} |")
    verdicts = []
    for mode, ei, er in ee:
        if mode not in single:
            continue
        si, sr = single[mode]
        sf, ef = sr["float"], er["float"]
        saving = 1 - er["macs"]["clean"]["avg_macs"] / si["macs"]
        norms = [n for n in ("linf", "l2", "l1") if ef["radii"].get(n, 0) > 0]
        ok_clean = ef["clean"] >= sf["clean"]
        ok_rob = all(ef["robust"][n] >= sf["robust"][n] for n in norms)
        ok_macs = saving >= 0.30
        late = max((v["avg_macs"] for v in er["macs"]["latency_attack"].values()), default=0)
        who = "RDI-Nets" if not ei.get("variant") else f"RDI-Nets {ei['variant']['name']}"
        verdicts.append(
            f"- {mode}: {who} clean {100 * ef['clean']:.2f} vs {100 * sf['clean']:.2f} "
            f"({'≥' if ok_clean else '<'}), robust "
            + ", ".join(f"{n} {100 * ef['robust'][n]:.2f} vs {100 * sf['robust'][n]:.2f}" for n in norms)
            + f" ({'all ≥' if ok_rob else 'not all ≥'}), average clean MACs "
            f"{100 * saving:.1f}% below the single CNN ({'≥' if ok_macs else '<'} 30%); under "
            f"the latency attack up to {late:,.0f} MACs ({late / si['macs']:.2f} x the single "
            f"CNN). Target {'met' if ok_clean and ok_rob and ok_macs else 'missed'}."
        )
    if verdicts:
        lines += ["", "Against the single CNN trained with the same attack:", ""] + verdicts
    if missing:
        lines += ["", f"Not trained (no finished run): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def _mean_std(vals, scale: float = 100.0, fmt: str = ".2f") -> str:
    """``mean ± std`` (sample standard deviation) of ``vals`` x ``scale``."""
    v = np.asarray([float(x) for x in vals], np.float64) * scale
    if len(v) == 0:
        return "—"
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return f"{v.mean():{fmt}} ± {sd:{fmt}}"


def _row_figures(info: dict, res: dict, single_macs: float | None) -> dict:
    """The figures of one table row that the seed summary averages."""
    f = res["float"]
    out = {
        "clean": f["clean"],
        **{n: f["robust"][n] for n in ("linf", "l2", "l1") if n in f["robust"]},
        "union": f["union"],
    }
    if info["model"] == "single":
        out.update(val_robust=(info.get("cheap_pgd") or {}).get("val", {}).get("union"), macs=float(info["macs"]))
        out["late"] = float(info["macs"])
    else:
        pol = info.get("exit_policy") or {}
        m = res["macs"]
        out.update(
            val_robust=pol.get("val_robust_score"),
            val_macs=pol.get("val_avg_macs"),
            within=pol.get("within_budget"),
            macs=float(m["clean"]["avg_macs"]),
            late=max((v["avg_macs"] for v in m["latency_attack"].values()), default=float("nan")),
        )
    if single_macs:
        out["saving"] = 1 - out["macs"] / single_macs
    return out


def format_seed_table(dataset, per_seed, budget) -> str:
    """RDI-Nets vs the single CNN over several seeds: every row as mean ± std,
    the verdict on the means and on each seed, the row a validation-only
    choice picks, then each seed's own table (:func:`format_method_table`)."""
    seeds = [s for s, _, _ in per_seed]
    groups: dict[tuple[str, str], dict] = {}
    for s, rows, _ in per_seed:
        single = {m: i["macs"] for m, i, _ in rows if i["model"] == "single"}
        for mode, info, res in rows:
            label = "single CNN" if info["model"] == "single" else _variant_label(info)
            g = groups.setdefault((mode, label), {"model": info["model"], "seeds": {}, "info": info})
            g["seeds"][s] = _row_figures(info, res, single.get(mode))
    norms = ("linf", "l2", "l1")
    lines = [
        f"# Robust multi-exit networks (RDI-Nets) vs the single CNN on {dataset}, seeds "
        + ", ".join(str(s) for s in seeds),
        "",
        "Written by `ditmos robust table --methods single,early_exit --seeds ...` (see "
        "docs/robustness.md); do not edit by hand.",
        "",
        "Each row: mean ± sample standard deviation over the seeds of the test figures "
        "(training, attack budget and threshold rule as in the per-seed tables below). "
        "Saving = average clean MACs below the single CNN of the same seed. The "
        "validation robust score is what a choice between rows may use (single CNN: the "
        "cheap-PGD union on the validation split; multi-exit: the score of the exit "
        "policy's robust threshold choice).",
        "",
        "| training | model | seeds | validation robust | clean | l_inf | l_2 | l_1 | union | "
        "avg MACs clean | saving | avg MACs under latency attack (worst norm) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def col(g, key, scale=100.0, fmt=".2f"):
        vals = [v[key] for v in g["seeds"].values() if v.get(key) is not None]
        return _mean_std(vals, scale, fmt) if len(vals) == len(g["seeds"]) else "—"

    for (mode, label), g in groups.items():
        cells = [col(g, "val_robust"), col(g, "clean")] + [col(g, n) for n in norms] + [col(g, "union")]
        cells += [col(g, "macs", 1.0, ",.0f"), col(g, "saving", 100.0, ".1f") + " %" if g["model"] != "single" else "—"]
        cells.append(col(g, "late", 1.0, ",.0f"))
        lines.append(f"| {mode} | {label} | {len(g['seeds'])} | {' | '.join(cells)} |")
    verdicts, picks, verdict_of = [], [], {}
    for (mode, label), g in groups.items():
        if g["model"] == "single" or (mode, "single CNN") not in groups:
            continue
        sg = groups[(mode, "single CNN")]["seeds"]
        both = [s for s in g["seeds"] if s in sg]
        if not both:
            continue

        def ok(s, g=g, sg=sg):
            e, r = g["seeds"][s], sg[s]
            return e["clean"] >= r["clean"] and all(e[n] >= r[n] for n in norms if n in r) and e["saving"] >= 0.30

        mean = {k: float(np.mean([g["seeds"][s][k] for s in both])) for k in ("clean", "union", "saving", *norms)}
        smean = {k: float(np.mean([sg[s][k] for s in both])) for k in ("clean", "union", *norms)}
        met_mean = (
            mean["clean"] >= smean["clean"] and all(mean[n] >= smean[n] for n in norms) and mean["saving"] >= 0.30
        )
        n_ok = sum(ok(s) for s in both)
        verdict_of[(mode, label)] = (
            f"target {'met' if met_mean else 'missed'} on the means, met on {n_ok} of {len(both)} seeds"
        )
        verdicts.append(
            f"- {mode}: {label}: mean clean {100 * mean['clean']:.2f} vs {100 * smean['clean']:.2f}, "
            + ", ".join(f"{n} {100 * mean[n]:.2f} vs {100 * smean[n]:.2f}" for n in norms)
            + f", union {100 * mean['union']:.2f} vs {100 * smean['union']:.2f}, saving "
            f"{100 * mean['saving']:.1f}%: target {'met' if met_mean else 'missed'} on the means, "
            f"met on {n_ok} of {len(both)} seeds ("
            + ", ".join(f"seed {s} {'met' if ok(s) else 'missed'}" for s in both)
            + ")."
        )
        vr = [g["seeds"][s].get("val_robust") for s in both]
        full = len(both) == len(seeds)  # a row missing on some seed is not comparable
        if full and all(v is not None for v in vr) and all(g["seeds"][s].get("within") for s in both):
            picks.append((float(np.mean(vr)), mode, label))
    if verdicts:
        lines += [
            "",
            "Against the single CNN trained with the same attack (per seed: clean, every norm ≥ "
            "and ≥ 30% fewer average clean MACs):",
            "",
        ] + verdicts
    if picks:
        lines += [
            "",
            "Chosen on validation only (per mode, among the multi-exit rows finished on "
            "every seed whose exit thresholds met their validation MAC budget on every "
            "seed, the best mean validation robust score):",
            "",
        ]
        for mode in dict.fromkeys(p[1] for p in picks):
            best = max((p for p in picks if p[1] == mode), key=lambda p: p[0])
            lines.append(
                f"- {mode}: {best[2]} (validation robust score {100 * best[0]:.2f}): {verdict_of[(mode, best[2])]}."
            )
    for s, rows, missing in per_seed:
        if not rows:
            lines += ["", f"## Seed {s}", "", f"No finished run: {', '.join(missing)}."]
            continue
        sub = format_method_table(dataset, rows, budget, missing).splitlines()
        body = [ln for ln in sub[1:] if not ln.startswith("Written by")]
        while body and not body[0].strip():
            body.pop(0)
        lines += ["", f"## Seed {s}", "", *body]
    return "\n".join(lines).rstrip("\n") + "\n"


def format_mode_table(dataset, rows, budget, samples, pair_note, missing=(), sweep_note=None) -> str:
    info0 = rows[0][1]
    f0 = rows[0][2]["float"]
    finetune = rows[0][0] == "init"
    hp = rows[1][1]["hyper"] if finetune and len(rows) > 1 else info0["hyper"]
    radii = f0["radii"]
    lines = [
        f"# Robust {'fine-tuning' if finetune else 'training'} of the single CNN on {dataset}",
        "",
        "Written by `ditmos robust table` (see docs/robustness.md); do not edit by hand.",
        "",
        f"Model: the equal-MACs single CNN ({info0['macs']} MACs, {info0['params']} "
        f"parameters, spec {info0['spec']['channels']} channels), seed {info0['seed']}, "
        f"{hp['epochs']} epochs, batch {hp['batch_size']}, Adam lr {hp['lr']:g} "
        f"({hp.get('lr_schedule', 'cosine')} schedule), training attack "
        f"{hp['attack_steps']}-step PGD; epoch kept by the validation score.",
        "",
    ]
    if finetune:
        h0 = info0["hyper"]
        lines += [
            f"Fine-tuning: every row after the first starts from the weights of the first "
            f"(`{info0['mode']}` adversarial training from scratch: {h0['epochs']} epochs, Adam lr "
            f"{h0['lr']:g}, {h0.get('lr_schedule', 'cosine')} schedule, {h0['attack_steps']}-step PGD) "
            f"and trains the listed mode for the schedule above.",
            "",
        ]
    lines += [
        f"Attack (test split, {f0['n']} windows, float model): radii "
        + ", ".join(f"{k} {v:g}" for k, v in radii.items())
        + f" (normalised units); PGD {budget.steps} steps x {budget.restarts} restarts per "
        f"norm, plus Square ({budget.square_queries} queries) for l_inf. Union = correct "
        f"clean and under every norm's attack.",
        "",
    ]
    if pair_note:
        lines += [pair_note + ".", ""]
    if sweep_note:
        lines += [sweep_note + ".", ""]
    lines += [
        "| mode | clean | l_inf | l_2 | l_1 | union | best epoch | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, info, res in rows:
        f = res["float"]
        rob = f["robust"]
        if mode == "ramp":
            h = info["hyper"]
            gp = f"beta {h['gp_beta']:g}" if h.get("gp", True) else "no GP"
            mode = f"ramp (lambda {h['ramp_lambda']:g}, {gp})"
        elif mode == "init":
            mode = f"start: {info['mode']} (no fine-tuning)"
        if info.get("variant"):
            v = info["variant"]
            mode += f", {v['name']} (" + ", ".join(f"{k} {val}" for k, val in v["robust"].items()) + ")"
        lines.append(
            f"| {mode} | {100 * f['clean']:.2f} | {100 * rob['linf']:.2f} | "
            f"{100 * rob['l2']:.2f} | {100 * rob['l1']:.2f} | {100 * f['union']:.2f} | "
            f"{info['best_epoch']} | {info['train_seconds']:.0f} |"
        )
    if missing:
        lines += ["", f"Not trained (no finished run): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- #
# Certified robustness (interval bounds): verify and the certified table
# --------------------------------------------------------------------------- #


@robust.command("verify")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--eps",
    "eps_text",
    default=None,
    metavar="NORM=R,...",
    help="Certification radii, e.g. 'linf=0.01,l2=0.18,l1=0.36'; unnamed norms keep "
    "the radii a certified run trained for, else the defaults l_inf 0.01, "
    "l_2 0.65*l_inf*sqrt(T*C), l_1 2*l_2 (hapt: 0.01, 0.18, 0.36).",
)
@click.option(
    "--samples", default=None, type=click.IntRange(1), help="Verify only the first N test windows (default: all)."
)
@click.option(
    "--int8",
    "with_int8",
    is_flag=True,
    help="Also certify the int8 model (needs 'ditmos quantize RUN_DIR'): interval "
    "arithmetic on its integer computation, rounding modelled exactly.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a table.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def verify(run_dir: Path, eps_text, samples, with_int8, as_json, quiet) -> None:
    """Certified accuracy of RUN_DIR's single CNN on the test split: the
    share of windows whose prediction provably cannot change within the l_inf,
    l_2 and l_1 balls (interval bound propagation, docs/robustness.md), and the
    certified union accuracy (certified under all three at once).

    RUN_DIR is a single-CNN run of 'ditmos train --method single --robust
    MODE' (any mode; 'ibp' and 'cure' train for certificates). Writes
    RUN_DIR/robust/verify.json. Walk-through: docs/robustness.md.
    """
    from ditmos.robust.certified import format_verify, parse_cert_eps, verify_run

    if not (run_dir / "robust.json").is_file():
        raise DitmosError(
            f"{run_dir}/robust.json not found: verify needs a finished 'ditmos train --method single --robust MODE' run"
        )
    info = json.loads((run_dir / "robust.json").read_text())
    shape = info.get("input_shape")
    radii = parse_cert_eps(None, shape)
    radii.update(info.get("cert_radii") or {})
    if eps_text:
        given = parse_cert_eps(eps_text, shape)
        for part in eps_text.split(","):
            if "=" in part:
                radii[part.split("=", 1)[0].strip()] = given[part.split("=", 1)[0].strip()]
    if not quiet:
        click.echo(f"verifying {run_dir} ({', '.join(f'{k}={v:g}' for k, v in radii.items())})", err=True)
    res = verify_run(run_dir, radii, samples=samples, int8=with_int8)
    folder = run_dir / "robust"
    folder.mkdir(exist_ok=True)
    write_json(folder / "verify.json", res, indent=2)
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        click.echo(format_verify(res))
        click.echo(f"wrote {folder / 'verify.json'}")


CERT_TABLE_MODES = ("none", "linf", "ibp", "cure")


@robust.command("cert-table")
@click.option("--dataset", required=True, help="Dataset spec (hapt, fsdd, ...).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for one run directory per mode (finished runs are reused).",
)
@click.option("--modes", default=",".join(CERT_TABLE_MODES), show_default=True, help="Comma-separated training modes.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help='JSON config for every run (e.g. {"robust": {"epochs": 8}}).',
)
@click.option(
    "--eps",
    "eps_text",
    default=None,
    metavar="NORM=R,...",
    help="Certification radii for the table (defaults: l_inf 0.01, l_2 0.65*l_inf*sqrt(T*C), l_1 2*l_2).",
)
@click.option("--samples", default=None, type=click.IntRange(1), help="Only the first N test windows.")
@click.option(
    "--steps", default=20, show_default=True, type=click.IntRange(1), help="PGD steps at the certification radii."
)
@click.option(
    "--int8-samples",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Also certify each run's int8 model (quantised first if it has no int8/) on the "
    "first N test windows and add an int8 table (0: no int8 certificates).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--train/--no-train",
    "do_train",
    default=True,
    show_default=True,
    help="--no-train: only tabulate the finished runs under --out.",
)
@click.option(
    "--write",
    "write_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Markdown file for the table (e.g. docs/results/robust_cert_hapt.md).",
)
@click.option("--quiet", is_flag=True)
def cert_table(
    dataset, out_dir, modes, config_file, eps_text, samples, steps, int8_samples, seed, do_train, write_path, quiet
):
    """Train the equal-MACs single CNN with each mode (none, PGD l_inf AT,
    IBP, CURE by default), then verify each on the test split at the
    certification radii and write a table: clean accuracy, certified
    accuracy per norm, certified union accuracy, and the union accuracy
    under PGD at the same radii (an upper bound of what any verifier could
    certify).  Certified modes train for these radii (set 'cert_eps' in the
    config's "robust" section to change them); the epoch of each run is kept
    by its validation score.
    """
    from ditmos.robust.certified import parse_cert_eps
    from ditmos.robust.training import ALL_MODES, train_robust

    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in wanted if m not in ALL_MODES]
    if bad or not wanted:
        raise DitmosError(f"--modes: unknown mode(s) {bad}; choose from {', '.join(ALL_MODES)}")
    base = _read_config(config_file)
    cert_eps = (base.get("robust") or {}).get("cert_eps")
    if eps_text and cert_eps and eps_text != cert_eps:
        raise DitmosError("--eps and the config's robust 'cert_eps' differ; give the radii once")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, missing = [], []
    for mode in wanted:
        run = out_dir / mode
        if not (run / "robust.json").is_file():
            if not do_train:
                missing.append(mode)
                continue
            if run.exists():
                import shutil

                shutil.rmtree(run)  # an unfinished run of an interrupted table
            if not quiet:
                click.echo(f"training single {mode} -> {run}", err=True)
            over = {"robust": {**(base.get("robust") or {}), "cert_eps": eps_text or cert_eps}}
            train_robust(dataset, run, mode=mode, seed=seed, config_file=config_file, overrides=over, quiet=quiet)
        info = json.loads((run / "robust.json").read_text())
        radii = parse_cert_eps(eps_text or cert_eps, info["input_shape"])
        res = _cert_row(run, radii, samples, steps)
        if int8_samples:
            res["int8_rows"] = _int8_row(run, radii, int8_samples, quiet)
        rows.append((mode, info, res))
        if not quiet:
            r = rows[-1][2]
            click.echo(f"  {mode}: clean {r['clean']:.4f} certified union {r['union']:.4f}", err=True)
    if not rows:
        raise DitmosError(f"no finished run under {out_dir} for modes {', '.join(wanted)}")
    text = format_cert_table(dataset, rows, samples, steps, missing)
    click.echo(text)
    if write_path:
        _write_text(write_path, text)
        click.echo(f"wrote {write_path}")


def _cert_row(run: Path, radii: dict, samples, steps: int) -> dict:
    """verify.json of ``run`` at ``radii`` plus PGD at the same radii."""
    from ditmos.robust.certified import verify_run
    from ditmos.robust.targets import load_target
    from ditmos.robust.training import NORMS, robust_correct
    from ditmos.training.rundir import load_run_data

    res = verify_run(run, radii, samples=samples)
    data = load_run_data(run)
    x, y = data.x_test, data.y_test
    if samples:
        x, y = x[:samples], y[:samples]
    _, target = load_target(run, "single")
    ok = robust_correct(target.model, x.astype(np.float32), y, radii, NORMS, steps=steps)
    union = ok["clean"] & ok["linf"] & ok["l2"] & ok["l1"]
    res["pgd"] = {
        "steps": steps,
        **{n: round(float(ok[n].mean()), 5) for n in NORMS},
        "union": round(float(union.mean()), 5),
    }
    # a certified window is never broken by PGD (bounds are sound)
    for n in NORMS:
        if res["certified"][n] > res["pgd"][n] + 1e-9:
            raise DitmosError(f"{run}: certified {n} accuracy exceeds PGD accuracy: the bounds are unsound")
    (run / "robust").mkdir(exist_ok=True)
    write_json(run / "robust" / "verify.json", res, indent=2)
    return res


def _int8_row(run: Path, radii: dict, n: int, quiet: bool) -> dict:
    """Float and int8 certificates of ``run`` on its first ``n`` test windows."""
    from ditmos.quantize import quantize_run
    from ditmos.robust.certified import verify_run

    if not (run / "int8" / "manifest.json").is_file():
        if not quiet:
            click.echo(f"  quantising {run}", err=True)
        quantize_run(run, calibration_samples=500, quiet=True)
    res = verify_run(run, radii, samples=n, int8=True)
    return {"n": res["n"], "float": {k: res[k] for k in ("clean", "certified", "union")}, "int8": res["int8"]}


def format_cert_table(dataset: str, rows, samples, steps: int, missing=()) -> str:
    res0 = rows[0][2]
    radii = res0["radii"]
    info0 = rows[0][1]
    h = info0["hyper"]
    lines = [
        f"# Certified robustness of the single CNN on {dataset}",
        "",
        "Written by `ditmos robust cert-table` (see docs/robustness.md); do not edit by hand.",
        "",
        f"Model: the equal-MACs single CNN ({info0.get('macs')} MACs, {info0.get('params')} parameters), "
        f"seed {info0['seed']}, {h['epochs']} epochs, batch {h['batch_size']}; epoch kept by the "
        "validation score of each mode (clean accuracy for none, PGD l_inf for linf, certified "
        "l_inf for ibp, certified union for cure).",
        "",
        f"Test split, {res0['n']} windows{' (the first ' + str(samples) + ')' if samples else ''}; "
        "certification radii " + ", ".join(f"{k} {v:g}" for k, v in radii.items()) + " (normalised units). "
        "Certified = interval bounds prove every margin positive over the ball (float model); "
        "union = certified under all three norms. PGD columns: "
        f"{steps}-step PGD at the same radii (an upper bound of any certificate).",
        "",
        "| mode | clean | cert l_inf | cert l_2 | cert l_1 | cert union | PGD union | best epoch | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, info, r in rows:
        c = r["certified"]
        label = mode
        if mode == "cure":
            hh = info["hyper"]
            label = (
                f"cure ({hh['cure_combine']}, lambda {hh['sabr_lambda']:g}/{hh['sabr_lambda2']:g}, "
                f"BA {hh['cure_ba']:g}, GP {hh['cure_gp_beta']:g})"
            )
        elif mode == "ibp":
            label = f"ibp (kappa {info['hyper']['ibp_kappa']:g})"
        lines.append(
            f"| {label} | {100 * r['clean']:.2f} | {100 * c['linf']:.2f} | {100 * c['l2']:.2f} | "
            f"{100 * c['l1']:.2f} | {100 * r['union']:.2f} | {100 * r['pgd']['union']:.2f} | "
            f"{info['best_epoch']} | {info['train_seconds']:.0f} |"
        )
    q_rows = [(m, r["int8_rows"]) for m, _, r in rows if r.get("int8_rows")]
    if q_rows:
        n = q_rows[0][1]["n"]
        lines += [
            "",
            f"int8 model (`ditmos quantize`, 500 calibration windows), first {n} test windows: "
            "certificates of the integer computation (interval arithmetic, rounding modelled exactly; "
            "docs/robustness.md) beside the float model's on the same windows.",
            "",
            "| mode | float clean | float cert union | int8 clean | int8 cert l_inf | int8 cert l_2 | "
            "int8 cert l_1 | int8 cert union | int8 s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for mode, q in q_rows:
            f, i8 = q["float"], q["int8"]
            lines.append(
                f"| {mode} | {100 * f['clean']:.2f} | {100 * f['union']:.2f} | {100 * i8['clean']:.2f} | "
                f"{100 * i8['certified']['linf']:.2f} | {100 * i8['certified']['l2']:.2f} | "
                f"{100 * i8['certified']['l1']:.2f} | {100 * i8['union']:.2f} | {i8['seconds']:.0f} |"
            )
    if missing:
        lines += ["", f"Not trained (no finished run): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def _row_label(mode: str, info: dict) -> str:
    """The row name of a mode-table row across seeds (RAMP without its lambda,
    which each seed's sweep may choose differently)."""
    label = {"init": f"start: {info.get('mode')} (no fine-tuning)"}.get(mode, mode)
    if info.get("variant"):
        v = info["variant"]
        label += f", {v['name']} (" + ", ".join(f"{k} {val}" for k, val in v["robust"].items()) + ")"
    return label


def format_seeds_table(dataset: str, per_seed: dict, budget) -> str:
    """Mean ± std (sample std over the seeds) of every row of the per-seed
    mode tables, and the RAMP target computed per seed and on the means:
    RAMP's union minus the best union among the single-norm, max and avg rows,
    and max's clean minus RAMP's clean."""
    seeds = sorted(per_seed)
    table_rows: dict[str, dict[int, tuple]] = {}
    for s_, rows in per_seed.items():
        for mode, info, res in rows:
            f = res["float"]
            vals = (f["clean"], f["robust"]["linf"], f["robust"]["l2"], f["robust"]["l1"], f["union"])
            lam = info["hyper"].get("ramp_lambda") if mode == "ramp" and not info.get("variant") else None
            table_rows.setdefault(_row_label(mode, info), {})[s_] = (np.array(vals) * 100, lam)
    first = per_seed[seeds[0]][0]
    finetune = first[0] == "init"
    hp = (per_seed[seeds[0]][1] if finetune and len(per_seed[seeds[0]]) > 1 else first)[1]["hyper"]
    f0 = first[2]["float"]

    def ms(a):
        a = np.asarray(a, dtype=np.float64)
        return f"{a.mean():.2f} ± {a.std(ddof=1):.2f}" if len(a) > 1 else f"{a.mean():.2f}"

    lines = [
        f"# Robust {'fine-tuning' if finetune else 'training'} of the single CNN on {dataset}, "
        f"seeds {', '.join(map(str, seeds))}",
        "",
        "Written by `ditmos robust table --seeds` (see docs/robustness.md); do not edit by hand. "
        "Each seed's own table is OUT/seedS/table.md.",
        "",
        f"{hp['epochs']} epochs, batch {hp['batch_size']}, Adam lr {hp['lr']:g} "
        f"({hp.get('lr_schedule', 'cosine')} schedule), training attack {hp['attack_steps']}-step PGD"
        + (
            f"; every row but the first fine-tunes the first row's model (`{first[1]['mode']}` AT, "
            f"{first[1]['hyper']['epochs']} epochs from scratch) of the same seed"
            if finetune
            else ""
        )
        + ".",
        "",
        f"Attack (test split, {f0['n']} windows, float model): radii "
        + ", ".join(f"{k} {v:g}" for k, v in f0["radii"].items())
        + f"; PGD {budget.steps} steps x {budget.restarts} restarts per norm, plus Square "
        f"({budget.square_queries} queries) for l_inf. Mean ± sample std over the seeds, in %.",
        "",
        "| mode | seeds | clean | l_inf | l_2 | l_1 | union | union per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, by_seed in table_rows.items():
        got = [by_seed[s_][0] for s_ in seeds if s_ in by_seed]
        arr = np.stack(got)
        lams = [by_seed[s_][1] for s_ in seeds if s_ in by_seed and by_seed[s_][1] is not None]
        name = label + (f" (lambda per seed {', '.join(f'{v:g}' for v in lams)})" if lams else "")
        per = ", ".join(f"{by_seed[s_][0][4]:.2f}" if s_ in by_seed else "—" for s_ in seeds)
        lines.append(f"| {name} | {len(got)} | " + " | ".join(ms(arr[:, k]) for k in range(5)) + f" | {per} |")
    # the target: RAMP >= 3 points of union over the best single-norm / max / avg row,
    # at <= 3 points less clean accuracy than max
    verdicts = []
    for s_ in [*seeds, "mean"]:

        def val(label, k, s_=s_):
            by = table_rows.get(label, {})
            if s_ == "mean":
                return float(np.mean([v[0][k] for v in by.values()])) if len(by) == len(seeds) else None
            return float(by[s_][0][k]) if s_ in by else None

        ramp_u, max_c = val("ramp", 4), val("max", 0)
        others = {m: val(m, 4) for m in ("linf", "l2", "l1", "max", "avg")}
        others = {m: v for m, v in others.items() if v is not None}
        if ramp_u is None or not others or max_c is None:
            continue
        best = max(others, key=others.get)
        gain, drop = ramp_u - others[best], max_c - val("ramp", 0)
        ok = gain >= 3 and drop <= 3
        who = "mean" if s_ == "mean" else f"seed {s_}"
        verdicts.append(
            f"- {who}: RAMP union {ramp_u:.2f} vs best other {best} {others[best]:.2f} "
            f"({gain:+.2f} points); clean {drop:+.2f} points below max: target "
            f"{'met' if ok else 'missed'} (needs >= +3 union at <= 3 clean below max)."
        )
    if verdicts:
        lines += ["", "RAMP target:", ""] + verdicts
    return "\n".join(lines) + "\n"
