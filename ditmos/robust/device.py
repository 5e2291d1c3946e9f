"""Adversarial windows on the device: the firmware must answer exactly as the
host int8 TFLM reference does for every one of them.

The adversarial windows of every norm (float, normalised units) are clipped
to the range the int8 input represents and quantised exactly as the host
reference quantises them; the devices (boards on ``--port``, or QEMU / host
processes started for ``--emulate``) classify the int8 windows through the
ordinary evaluation harness, which compares class, route and the int8 scores
of each window with the reference.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.robust.attacks import NORMS


def adversarial_workload(run_dir, build_dir, advs: dict[str, np.ndarray], y: np.ndarray, cache_dir: Path):
    """A harness workload whose samples are the adversarial windows of every
    norm (norm-major), with the host reference's answers."""
    from ditmos.harness.workload import load_workload, reference_answers
    from ditmos.quantize.reference import reference_for
    from ditmos.robust.int8 import _input_clip

    base = load_workload(run_dir, build_dir, limit=1)  # checks build <-> model, protocol
    ref = reference_for(Path(run_dir) / "int8")  # DiTMoS or a network (route = the exit taken)
    norms = [n for n in NORMS if n in advs]
    if not norms:
        raise DitmosError("no adversarial windows to send to the device")
    x = np.concatenate([np.clip(advs[n], *_input_clip(ref)) for n in norms])
    x_q = ref.quantize_input(x)
    ans = reference_answers(ref, x_q, base.model_hash, Path(cache_dir) / "reference.npz")
    labels = np.tile(np.asarray(y, np.int64), len(norms))
    return replace(
        base, inputs=x_q, labels=labels, ref_pred=ans.pred, ref_route=ans.route, ref_scores=ans.scores
    ), norms


def device_check(
    run_dir,
    build_dir,
    advs: dict[str, np.ndarray],
    y: np.ndarray,
    out_dir,
    *,
    ports=(),
    emulate: bool = False,
    jobs: int = 1,
    baudrate: int = 115200,
    progress=None,
) -> dict:
    """Classify every norm's adversarial windows on the device(s) and compare
    with the host int8 reference; returns counts and per-norm device accuracy."""
    from ditmos.harness.evaluate import _port_devices, run_evaluation
    from ditmos.harness.fleet import emulated_devices

    if bool(ports) == bool(emulate):
        raise DitmosError("give either --port (one or more) or --emulate with --build")
    out = Path(out_dir)
    if out.exists():  # a previous attack's windows: they are measured again from scratch
        shutil.rmtree(out)
    out.mkdir(parents=True)
    wl, norms = adversarial_workload(run_dir, build_dir, advs, y, out)
    meta = {
        "run_dir": str(run_dir),
        "build_dir": str(build_dir),
        "board": wl.facts.board,
        "emulated": bool(emulate),
        "inputs": "adversarial windows of " + ", ".join(norms),
    }
    if emulate:
        with emulated_devices(Path(build_dir), jobs, out) as devices:
            report = run_evaluation(wl, devices, out, timeout=10.0, meta=meta, progress=progress)
    else:
        devices = _port_devices(list(ports), [], baudrate, Path(build_dir))
        t = max(2.0, 3 * wl.inputs[0].size * 10 / baudrate + 1.0)
        report = run_evaluation(wl, devices, out, timeout=t, meta=meta, progress=progress)
    n = len(y)
    mism = {int(m["index"]) for m in report["mismatch_list"]}
    per_norm = {}
    for j, norm in enumerate(norms):
        idx = range(j * n, (j + 1) * n)
        per_norm[norm] = {
            "reference_accuracy": float(np.mean(wl.ref_pred[j * n : (j + 1) * n] == wl.labels[j * n : (j + 1) * n])),
            "mismatches": sum(1 for i in idx if i in mism),
        }
    return {
        "board": wl.facts.board,
        "emulated": bool(emulate),
        "windows": int(len(wl.inputs)),
        "measured": int(report["samples"]),
        "complete": bool(report["complete"]),
        "mismatches": int(report["mismatches"]),
        "route_mismatches": int(report["route_mismatches"]),
        "score_mismatches": int(report["score_mismatches"]),
        "agree": bool(report["complete"])
        and report["mismatches"] == 0
        and report["route_mismatches"] == 0
        and report["score_mismatches"] == 0,
        "per_norm": per_norm,
        "report": str(out / "report.json"),
    }
