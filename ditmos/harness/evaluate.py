"""On-device evaluation: stream the test split to one or more devices, compare
every answer with the host reference, and write ``EVAL_DIR``.

``EVAL_DIR/samples.jsonl`` gets one line per measured sample as soon as it is
measured (flushed), so an interrupted run leaves a valid partial result and
``resume=True`` measures only what is missing.  ``EVAL_DIR/report.json`` is
written atomically (temporary file + rename) at the end, and also, marked
``"complete": false``, when the run is interrupted or a device fails.
Several devices share one queue of sample indices; their results are merged
into the same files.

The parts: ``workload`` (run + build -> inputs and reference answers),
``worker`` (one thread per device), ``records`` (the files), ``eval_report``
(report.json), ``fleet`` (QEMU instances and host processes for --emulate).
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ditmos.errors import DitmosError
from ditmos.harness.eval_report import build_report
from ditmos.harness.protocol import MAX_PAYLOAD
from ditmos.harness.fleet import emulated_devices, marks_for_port, qemu_devices
from ditmos.harness.records import (
    REPORT_FILE,
    SAMPLES_FILE,
    SESSION_FILE,
    STATS_FILE,
    SampleLog,
    SampleRecord,
    read_jsonl,
    read_samples,
    write_json_atomic,
)
from ditmos.harness.worker import DeviceSpec, DeviceWorker, check_device
from ditmos.harness.workload import RunFacts, Workload, layer_map, load_workload

__all__ = [
    "DeviceSpec",
    "RunFacts",
    "Workload",
    "check_device",
    "evaluate",
    "layer_map",
    "load_workload",
    "qemu_devices",
    "read_samples",
    "run_evaluation",
    "REPORT_FILE",
    "SAMPLES_FILE",
    "SESSION_FILE",
    "STATS_FILE",
]


@dataclass(frozen=True)
class _Session:
    out: Path
    n_total: int
    records: dict[int, SampleRecord]  # already measured (resume)

    @property
    def samples_path(self) -> Path:
        return self.out / SAMPLES_FILE


def _open_session(workload: Workload, out: Path, *, resume: bool, limit: int | None, meta: dict) -> _Session:
    """Check OUT against --resume, keep what was measured, write session.json."""
    out.mkdir(parents=True, exist_ok=True)
    n_total = len(workload.labels) if limit is None else min(int(limit), len(workload.labels))
    samples_path, session_path = out / SAMPLES_FILE, out / SESSION_FILE
    if samples_path.exists() and samples_path.stat().st_size > 0:
        if not resume:
            raise DitmosError(
                f"{samples_path} already holds measured samples: pass --resume to continue "
                f"that evaluation, or choose another --out"
            )
        old = json.loads(session_path.read_text()) if session_path.exists() else {}
        if old.get("raw") != meta.get("raw"):
            raise DitmosError(
                f"{samples_path} was measured with raw input {old.get('raw') or 'off'}, this "
                f"evaluation uses {meta.get('raw') or 'off'}: --resume needs the same --raw; "
                f"use another --out"
            )
        if old.get("model_hash") != workload.model_hash:
            raise DitmosError(
                f"{samples_path} was measured for model {str(old.get('model_hash'))[:16]}, this "
                f"run's model is {workload.hash16}: --resume needs the same model; use another --out"
            )
    if not resume:
        (out / STATS_FILE).unlink(missing_ok=True)
    kept = read_samples(samples_path) if resume else {}
    records = {i: SampleRecord.from_json(r) for i, r in kept.items() if i < n_total}
    write_json_atomic(session_path, {"model_hash": workload.model_hash, "samples_planned": n_total, **meta})
    return _Session(out, n_total, records)


def _run_workers(
    workers: list[DeviceWorker],
    stop: threading.Event,
    results: SampleLog,
    n_total: int,
    *,
    join_timeout: float,
    progress: Callable[[int, int], None] | None,
) -> bool:
    """Run every worker to the end; True when interrupted by Ctrl-C."""
    try:
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            for w in workers:
                w.join(0.2)
            if progress is not None:
                progress(len(results.records), n_total)
    except KeyboardInterrupt:
        stop.set()
        for w in workers:
            w.join(join_timeout)
        return True
    finally:
        results.close()
    return False


def _append_stats(path: Path, workers: list[DeviceWorker]) -> list[dict]:
    """Add this session's STATS to stats.jsonl; return every session's."""
    with open(path, "a", encoding="utf-8") as f:
        for w in workers:
            if w.stats is not None:
                f.write(
                    json.dumps(
                        {
                            "device": w.spec.label,
                            "boot": w.hello.boot_counter if w.hello else None,
                            "measured": w.measured,
                            **vars(w.stats),
                        }
                    )
                    + "\n"
                )
    return read_jsonl(path)


def run_evaluation(
    workload: Workload,
    devices: list[DeviceSpec],
    out_dir: str | Path,
    *,
    resume: bool = False,
    limit: int | None = None,
    timeout: float = 3.0,
    retries: int = 8,
    meta: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Measure every sample (or the first ``limit``) and return the report (also on disk)."""
    if not devices:
        raise DitmosError("no device to evaluate on: give --port or --emulate")
    meta = meta or {}
    session = _open_session(workload, Path(out_dir), resume=resume, limit=limit, meta=meta)
    todo: "queue.Queue[int]" = queue.Queue()
    for i in range(session.n_total):
        if i not in session.records:
            todo.put(i)
    results = SampleLog(session.samples_path, session.records)
    stop = threading.Event()
    workers = [DeviceWorker(d, workload, todo, results, stop, timeout=timeout, retries=retries) for d in devices]
    interrupted = _run_workers(
        workers, stop, results, session.n_total, join_timeout=max(timeout * (retries + 2), 5.0), progress=progress
    )
    all_stats = _append_stats(session.out / STATS_FILE, workers)
    report = build_report(
        workload, results.records, [w.outcome() for w in workers], session.n_total, meta, session_stats=all_stats
    )
    write_json_atomic(session.out / REPORT_FILE, report)
    if interrupted:
        raise KeyboardInterrupt
    errors = [w.error for w in workers if w.error is not None]
    if errors:
        err = errors[0]
        if isinstance(err, DitmosError):
            raise DitmosError(
                f"{err} ({len(results.records)} of {session.n_total} samples "
                f"measured and kept in {session.samples_path}; run again with "
                f"--resume)"
            ) from err
        raise err
    return report


def _port_devices(ports: list[str], marks: list[str], baudrate: int, build_dir: Path | None) -> list[DeviceSpec]:
    """--port devices with their instruction-count logs: given with --marks
    (in the order of --port), or announced by `ditmos emulate` for the build."""
    if marks and len(marks) != len(ports):
        raise DitmosError(
            f"--marks was given {len(marks)} time(s) for {len(ports)} --port(s): "
            f"give one marks log per port, in the same order"
        )
    devices = []
    for j, url in enumerate(ports):
        log = Path(marks[j]) if marks else marks_for_port(build_dir, url)
        if marks and not log.is_file():
            raise DitmosError(
                f"--marks {log}: no such file (the QEMU plugin writes it when "
                f"the emulator starts; `ditmos emulate` prints its path)"
            )
        devices.append(DeviceSpec(url=url, baudrate=baudrate, marks=log))
    return devices


def model_facts(run_dir: Path) -> dict:
    """The method and model kind of a run's int8 directory (for report.json's meta)."""
    import json

    try:
        m = json.loads((run_dir / "int8" / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    kind = m.get("kind", "ditmos")
    return {
        "model_kind": kind,
        "method": m.get("method") or "ditmos",
        "exit_macs": [e.get("macs") for e in m.get("exits") or []] + [m.get("final_macs")]
        if kind == "network"
        else None,
    }


def evaluate(
    run_dir,
    build_dir,
    out_dir,
    *,
    ports: list[str] = (),
    baudrate: int = 115200,
    emulate: bool = False,
    jobs: int = 1,
    resume: bool = False,
    limit: int | None = None,
    timeout: float | None = None,
    marks: list[str] = (),
    method: str | None = None,
    raw: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """``ditmos evaluate``: the whole test split (or ``limit`` samples) on real
    boards or emulators already running (``ports``), or on ``jobs`` QEMU
    instances or host processes started here (``emulate``).  With ``raw`` (a kind of
    :func:`ditmos.harness.workload.raw_test_inputs`) the devices get the raw test
    inputs and run the input pipeline themselves (RAW requests)."""
    if bool(ports) == bool(emulate):
        raise DitmosError("give either --port (one or more) or --emulate")
    if jobs < 1:
        raise DitmosError(f"--jobs must be at least 1, got {jobs}")
    if marks and emulate:
        raise DitmosError(
            "--marks goes with --port (an emulator started elsewhere); --emulate finds its own instruction counts"
        )
    out = Path(out_dir)
    workload = load_workload(run_dir, build_dir, limit=limit, cache_dir=out, raw=raw)
    meta = {
        "run_dir": str(run_dir),
        "build_dir": str(build_dir),
        "board": workload.facts.board,
        "emulated": bool(emulate),
        **model_facts(Path(run_dir)),
    }
    if method:
        meta["method"] = method
    if workload.raw_kind is not None:
        meta["raw"] = workload.raw_kind
    if not emulate:
        devices = _port_devices(list(ports), list(marks), baudrate, Path(build_dir) if build_dir is not None else None)
        # a request of T*C bytes at 10 bits per byte, plus the inference itself
        size = workload.inputs[0].size if workload.raw is None else min(workload.raw[0].nbytes + 13, MAX_PAYLOAD + 10)
        t = timeout or max(2.0, 3 * size * 10 / baudrate + 1.0)
        return run_evaluation(
            workload, devices, out, resume=resume, limit=None, timeout=t, meta=meta, progress=progress
        )
    with emulated_devices(Path(build_dir), jobs, out) as devices:
        # a raw audio clip runs millions of front-end instructions per answer in QEMU
        return run_evaluation(
            workload,
            devices,
            out,
            resume=resume,
            limit=None,
            timeout=timeout or (30.0 if workload.raw is not None else 10.0),
            meta=meta,
            progress=progress,
        )
