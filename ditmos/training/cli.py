"""``ditmos train``: train DiTMoS (strong model, selector, K classifiers)."""

from __future__ import annotations

import importlib.util

import click

from ditmos.errors import DitmosError


@click.command()
@click.option("--dataset", required=True, help="Dataset spec (hapt, fsdd, unimib:DIR, ...).")
@click.option(
    "--preset",
    type=click.Choice(["quick", "full"]),
    default="quick",
    show_default=True,
    help="Schedule: quick (demo/CI) or full (reference).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory to create (or to continue with --resume).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="JSON file overriding preset values (unknown keys are errors).",
)
@click.option(
    "--width", type=float, default=1.0, show_default=True, help="Multiplier on every selector/classifier channel count."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--compare", is_flag=True, help="Also train the baselines/ablations and write a comparison table.")
@click.option("--widths", default=None, help="With --compare: widths, e.g. 0.125,0.25,0.5,1 (the default).")
@click.option(
    "--seeds",
    default=None,
    help="With --compare: seeds, e.g. 0,1,2; tables show mean ± std over them (default: --seed only).",
)
@click.option(
    "--jobs",
    type=int,
    default=None,
    help="With --compare: trials at once (default: one per CPU of the Ray "
    "instance); 1 = one after the other in this process, without Ray.",
)
@click.option(
    "--ray-address",
    default=None,
    help="With --compare: run the trials on this existing Ray cluster (e.g. "
    "HOST:6379 or auto) instead of a local Ray instance started for the sweep.",
)
@click.option(
    "--search",
    is_flag=True,
    help="With --compare: give DiTMoS an architecture search inside each width's MAC "
    "budget with as many trials as the equal-MACs baseline's search; the best "
    "on validation becomes the DiTMoS row.",
)
@click.option(
    "--search-trials",
    type=int,
    default=None,
    help="With --search: DiTMoS architectures tried per width (default: as many as the equal-MACs baseline tries).",
)
@click.option(
    "--baselines",
    "baseline_names",
    default=None,
    metavar="NAMES",
    help="With --compare: the trained baselines to run, comma-separated (default: "
    "all of weak_equal_macs, equal_params, soft_moe, early_exit).",
)
@click.option(
    "--ablations",
    "ablation_mode",
    type=click.Choice(["largest", "all", "none"]),
    default=None,
    help="With --compare: ablation rows at the largest width (the default), at every width, or none.",
)
@click.option("--no-ray", is_flag=True, help="With --compare: run the trials one after the other in this process.")
@click.option(
    "--smoothing",
    type=click.Choice(["none", "gaussian", "smoothmix"]),
    default="none",
    show_default=True,
    help="Train for randomized smoothing: 'gaussian' adds N(0, sigma^2) noise to "
    "every training window (a fresh draw per epoch, every stage); 'smoothmix' "
    "(with --model single) adds SmoothMix's self-mixup along the smoothed "
    "classifier's adversarial direction (docs/smoothing.md).",
)
@click.option("--sigma", type=float, default=None, help="With --smoothing: noise std in normalised input units.")
@click.option(
    "--method",
    "--model",
    "model_kind",
    type=click.Choice(["ditmos", "single", "early_exit"]),
    default="ditmos",
    show_default=True,
    help="ditmos; or, for --robust, the equal-MACs single CNN baseline (single) or "
    "the multi-exit CNN of the early-exit baseline (early_exit, RDI-Nets "
    "training). --model is the same option.",
)
@click.option(
    "--robust",
    "robust_mode",
    default=None,
    type=click.Choice(["none", "linf", "l2", "l1", "max", "avg", "eat", "ramp", "ibp", "cure"]),
    help="Adversarial training (with --method single or early_exit): PGD on one "
    "norm (linf, l2, l1), the worst (max) or mean (avg) over the three, E-AT "
    "(eat), RAMP (ramp), certified l_inf interval-bound training (ibp), CURE-style "
    "multi-norm certified training (cure), or none (standard training in the same loop). "
    "early_exit takes none, linf, l2, l1.",
)
@click.option(
    "--pair",
    default=None,
    metavar="Q,R",
    help="RAMP key pair, e.g. 'linf,l1' (default: a cheap proxy of the RAMP rule).",
)
@click.option(
    "--init-from",
    "init_from",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="With --robust: fine-tune the weights of this finished robust run (same "
    "--method and dataset) instead of training from scratch, e.g. RAMP or E-AT "
    "on top of an l_inf-AT run.",
)
@click.option("--quiet", is_flag=True, help="No progress bars (CI).")
def train(
    dataset,
    preset,
    out_dir,
    config_file,
    width,
    seed,
    resume,
    compare,
    widths,
    seeds,
    jobs,
    ray_address,
    search,
    search_trials,
    baseline_names,
    ablation_mode,
    no_ray,
    smoothing,
    sigma,
    model_kind,
    robust_mode,
    pair,
    init_from,
    quiet,
):
    """Train DiTMoS and write a run directory (config, models, export, metrics.json).

    \b
    With --compare, DiTMoS, its ablations and the baselines are trained at
    every --widths and --seeds and compared in OUT/compare/compare.md (mean ±
    std over the seeds); the run in --out is the DiTMoS run of --width and
    --seed.  The trials run as Ray tasks (a local Ray instance is started and
    stopped automatically); finished trials are kept in OUT/compare/trials/,
    so the same command with --resume continues an interrupted comparison
    without retraining them.

    \b
    With --method single --robust MODE: adversarially train the single CNN
    with the MACs of DiTMoS's selector + one classifier (quick schedule)
    and write RUN/models/single.keras and RUN/robust.json; attack it with
    'ditmos robust attack RUN'. Hyper-parameters: the "robust" section of
    --config (e.g. {"robust": {"epochs": 20, "attack_steps": 5}}).

    \b
    With --method early_exit --robust MODE: RDI-Nets training of the
    early-exit baseline's multi-exit CNN (every exit on clean and on
    adversarial windows from an attack on all exits), then its exit
    threshold on validation (clean accuracy, or with
    {"robust": {"threshold_on": "robust"}} robust accuracy; with
    "exit_thresholds": "per_exit" one threshold per early exit); writes
    RUN/models/early_exit.keras, RUN/robust.json (threshold, per-exit MACs)
    and the network-run files 'ditmos quantize RUN' converts to int8. See
    docs/robustness.md.
    """
    from pathlib import Path

    if model_kind == "single" and smoothing != "none":
        if robust_mode is not None or pair is not None or init_from is not None:
            raise DitmosError("--smoothing and --robust (--init-from) are separate trainings; choose one")
        if resume or compare or widths or seeds or width != 1.0 or preset != "quick":
            raise DitmosError(
                "--model single --smoothing takes only --dataset, --out, --config, --seed, --sigma, --quiet"
            )
        if sigma is None:
            raise DitmosError(f"--smoothing {smoothing} needs --sigma (normalised input units)")
        from ditmos.smoothing.training import train_single_smoothing

        run_dir = train_single_smoothing(
            dataset, out_dir, method=smoothing, sigma=sigma, seed=seed, config_file=config_file, quiet=quiet
        )
        import json

        r = json.loads((run_dir / "smoothing.json").read_text())
        h = r["history"][r["best_epoch"] - 1]
        click.echo(
            f"{run_dir}: {smoothing} sigma {sigma:g}, epoch {r['best_epoch']} kept: val "
            f"Monte-Carlo ACR {h['val_acr']:.4f} (certify: ditmos certify {run_dir} "
            f"--sigma {sigma:g})"
        )
        return
    if smoothing == "smoothmix":
        raise DitmosError(
            "--smoothing smoothmix is available for --model single only; DiTMoS trains with --smoothing gaussian"
        )
    if init_from is not None and robust_mode is None:
        raise DitmosError("--init-from applies to robust training only (with --robust MODE)")
    if model_kind != "ditmos" or robust_mode is not None:
        if model_kind == "ditmos":
            raise DitmosError(
                "--robust is available for --method single or early_exit only "
                "(adversarial training of DiTMoS itself is not implemented yet)"
            )
        if resume or compare or widths or seeds or width != 1.0 or preset != "quick" or smoothing != "none":
            raise DitmosError(
                f"--method {model_kind} takes only --dataset, --out, --config, --seed, --robust, --pair, "
                "--init-from, --quiet"
            )
        if pair is not None and robust_mode != "ramp":
            raise DitmosError("--pair only applies to --robust ramp")
        from ditmos.robust.training import train_robust

        run_dir = train_robust(
            dataset,
            out_dir,
            method=model_kind,
            mode=robust_mode or "none",
            seed=seed,
            config_file=config_file,
            pair=pair,
            init_from=init_from,
            quiet=quiet,
        )
        import json

        info = json.loads((run_dir / "robust.json").read_text())
        r = info["cheap_pgd"]["test"]
        if model_kind == "single":
            click.echo(
                f"{run_dir}: test clean {r['clean']:.4f}; cheap PGD linf {r['linf']:.4f} "
                f"l2 {r['l2']:.4f} l1 {r['l1']:.4f} union {r['union']:.4f} "
                f"(full attack: ditmos robust attack {run_dir})"
            )
        else:
            from ditmos.training.baselines import format_thresholds

            t, pol = info["test"], info["exit_policy"]
            thr = format_thresholds(pol.get("thresholds", pol["threshold"]))
            click.echo(
                f"{run_dir}: test clean {t['accuracy']:.4f} at {t['avg_macs']:.0f} average "
                f"MACs (max {info['max_macs']}; threshold {thr} from "
                f"validation; exits {t['exit_fractions']}); cheap PGD per exit linf "
                f"{r['linf']} (full attack: ditmos robust attack {run_dir})"
            )
        return

    overrides = None
    if smoothing == "none" and sigma is not None:
        raise DitmosError("--sigma only applies together with --smoothing")
    if smoothing != "none":
        if sigma is None:
            raise DitmosError(f"--smoothing {smoothing} needs --sigma (normalised input units)")
        if compare:
            raise DitmosError("--smoothing trains one run; it cannot be combined with --compare")
        overrides = {"smoothing": {"method": smoothing, "sigma": sigma}}
    sweep_opts = {
        "--widths": widths,
        "--seeds": seeds,
        "--jobs": jobs,
        "--ray-address": ray_address,
        "--no-ray": no_ray or None,
        "--search": search or None,
        "--search-trials": search_trials,
        "--baselines": baseline_names,
        "--ablations": ablation_mode,
    }
    if not compare:
        used = [k for k, v in sweep_opts.items() if v is not None]
        if used:
            verb = "applies" if len(used) == 1 else "apply"
            raise DitmosError(f"{', '.join(used)} only {verb} together with --compare")
    if compare and importlib.util.find_spec("ditmos.training.compare") is None:
        raise DitmosError("--compare is not available in this installation (ditmos.training.compare is missing)")
    import json

    from ditmos.training import train_run

    run_dir = Path(out_dir)
    if compare:
        from ditmos.training.compare import DEFAULT_WIDTHS, parse_seeds, parse_widths, run_compare
        from ditmos.training.sweep import make_executor

        ws = parse_widths(widths) if widths is not None else DEFAULT_WIDTHS
        ss = parse_seeds(seeds) if seeds is not None else (seed,)
        bover = None
        if baseline_names is not None:
            from ditmos.training.baselines import BASELINE_NAMES, TRAINED

            names = [n.strip() for n in baseline_names.split(",") if n.strip()]
            bad = sorted(set(names) - set(TRAINED))
            if not names or bad:
                raise DitmosError(
                    f"--baselines: unknown or missing name(s) {bad or names}; choose from {', '.join(TRAINED)}"
                )
            # the strong model and the K-ensemble come free with every DiTMoS run
            bover = {"only": names + [n for n in BASELINE_NAMES if n not in TRAINED]}
        if search_trials is not None and (not search or search_trials < 1):
            raise DitmosError("--search-trials needs --search and a count >= 1")
        executor = make_executor(jobs, ray_address, no_ray)
        if seed not in ss:
            seed = ss[0]
        if (run_dir / "config.json").exists() and not resume:
            raise DitmosError(
                f"{run_dir} already holds a training run (config.json); pass "
                f"--resume to continue it (and its comparison) or choose "
                f"another --out"
            )
        if run_dir.exists() and any(run_dir.iterdir()) and not (run_dir / "config.json").exists() and not resume:
            raise DitmosError(
                f"{run_dir} exists and is not empty; choose a new --out directory "
                f"(or pass --resume to continue an interrupted comparison)"
            )
        in_sweep = float(width) in ws
        if not in_sweep:
            train_run(
                dataset, preset, run_dir, config_file=config_file, width=width, seed=seed, resume=resume, quiet=quiet
            )
        from ditmos.training.compare import search_candidates

        out = run_compare(
            dataset,
            preset,
            run_dir / "compare",
            widths=ws,
            seeds=ss,
            quiet=quiet,
            config_file=config_file,
            executor=executor,
            candidates=search_candidates(search_trials) if search else None,
            ablations=ablation_mode or "largest",
            baseline_overrides=bover,
            main_run=(run_dir, width, seed) if in_sweep else None,
        )
    else:
        train_run(
            dataset,
            preset,
            run_dir,
            config_file=config_file,
            width=width,
            seed=seed,
            resume=resume,
            quiet=quiet,
            overrides=overrides,
        )
    if compare and not (run_dir / "metrics.json").exists():
        # --search: the searched candidates stand for DiTMoS, not the preset run
        click.echo(f"comparison written to {out / 'compare.md'}")
        return
    m = json.loads((run_dir / "metrics.json").read_text())
    t = m["test"]["float"]
    click.echo(
        f"{run_dir}: test accuracy DiTMoS {t['ditmos']:.4f} (union {t['union']:.4f}, "
        f"strong {t['baselines']['strong']:.4f}); {m['model']['params']} params, "
        f"{m['model']['macs']} MACs/inference"
    )
    if compare:
        click.echo(f"comparison written to {out / 'compare.md'}")
