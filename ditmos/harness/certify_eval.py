"""``ditmos evaluate --certify``: integer randomized smoothing on the device.

For every test window the device gets two CERTIFY requests (docs/protocol.md):
the ``n0`` selection inferences (counters from 0) and the ``n`` estimation
inferences (counters from ``n0``), with the per-window seed of
``ditmos certify --int8``.  The host computes the same counts with the
device's generator and the int8 model (:class:`ditmos.smoothing.smoothers.IntSmoother`);
a difference is a mismatch, reported like a prediction mismatch.  The
certificate is computed from the device's counts (docs/smoothing.md).

``EVAL_DIR/certify.jsonl`` gets one record per window as soon as it is
measured (flushed; ``--resume`` keeps them), ``EVAL_DIR/certify_report.json``
is written atomically at the end and, marked ``"complete": false``, on Ctrl-C
or a device failure.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from ditmos.errors import DitmosError
from ditmos.harness.protocol import CostKind
from ditmos.harness.records import read_samples, write_json_atomic
from ditmos.smoothing import certify as CT

CERT_SAMPLES_FILE = "certify.jsonl"
CERT_REPORT_FILE = "certify_report.json"
CERT_SESSION_FILE = "certify_session.json"


def _params(sigma, n0, n, alpha, seed, model_hash) -> dict:
    return {
        "sigma": float(sigma),
        "n0": int(n0),
        "n": int(n),
        "alpha": float(alpha),
        "seed": int(seed),
        "model_hash": model_hash,
    }


def _open(out: Path, params: dict, resume: bool) -> dict[int, dict]:
    out.mkdir(parents=True, exist_ok=True)
    path, session = out / CERT_SAMPLES_FILE, out / CERT_SESSION_FILE
    if path.exists() and path.stat().st_size > 0:
        if not resume:
            raise DitmosError(
                f"{path} already holds certified windows: pass --resume to "
                f"continue that evaluation, or choose another --out"
            )
        old = json.loads(session.read_text()) if session.exists() else {}
        diff = [k for k in params if old.get(k) != params[k]]
        if diff:
            raise DitmosError(
                f"{path} was measured with other "
                + ", ".join(f"{k} ({old.get(k)} there, {params[k]} now)" for k in diff)
                + ": --resume needs the same settings; use another --out"
            )
    write_json_atomic(session, params)
    return read_samples(path) if resume else {}


def _report(records: dict[int, dict], n_total: int, params: dict, meta: dict, complete: bool, device: dict) -> dict:
    recs = [records[i] for i in sorted(records)]
    radii = CT.default_radii(params["sigma"])
    if recs:
        summary = CT.summarize(
            np.array([r["prediction"] for r in recs]),
            np.array([r["radius"] for r in recs], np.float64),
            np.array([r["label"] for r in recs]),
            radii,
        )
    else:
        summary = None
    costs = [r["cost"] for r in recs if r["cost"] is not None]
    kind = recs[0]["cost_kind"] if recs else "none"
    latency = None
    if costs:
        mean = float(np.mean(costs))
        latency = {
            "unit": kind,
            "mean_per_certified_prediction": mean,
            "inferences_per_prediction": params["n0"] + params["n"],
        }
        clock = recs[0]["clock_hz"]
        if kind == "cycles" and clock:
            latency["ms_per_certified_prediction"] = 1e3 * mean / clock
    return {
        "format": "ditmos-certify-eval/1",
        **meta,
        **params,
        "radii": radii,
        "complete": complete and len(recs) == n_total,
        "samples_planned": n_total,
        "samples_measured": len(recs),
        "mismatches": sum(1 for r in recs if not r["match"]),
        "mismatched_samples": [r["index"] for r in recs if not r["match"]],
        "summary": summary,
        "latency": latency,
        "device": device,
    }


def _measure(client, workload, ism, todo, records, f, params, marks, label, progress, n_total):
    from ditmos.smoothing.run import window_seed

    info = client.info
    thr, off = ism.table.thresholds, ism.table.offset
    n0, n = params["n0"], params["n"]
    # one request holds n inferences: allow for slow boards and emulators
    t = max(client.timeout, 0.05 * (n0 + n) + 5.0)
    for i in todo:
        xq = workload.inputs[i].reshape(-1)
        s = window_seed(params["seed"], i)
        r0 = client.certify(xq.tobytes(), thr, off, s, 0, n0, timeout=t)
        c0 = 0 if marks is None else marks.take(0, timeout=t)[0]
        r1 = client.certify(xq.tobytes(), thr, off, s, n0, n, timeout=t)
        c1 = 0 if marks is None else marks.take(0, timeout=t)[0]
        ref0, ref1 = ism.counts(xq, n0, s, 0), ism.counts(xq, n, s, n0)
        dev0, dev1 = np.array(r0.counts, np.int64), np.array(r1.counts, np.int64)
        cert = CT.certify_counts(dev0, dev1, params["sigma"], params["alpha"], ism.slack)
        if info.cost_kind == CostKind.CYCLES:
            cost = r0.cost + r1.cost
        elif marks is not None:
            cost = c0 + c1
        else:
            cost = None
        rec = {
            "index": int(i),
            "label": int(workload.labels[i]),
            "seed": int(s),
            "prediction": cert.prediction,
            "radius": cert.radius,
            "p_lower": cert.p_lower,
            "top_count": cert.top_count,
            "counts0": dev0.tolist(),
            "counts": dev1.tolist(),
            "reference_counts0": ref0.tolist(),
            "reference_counts": ref1.tolist(),
            "match": bool(np.array_equal(dev0, ref0) and np.array_equal(dev1, ref1)),
            "cost": cost,
            "cost_kind": CostKind(info.cost_kind).name.lower(),
            "clock_hz": info.core_clock_hz,
            "device": label,
        }
        f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        f.flush()
        records[int(i)] = rec
        if progress is not None:
            progress(len(records), n_total)


def _run_device(spec, workload, ism, out, records, params, meta, n_total, timeout, progress):
    from ditmos.harness.client import DeviceClient
    from ditmos.harness.marks import MarkLog
    from ditmos.harness.transport import SerialTransport
    from ditmos.harness.worker import check_device

    todo = [i for i in range(n_total) if i not in records]
    transport = SerialTransport(spec.url, spec.baudrate)
    device = {"url": spec.label}
    complete = False
    try:
        with open(out / CERT_SAMPLES_FILE, "a", encoding="utf-8") as f:
            transport.open()
            client = DeviceClient(transport, timeout=timeout)
            info = client.hello()
            check_device(info, workload, spec.url)
            device.update(board=info.board_name, core_clock_hz=info.core_clock_hz)
            marks = MarkLog(spec.marks) if info.cost_kind == CostKind.INSTRUCTIONS and spec.marks else None
            _measure(client, workload, ism, todo, records, f, params, marks, spec.label, progress, n_total)
            complete = True
    finally:
        transport.close()
        report = _report(records, n_total, params, meta, complete, device)
        write_json_atomic(out / CERT_REPORT_FILE, report)
    return report


def evaluate_certify(
    run_dir,
    build_dir,
    out_dir,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 1000,
    alpha: float = 0.001,
    seed: int = 0,
    ports=(),
    baudrate: int = 115200,
    emulate: bool = False,
    resume: bool = False,
    limit: int | None = None,
    timeout: float | None = None,
    marks=(),
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Certify the first ``limit`` test windows (all by default) on one device."""
    from ditmos.harness.evaluate import _port_devices
    from ditmos.harness.fleet import emulated_devices
    from ditmos.harness.workload import load_workload
    from ditmos.smoothing.smoothers import IntSmoother

    sigma = CT.check_sigma(sigma)
    if n0 < 1 or n < 1:
        raise DitmosError(f"--n0 and --n must be >= 1, got {n0} and {n}")
    if not 0 < alpha < 0.5:
        raise DitmosError(f"--alpha must lie in (0, 0.5), got {alpha}")
    if bool(ports) == bool(emulate):
        raise DitmosError("give either --port or --emulate")
    if len(ports) > 1:
        raise DitmosError("--certify runs on one device: give one --port")
    out = Path(out_dir)
    workload = load_workload(run_dir, build_dir, limit=limit, cache_dir=out)
    n_total = len(workload.labels) if limit is None else min(int(limit), len(workload.labels))
    params = _params(sigma, n0, n, alpha, seed, workload.model_hash)
    records = _open(out, params, resume)
    records = {i: r for i, r in records.items() if i < n_total}
    meta = {
        "run_dir": str(run_dir),
        "build_dir": str(build_dir),
        "board": workload.facts.board,
        "emulated": bool(emulate),
    }
    ism = IntSmoother(Path(run_dir) / "int8", sigma, work_dir=None)
    meta.update(slack=ism.slack, sigma_steps=ism.table.sigma_q, table_size=ism.table.size)
    try:
        if emulate:
            with emulated_devices(Path(build_dir), 1, out) as devices:
                return _run_device(
                    devices[0], workload, ism, out, records, params, meta, n_total, timeout or 10.0, progress
                )
        spec = _port_devices(list(ports), list(marks), baudrate, Path(build_dir))[0]
        return _run_device(spec, workload, ism, out, records, params, meta, n_total, timeout or 10.0, progress)
    finally:
        ism.close()


def certify_summary_lines(report: dict) -> list[str]:
    """The report in a few lines for the terminal."""
    s = report["summary"]
    lines = [
        f"certified on the device: {report['samples_measured']} of "
        f"{report['samples_planned']} test windows, sigma {report['sigma']:g}, "
        f"n0 {report['n0']}, n {report['n']}, alpha {report['alpha']:g}"
    ]
    if s:
        lines.append(
            "certified accuracy: " + ", ".join(f"r={r} {100 * v:.1f}%" for r, v in s["certified_accuracy"].items())
        )
        lines.append(
            f"ACR {s['acr']:.3f}, smoothed accuracy "
            f"{100 * s['smoothed_accuracy']:.1f}%, abstain "
            f"{100 * s['abstain_rate']:.1f}%"
        )
    lat = report.get("latency")
    if lat:
        ms = lat.get("ms_per_certified_prediction")
        lines.append(
            f"latency per certified prediction ({lat['inferences_per_prediction']} "
            f"inferences): {lat['mean_per_certified_prediction']:.0f} {lat['unit']}"
            + (f" = {ms:.1f} ms" if ms is not None and math.isfinite(ms) else "")
        )
    else:
        lines.append("latency per certified prediction: not measured on this device")
    m = report["mismatches"]
    lines.append(
        f"vote counts equal to the host integer reference: "
        f"{report['samples_measured'] - m} of {report['samples_measured']}"
        + (f"; MISMATCH on windows {report['mismatched_samples'][:10]}" if m else "")
    )
    return lines
