"""``ditmos evaluate``: on-device accuracy, latency and memory over the serial protocol."""

from __future__ import annotations

import click


@click.command(
    "evaluate",
    epilog="""\b
Examples:
  ditmos evaluate --run runs/hapt --build build/mps2 --emulate --jobs 2 --out eval/hapt
  ditmos evaluate --run runs/hapt --build build/host --emulate --jobs 2 --out eval/host
  ditmos evaluate --run runs/hapt --build build/mps2 --port socket://127.0.0.1:PORT --out eval/emu
  ditmos evaluate --run runs/hapt --build build/nucleo --port /dev/ttyACM0 --out eval/nucleo
  ditmos evaluate --run runs/hapt --method early_exit --build build/host-ee --emulate --out eval/host-ee
  ditmos evaluate --run runs/hapt --build build/mps2 --emulate --raw --limit 20 --out eval/raw
  ditmos evaluate --certify --sigma 0.25 --n 50 --limit 2 --run runs/hapt --build build/host --emulate --out eval/cert

\b
--raw sends the raw test inputs instead of int8 windows (RAW requests,
docs/protocol.md): int16 audio clips for a dataset with an on-device front
end (fsdd_audio), int16 sensor counts for a dataset with a count scale
(hapt), float windows otherwise, or the kind named (--raw float).  The device
runs the generated input pipeline (front end, normalisation, quantisation)
and the model; every answer must still equal the host reference.  The
pipeline's own cost is reported beside the inference's.

\b
--certify: randomized smoothing on the device (docs/smoothing.md).  Each
test window gets CERTIFY requests for n0 + n noisy inferences; the device's
vote counts must equal the host's integer simulation (a difference is a
mismatch, exit status 1), and the certificate is computed from them.
Written: OUT/certify.jsonl (one record per window, --resume keeps them) and
OUT/certify_report.json (certified accuracy per radius, ACR, abstain rate,
latency per certified prediction).

\b
Latency, one unit per report: ms at the board clock (Nucleo, cycle
counter), retired instructions (QEMU), or us of host wall-clock time (host
board).  With --port on an emulator started by `ditmos emulate --build
BUILD_DIR` the instruction counts are found through BUILD_DIR; for a QEMU
started otherwise pass --marks with its plugin log.  Without any source the
latency is reported as unavailable and everything else is still measured.
With --method the build holds another method of the run's comparison
(`ditmos build --method`); for a network with early exits the route
histogram counts the exits taken.
""",
)
@click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory (with int8/manifest.json from `ditmos quantize`).",
)
@click.option(
    "--method",
    default="ditmos",
    show_default=True,
    help="The method of RUN's comparison the build holds (as `ditmos build --method`).",
)
@click.option(
    "--build",
    "build_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Build directory of the firmware on the device (`ditmos build`).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Evaluation directory: samples.jsonl and report.json.",
)
@click.option(
    "--port", "ports", multiple=True, help="Serial device or pyserial URL (repeat for several boards in parallel)."
)
@click.option("--baud", default=115200, show_default=True, help="Baud rate of real serial ports.")
@click.option(
    "--emulate",
    is_flag=True,
    help="Run the build here: QEMU for an mps2_an500 build, the executable on a pseudo-terminal for a host build.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --emulate: QEMU instances or host processes in parallel.",
)
@click.option(
    "--marks",
    "marks",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="QEMU plugin log (marks.log) of the emulator behind --port, one per --port "
    "in order [default: found through BUILD_DIR when `ditmos emulate` runs it].",
)
@click.option("--resume", is_flag=True, help="Keep the samples already in OUT and measure the rest.")
@click.option("--limit", type=int, default=None, help="Only the first N test samples.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait for one answer.")
@click.option(
    "--raw",
    "raw",
    is_flag=False,
    flag_value="auto",
    default=None,
    type=click.Choice(["auto", "float", "i16", "audio"]),
    help="Send raw inputs; the device prepares them (kind: auto, float, i16, audio; --raw alone = auto).",
)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option(
    "--certify", is_flag=True, help="Certified (randomized smoothing) predictions instead of plain inferences."
)
@click.option(
    "--sigma", type=float, default=None, help="With --certify: noise level in normalised input units (required)."
)
@click.option("--n0", type=int, default=100, show_default=True, help="With --certify: selection inferences per window.")
@click.option(
    "--n", "n_est", type=int, default=1000, show_default=True, help="With --certify: estimation inferences per window."
)
@click.option(
    "--alpha",
    type=float,
    default=0.001,
    show_default=True,
    help="With --certify: failure probability of the certificate.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="With --certify: noise seed (the same windows' seeds as `ditmos certify`).",
)
def evaluate(
    run_dir,
    method,
    build_dir,
    out_dir,
    ports,
    baud,
    emulate,
    jobs,
    marks,
    resume,
    limit,
    timeout,
    raw,
    quiet,
    certify,
    sigma,
    n0,
    n_est,
    alpha,
    seed,
):
    """Stream the test split to the device(s) and compare every answer with the host reference."""
    if certify:
        if raw is not None or method != "ditmos":
            raise click.UsageError("--certify certifies the DiTMoS model from int8 windows: drop --raw and --method")
        from ditmos.harness.certify_eval import certify_summary_lines, evaluate_certify

        if sigma is None:
            raise click.UsageError("--certify needs --sigma (noise level in normalised input units)")
        if jobs != 1:
            raise click.UsageError("--certify runs on one device: leave --jobs at 1")

        def progress(done, total):
            if not quiet:
                click.echo(f"  {done}/{total} windows certified", err=True)

        report = evaluate_certify(
            run_dir,
            build_dir,
            out_dir,
            sigma=sigma,
            n0=n0,
            n=n_est,
            alpha=alpha,
            seed=seed,
            ports=list(ports),
            baudrate=baud,
            emulate=emulate,
            resume=resume,
            limit=limit,
            timeout=timeout,
            marks=list(marks),
            progress=progress,
        )
        for line in certify_summary_lines(report):
            click.echo(line)
        if report["mismatches"]:
            raise click.exceptions.Exit(1)
        return
    if sigma is not None:
        raise click.UsageError("--sigma goes with --certify")
    from ditmos.harness.evaluate import evaluate as run
    from ditmos.harness.summary import summary_lines
    from ditmos.methods import method_run_dir

    run_dir = method_run_dir(run_dir, method)

    state = {"last": -1}

    def progress(done, total):
        if not quiet and done != state["last"] and (done == total or done % 50 == 0):
            state["last"] = done
            click.echo(f"  {done}/{total} samples", err=True)

    report = run(
        run_dir,
        build_dir,
        out_dir,
        ports=list(ports),
        baudrate=baud,
        emulate=emulate,
        jobs=jobs,
        marks=list(marks),
        resume=resume,
        limit=limit,
        timeout=timeout,
        method=method,
        raw=raw,
        progress=progress,
    )
    for line in summary_lines(report):
        click.echo(line)
    if report["mismatches"]:
        raise click.exceptions.Exit(1)
