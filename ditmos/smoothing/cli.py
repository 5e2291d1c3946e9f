"""``ditmos certify``."""

from __future__ import annotations

import json
import sys

import click


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--sigma", type=float, required=True,
              help="Noise std in normalised input units (the windows are z-scored per channel).")
@click.option("--n0", type=int, default=100, show_default=True,
              help="Noisy predictions that select the top class.")
@click.option("--n", "n", type=int, default=10000, show_default=True,
              help="Noisy predictions that bound the top class's probability.")
@click.option("--alpha", type=float, default=0.001, show_default=True,
              help="Failure probability of each certificate.")
@click.option("--int8", is_flag=True,
              help="Also certify the int8 model with integer-only smoothing (needs 'ditmos quantize').")
@click.option("--no-float", is_flag=True, help="Skip float smoothing (with --int8).")
@click.option("--samples", type=int, default=100, show_default=True,
              help="Test windows to certify, evenly spread over the test split (0 = all).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--tabulate", is_flag=True,
              help="Certify nothing: tabulate the existing RUN_DIR/certify files of this sigma.")
@click.option("--markdown", type=click.Path(dir_okay=False),
              help="Also write the table (with its parameters) to this Markdown file.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def certify(run_dir, sigma, n0, n, alpha, int8, no_float, samples, seed, tabulate, markdown,
            quiet):
    """Certify RUN_DIR's DiTMoS with randomized smoothing on test windows.

    Float smoothing adds Gaussian noise to the float model's input.  With
    --int8, integer-only smoothing adds integer noise (a 32-bit counter-based
    generator and a rounded-Gaussian table, in input quantisation steps) to
    the int8 input and runs the generated int8 C model, exactly as the
    device does.  Prints certified accuracy per l2 radius, the average
    certified radius (ACR) and the abstain rate; writes
    RUN_DIR/certify/{float,int8}_sigma<S>.json.  See docs/smoothing.md for
    what each certificate covers.
    """
    from pathlib import Path

    from ditmos.errors import DitmosError
    from ditmos.smoothing.run import certify_run, format_table, write_markdown

    if tabulate:
        files = {k: Path(run_dir) / "certify" / f"{k}_sigma{sigma:g}.json"
                 for k in ("float", "int8")}
        results = {k: json.loads(p.read_text()) for k, p in files.items() if p.is_file()}
        if not results:
            raise DitmosError(f"no certification files for sigma {sigma:g} in "
                              f"{Path(run_dir) / 'certify'}; run 'ditmos certify' first")
        click.echo(format_table(results))
        if markdown:
            write_markdown(results, markdown)
        return
    if no_float and not int8:
        raise DitmosError("--no-float leaves nothing to certify; add --int8")

    def progress(kind, done, total):
        if not quiet and (done == total or done % 10 == 0):
            click.echo(f"{kind}: {done}/{total} windows certified", err=True)

    files = certify_run(run_dir, sigma=sigma, n0=n0, n=n, alpha=alpha, int8=int8,
                        float_=not no_float, samples=samples, seed=seed, progress=progress)
    results = {k: json.loads(p.read_text()) for k, p in files.items()}
    click.echo(format_table(results))
    if markdown:
        write_markdown(results, markdown)
    for p in files.values():
        click.echo(f"wrote {p}", err=True)
    sys.stdout.flush()
