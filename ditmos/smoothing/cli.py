"""``ditmos certify``."""

from __future__ import annotations

import json
import sys

import click


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--sigma",
    type=float,
    required=True,
    help="Noise std in normalised input units (the windows are z-scored per channel).",
)
@click.option("--n0", type=int, default=100, show_default=True, help="Noisy predictions that select the top class.")
@click.option(
    "--n",
    "n",
    type=int,
    default=10000,
    show_default=True,
    help="Noisy predictions that bound the top class's probability.",
)
@click.option("--alpha", type=float, default=0.001, show_default=True, help="Failure probability of each certificate.")
@click.option(
    "--int8", is_flag=True, help="Also certify the int8 model with integer-only smoothing (needs 'ditmos quantize')."
)
@click.option("--no-float", is_flag=True, help="Skip float smoothing (with --int8).")
@click.option(
    "--engine",
    type=click.Choice(["batched", "c", "fast"]),
    default="batched",
    show_default=True,
    help="With --int8: 'batched' classifies all noisy windows of a window at once "
    "(LiteRT int8 kernels), 'c' runs the device's vote loop and generated C "
    "model one noisy window at a time, 'fast' the same vote loop with AVX2 noise "
    "and host kernels (x86-64 with AVX2); the selection counts of 'batched' and "
    "'fast' are checked against 'c' on every window.",
)
@click.option(
    "--samples",
    type=int,
    default=100,
    show_default=True,
    help="Windows to certify, evenly spread over the split (0 = all).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--split",
    type=click.Choice(["test", "val"]),
    default="test",
    show_default=True,
    help="Windows to certify (or tabulate): the test split, or the validation "
    "split for choosing settings (files end in _val).",
)
@click.option(
    "--tabulate",
    is_flag=True,
    help="Certify nothing: tabulate the existing RUN_DIR/certify files of this sigma "
    "(several RUN_DIRs: one table, a row per run and kind).",
)
@click.option(
    "--seeds",
    default=None,
    metavar="S1,S2,...",
    help="With --tabulate: mean ± std over these certification seeds (files "
    "written with --seed), and the int8 - float difference per radius.",
)
@click.option(
    "--agreement",
    is_flag=True,
    help="Certify nothing: give the same --noises Gaussian draws per window to the "
    "float and the int8 model (several RUN_DIRs: a row each) and report accuracies, "
    "agreement, routing agreement and input saturation (where int8 smoothing loses).",
)
@click.option(
    "--noises",
    type=int,
    default=100,
    show_default=True,
    help="With --agreement: Gaussian draws per window.",
)
@click.option(
    "--markdown",
    type=click.Path(dir_okay=False),
    help="Also write the table (with its parameters) to this Markdown file.",
)
@click.option("--quiet", is_flag=True, help="No progress output.")
def certify(
    run_dirs,
    sigma,
    n0,
    n,
    alpha,
    int8,
    no_float,
    engine,
    samples,
    seed,
    split,
    tabulate,
    seeds,
    agreement,
    noises,
    markdown,
    quiet,
):
    """Certify RUN_DIR's model with randomized smoothing on test windows
    (--split val: validation windows, for choosing sigma and training settings).

    RUN_DIR is a DiTMoS run or a single-CNN run ('ditmos train --model single
    --smoothing ...'; float smoothing only).

    Float smoothing adds Gaussian noise to the float model's input.  With
    --int8, integer-only smoothing adds integer noise (a 32-bit counter-based
    generator and a rounded-Gaussian table, in input quantisation steps) to
    the int8 input and runs the generated int8 C model, exactly as the
    device does.  Prints certified accuracy per l2 radius, the average
    certified radius (ACR) and the abstain rate; writes
    RUN_DIR/certify/{float,int8}_sigma<S>.json (``..._sigma<S>_seed<k>.json``
    for --seed k > 0).  See docs/smoothing.md for what each certificate covers.

    With --agreement nothing is certified: the float and the int8 model get
    the same noisy windows, to see where integer smoothing loses accuracy
    (input saturation, routing, the classifiers' int8 arithmetic), e.g.
    'ditmos certify RUN --sigma 0.25 --agreement --samples 20 --noises 10'.
    """
    from pathlib import Path

    from ditmos.errors import DitmosError
    from ditmos.smoothing.run import (
        certify_run,
        format_table,
        load_results,
        load_seed_results,
        seed_table,
        training_label,
        write_markdown,
        write_seed_markdown,
    )

    if agreement:
        from ditmos.smoothing import agreement as AG

        if tabulate:
            raise DitmosError("--agreement and --tabulate do not go together")
        rows = []
        for rd in run_dirs:
            rows.append(AG.agreement(rd, sigma=sigma, samples=samples, noises=noises, seed=seed, split=split))
            if not quiet:
                click.echo(f"agreement: {rd} done", err=True)
        click.echo(AG.format_table(rows))
        if markdown:
            cmd = (
                "ditmos certify "
                + " ".join(Path(r).name for r in run_dirs)
                + f" --sigma {sigma:g} --agreement --samples {samples} --noises {noises}"
                + (f" --seed {seed}" if seed else "")
                + (" --split val" if split == "val" else "")
                + f" --markdown {Path(markdown).name}"
            )
            AG.write_markdown(rows, markdown, cmd)
        return
    if seeds is not None and not tabulate:
        raise DitmosError("--seeds goes with --tabulate (certify one seed at a time with --seed)")
    if tabulate and seeds is not None:
        try:
            seed_list = [int(v) for v in seeds.split(",") if v.strip()]
        except ValueError:
            raise DitmosError(f"--seeds wants comma-separated integers, got {seeds!r}") from None
        if len(seed_list) < 2 or len(set(seed_list)) != len(seed_list):
            raise DitmosError(f"--seeds wants at least two different seeds, got {seeds!r}")
        groups = load_seed_results(run_dirs, sigma, seed_list, split)
        click.echo(seed_table(groups)[0])
        if markdown:
            cmd = (
                "ditmos certify "
                + " ".join(Path(r).name for r in run_dirs)
                + f" --sigma {sigma:g}"
                + (" --split val" if split == "val" else "")
                + f" --tabulate --seeds {','.join(map(str, seed_list))}"
                + f" --markdown {Path(markdown).name}"
            )
            write_seed_markdown(groups, seed_list, markdown, cmd)
        return
    if tabulate:
        results = load_results(run_dirs, sigma, seed, split)
        click.echo(format_table(results))
        if markdown:
            cmd = (
                "ditmos certify "
                + " ".join(Path(r).name for r in run_dirs)
                + f" --sigma {sigma:g}"
                + (f" --seed {seed}" if seed else "")
                + (" --split val" if split == "val" else "")
                + f" --tabulate --markdown {Path(markdown).name}"
            )
            write_markdown(results, markdown, command=cmd)
        return
    if len(run_dirs) > 1:
        raise DitmosError("certify one RUN_DIR at a time (several only with --tabulate)")
    run_dir = run_dirs[0]
    if no_float and not int8:
        raise DitmosError("--no-float leaves nothing to certify; add --int8")

    def progress(kind, done, total):
        if not quiet and (done == total or done % 10 == 0):
            click.echo(f"{kind}: {done}/{total} windows certified", err=True)

    files = certify_run(
        run_dir,
        sigma=sigma,
        n0=n0,
        n=n,
        alpha=alpha,
        int8=int8,
        float_=not no_float,
        samples=samples,
        seed=seed,
        engine=engine,
        split=split,
        progress=progress,
    )
    results = {k: json.loads(p.read_text()) for k, p in files.items()}
    for r in results.values():
        r["training"] = training_label(run_dir)
    click.echo(format_table(results))
    if markdown:
        write_markdown(results, markdown)
    for p in files.values():
        click.echo(f"wrote {p}", err=True)
    sys.stdout.flush()
