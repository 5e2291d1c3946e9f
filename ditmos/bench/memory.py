"""``ditmos bench memory``: peak activation memory per planning strategy vs TFLM.

For a quantised run (``RUN_DIR/int8``) it reports:

- ``peak_bytes``: the arena of the composed DiTMoS inference (selector ->
  chosen classifier under one plan) for each strategy (``slicing``,
  ``greedy``, ``none``);
- ``single_bytes`` / ``max_single_bytes``: each sub-model planned alone
  (slicing + greedy placement), and the largest of them;
- ``tflm_arena_bytes``: the arena the TFLM interpreter reports for each
  sub-model (RecordingMicroAllocator total), plus ``tflm_head_bytes`` (its
  non-persistent, planned activation part).  ``tflm_arena_source`` says where
  the figures come from: the tflite-micro Python runtime, i.e. TFLM built for
  the 64-bit HOST.  Its persistent part (tensor structs, node and operator
  data, pointers) is about twice as large as on a 32-bit Cortex-M, so the
  host total overstates the on-target arena (by a fifth to a third for our
  models); the planned head holds only activation buffers and is the same on
  the target, so it is a lower bound of the on-target arena.  The comparison
  target below is therefore against the head as well as the host total.

The generated code reads the input window in place from the caller's buffer;
``input_bytes`` says how large it is (TFLM's arena holds it).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

from ditmos.errors import DitmosError


def tflm_arena(tflite_path: Path, inputs: list[tuple[list[int], int]]) -> dict[str, int]:
    """Arena usage the TFLM interpreter reports (``print_allocations``) after one
    invoke on zero-point inputs: {"total": .., "head": .., "tail": ..} bytes."""
    from tflite_micro import runtime

    data = Path(tflite_path).read_bytes()
    it = runtime.Interpreter.from_bytes(data, arena_size=max(64 * 1024, 40 * len(data)))
    for i, (shape, zp) in enumerate(inputs):
        it.set_input(np.full(shape, zp, np.int8), i)
    it.invoke()
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            it.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")
    res = {}
    for key in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        if m is None:
            raise DitmosError(f"the TFLM interpreter did not report its arena {key} for {tflite_path}")
        res[key] = int(m.group(1))
    return res


def measure(int8_dir) -> dict:
    from ditmos.codegen import load_int8_dir, plan_all

    int8_dir = Path(int8_dir)
    manifest, graphs = load_int8_dir(int8_dir)
    res = plan_all(manifest, graphs)
    res.pop("plans")  # full tables live in the codegen manifest
    res["tflm_arena_bytes"], res["tflm_head_bytes"] = {}, {}
    res["tflm_arena_source"] = (
        "host-64bit-interpreter: total overstates the 32-bit "
        "on-target arena; head (planned activations) is the same "
        "on target and a lower bound"
    )
    for name, sub in manifest["submodels"].items():
        ins = sorted(sub["inputs"], key=lambda r: r["index"])
        a = tflm_arena(int8_dir / sub["file"], [(r["shape"], r["zero_point"]) for r in ins])
        res["tflm_arena_bytes"][name] = a["total"]
        res["tflm_head_bytes"][name] = a["head"]
    T, C = manifest["input_shape"]
    res["input_bytes"] = int(T) * int(C)
    res["slicing_vs_max_single"] = round(res["peak_bytes"]["slicing"] / res["max_single_bytes"], 4)
    res["targets"] = {
        "slicing_peak_le_1.05_max_single": res["peak_bytes"]["slicing"] <= 1.05 * res["max_single_bytes"],
        "each_single_le_tflm_arena": all(
            res["single_bytes"][n] <= res["tflm_arena_bytes"][n] for n in res["single_bytes"]
        ),
        "each_single_le_tflm_planned_head": all(
            res["single_bytes"][n] <= res["tflm_head_bytes"][n] for n in res["single_bytes"]
        ),
    }
    res["int8_dir"] = str(int8_dir)
    return res


@click.command("memory")
@click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory with an int8/ subdirectory (ditmos quantize).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(run_dir: str, as_json: bool) -> None:
    """Peak activation memory per planning strategy vs the TFLM arena."""
    int8_dir = Path(run_dir) / "int8"
    if not (int8_dir / "manifest.json").is_file():
        raise DitmosError(f"{int8_dir} has no manifest.json; run `ditmos quantize {run_dir}` first")
    res = measure(int8_dir)
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    click.echo(f"composed DiTMoS inference, activation arena (input window of {res['input_bytes']} B read in place):")
    for strat, v in res["peak_bytes"].items():
        click.echo(f"  {strat:<8} {v:>8} B   (live lower bound {res['live_bytes'][strat]} B)")
    click.echo(f"  slicing / largest single sub-model = {res['slicing_vs_max_single']:.3f}")
    click.echo("sub-model alone     plan B   TFLM arena B   TFLM planned head B")
    click.echo(
        "  (TFLM figures from the 64-bit host interpreter: its total overstates the "
        "32-bit Cortex-M arena;\n   the planned head -- activations only -- is the "
        "same on target, a lower bound of that arena)"
    )
    for n, v in res["single_bytes"].items():
        click.echo(f"  {n:<16} {v:>8} {res['tflm_arena_bytes'][n]:>14} {res['tflm_head_bytes'][n]:>12}")
    for k, ok in res["targets"].items():
        click.echo(
            f"  target {k}: {'met' if ok else 'NOT met'}"
            + (" (against the host-reported total)" if k == "each_single_le_tflm_arena" else "")
        )
