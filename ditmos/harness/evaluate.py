"""On-device evaluation: stream the test split to one or more devices, compare
every answer with the host reference, and write ``EVAL_DIR``.

``EVAL_DIR/samples.jsonl`` gets one line per measured sample as soon as it is
measured (flushed), so an interrupted run leaves a valid partial result and
``resume=True`` measures only what is missing.  ``EVAL_DIR/report.json`` is
written atomically (temporary file + rename) at the end, and also, marked
``"complete": false``, when the run is interrupted or a device fails.
Several devices share one queue of sample indices; their results are merged
into the same files.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ditmos.errors import DitmosError
from ditmos.jsonio import read_json
from ditmos.harness.client import DeviceClient
from ditmos.harness.marks import MarkLog
from ditmos.harness.protocol import CostKind, DeviceStats, HelloInfo, device_model_hash
from ditmos.harness.transport import SerialTransport

SAMPLES_FILE = "samples.jsonl"
REPORT_FILE = "report.json"
SESSION_FILE = "session.json"
STATS_FILE = "stats.jsonl"  # one line per device and session: STATS at its end


@dataclass
class Workload:
    """What to send and what the answers must be (all arrays indexed like the test split)."""

    inputs: np.ndarray            # int8 [N, T, C], quantised exactly as the host reference does
    labels: np.ndarray            # int [N]
    ref_pred: np.ndarray          # int [N] host reference predictions
    ref_route: np.ndarray         # int [N]
    ref_scores: np.ndarray        # int8 [N, num_classes]
    model_hash: str               # full model hash of the int8 manifest
    num_classes: int
    num_classifiers: int
    class_names: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # float / int8 accuracies, memory, layer names ...

    @property
    def device_hash(self) -> str:
        """What a device running this model reports in HELLO_OK."""
        return device_model_hash(self.model_hash)


@dataclass
class DeviceSpec:
    url: str
    baudrate: int = 115200
    marks: str | Path | None = None   # plugin log (cost_kind 1, emulation)
    name: str = ""


class _Results:
    """Thread-safe writer of samples.jsonl plus the in-memory list of records."""

    def __init__(self, path: Path, records: dict[int, dict]) -> None:
        self.path = path
        self.records = records
        self._lock = threading.Lock()
        self._f = open(path, "a", encoding="utf-8")

    def add(self, rec: dict) -> None:
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self._lock:
            if rec["index"] in self.records:  # never twice, whatever happened on the link
                return
            self._f.write(line)
            self._f.flush()
            self.records[rec["index"]] = rec

    def close(self) -> None:
        self._f.close()


def read_samples(path: Path) -> dict[int, dict]:
    """Records already measured; a torn last line (killed mid-write) is cut off the file."""
    records: dict[int, dict] = {}
    if not path.exists():
        return records
    with open(path, "rb") as f:
        data = f.read()
    good_end = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            records.setdefault(int(rec["index"]), rec)
        good_end += len(line)
    if good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------ engine

class _Worker(threading.Thread):
    def __init__(self, spec: DeviceSpec, workload: Workload, todo: "queue.Queue[int]",
                 results: _Results, stop: threading.Event, *, timeout: float, retries: int) -> None:
        super().__init__(daemon=True, name=f"eval-{spec.url}")
        self.spec, self.workload, self.todo, self.results, self.stop = (
            spec, workload, todo, results, stop)
        self.timeout, self.retries = timeout, retries
        self.error: BaseException | None = None
        self.hello: HelloInfo | None = None
        self.first_hello: HelloInfo | None = None
        self.stats: DeviceStats | None = None
        self.client: DeviceClient | None = None
        self.measured = 0

    def _check(self, info: HelloInfo) -> None:
        check_device(info, self.workload, self.spec.url)

    def _on_reboot(self, before: HelloInfo, after: HelloInfo) -> None:
        self._check(after)

    def run(self) -> None:
        transport = SerialTransport(self.spec.url, self.spec.baudrate)
        try:
            transport.open()
            self.client = client = DeviceClient(
                transport, timeout=self.timeout, retries=self.retries, on_reboot=self._on_reboot)
            self.first_hello = self.hello = client.hello()
            self._check(self.hello)
            marks = MarkLog(self.spec.marks) if (
                self.hello.cost_kind == CostKind.INSTRUCTIONS and self.spec.marks) else None
            if self.hello.cost_kind == CostKind.INSTRUCTIONS and marks is None:
                raise DitmosError(
                    f"device on {self.spec.url} counts instructions (emulator) but no plugin log "
                    f"was given to read them from")
            while not self.stop.is_set():
                try:
                    i = self.todo.get_nowait()
                except queue.Empty:
                    break
                try:
                    res = client.infer(self.workload.inputs[i].tobytes())
                except BaseException:
                    self.todo.put(i)  # not measured: leave it for another device or --resume
                    raise
                self.hello = client.info
                layer_cost = list(res.layer_cost)
                if self.hello.cost_kind == CostKind.CYCLES:
                    cost = res.cost
                elif marks is not None:
                    cost, layer_cost = marks.take(self.hello.profiling_layers,
                                                  timeout=max(self.timeout, 2.0))
                else:
                    cost = None
                self.results.add(_record(i, res, cost, layer_cost, self.workload, self.spec,
                                         self.hello))
                self.measured += 1
            self.stats = client.stats()
            self.hello = client.info
        except BaseException as err:  # reported by the main thread
            self.error = err
            self.stop.set()
        finally:
            transport.close()


def _record(i, res, cost, layer_cost, w: Workload, spec: DeviceSpec, info: HelloInfo) -> dict:
    ref_scores = [int(v) for v in w.ref_scores[i]]
    return {
        "index": int(i),
        "label": int(w.labels[i]),
        "predicted": int(res.predicted),
        "route": int(res.route),
        "scores": list(res.scores),
        "reference": int(w.ref_pred[i]),
        "reference_route": int(w.ref_route[i]),
        "match": int(res.predicted) == int(w.ref_pred[i]),
        "scores_match": list(res.scores) == ref_scores,
        "cost": cost,
        "cost_kind": CostKind(info.cost_kind).name.lower(),
        "clock_hz": info.core_clock_hz,
        "layer_cost": layer_cost,
        "device": spec.name or spec.url,
        "boot": info.boot_counter,
    }


def check_device(info: HelloInfo, w: Workload, url: str) -> None:
    if info.model_hash != w.device_hash:
        raise DitmosError(
            f"device on {url} ({info.board_name}) runs model {info.model_hash} but the run's "
            f"int8/manifest.json has {w.device_hash}: rebuild the firmware for this run "
            f"(`ditmos build --run RUN_DIR`) and reflash it (`ditmos flash`) or pass the "
            f"matching --build directory")
    if info.input_size != int(np.prod(w.inputs.shape[1:])):
        raise DitmosError(
            f"device on {url} expects {info.input_t}x{info.input_c} inputs, the run's test "
            f"split has {'x'.join(map(str, w.inputs.shape[1:]))}: rebuild and reflash")
    if info.num_classes != w.num_classes:
        raise DitmosError(
            f"device on {url} reports {info.num_classes} classes, the run has {w.num_classes}")


def run_evaluation(workload: Workload, devices: list[DeviceSpec], out_dir: str | Path, *,
                   resume: bool = False, limit: int | None = None, timeout: float = 3.0,
                   retries: int = 8, meta: dict | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Measure every sample (or the first ``limit``) and return the report (also on disk)."""
    if not devices:
        raise DitmosError("no device to evaluate on: give --port or --emulate")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_total = len(workload.labels) if limit is None else min(int(limit), len(workload.labels))
    samples_path = out / SAMPLES_FILE
    session = {"model_hash": workload.model_hash, "samples_planned": n_total,
               **(meta or {})}
    session_path = out / SESSION_FILE
    if samples_path.exists() and samples_path.stat().st_size > 0:
        if not resume:
            raise DitmosError(
                f"{samples_path} already holds measured samples: pass --resume to continue "
                f"that evaluation, or choose another --out")
        old = json.loads(session_path.read_text()) if session_path.exists() else {}
        if old.get("model_hash") != workload.model_hash:
            raise DitmosError(
                f"{samples_path} was measured for model {old.get('model_hash')}, this "
                f"run's model is {workload.device_hash}: --resume needs the same model; use another --out")
    stats_path = out / STATS_FILE
    if not resume:
        stats_path.unlink(missing_ok=True)
    records = read_samples(samples_path) if resume else {}
    records = {i: r for i, r in records.items() if i < n_total}
    write_json_atomic(session_path, session)

    todo: "queue.Queue[int]" = queue.Queue()
    for i in range(n_total):
        if i not in records:
            todo.put(i)
    results = _Results(samples_path, records)
    stop = threading.Event()
    workers = [_Worker(d, workload, todo, results, stop, timeout=timeout, retries=retries)
               for d in devices]
    interrupted = False
    try:
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            for w in workers:
                w.join(0.2)
            if progress is not None:
                progress(len(results.records), n_total)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        for w in workers:
            w.join(max(timeout * (retries + 2), 5.0))
    finally:
        results.close()
    errors = [w.error for w in workers if w.error is not None]
    with open(stats_path, "a", encoding="utf-8") as f:
        for w in workers:
            if w.stats is not None:
                f.write(json.dumps({"device": w.spec.name or w.spec.url,
                                    "boot": w.hello.boot_counter if w.hello else None,
                                    "measured": w.measured, **vars(w.stats)}) + "\n")
    earlier = []
    for line in stats_path.read_text().splitlines() if stats_path.exists() else []:
        try:
            earlier.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    report = build_report(workload, results.records, workers, n_total, meta or {},
                          session_stats=earlier)
    write_json_atomic(out / REPORT_FILE, report)
    if interrupted:
        raise KeyboardInterrupt
    if errors:
        err = errors[0]
        if isinstance(err, DitmosError):
            raise DitmosError(f"{err} ({len(results.records)} of {n_total} samples measured and "
                              f"kept in {samples_path}; run again with --resume)") from err
        raise err
    return report


# ------------------------------------------------------------------ report

def _dist(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max()), "mean": float(a.mean()), "min": float(a.min())}


def build_report(w: Workload, records: dict[int, dict], workers: list[_Worker], n_total: int,
                 meta: dict, session_stats: list[dict] = ()) -> dict:
    recs = [records[i] for i in sorted(records)]
    n = len(recs)
    hellos = [x.hello for x in workers if x.hello is not None]
    kinds = {h.cost_kind for h in hellos} | {
        CostKind[r["cost_kind"].upper()] for r in recs if r.get("cost_kind")}
    clocks = {h.core_clock_hz for h in hellos} | {r["clock_hz"] for r in recs if r.get("clock_hz")}
    if len(kinds) > 1:
        raise DitmosError(
            "the devices report different cost kinds (cycles and instructions): evaluate "
            "hardware and emulator into separate --out directories, latencies are never mixed")
    kind = next(iter(kinds)) if kinds else CostKind.NONE
    labels = np.array([r["label"] for r in recs], dtype=np.int64)
    pred = np.array([r["predicted"] for r in recs], dtype=np.int64)
    ref = np.array([r["reference"] for r in recs], dtype=np.int64)
    mism = [{"index": r["index"], "label": r["label"], "device": r["predicted"],
             "reference": r["reference"], "device_route": r["route"],
             "reference_route": r["reference_route"]} for r in recs if not r["match"]]
    report: dict = {
        "format": "ditmos-eval/1",
        "complete": n == n_total,
        "samples": n,
        "samples_planned": n_total,
        "model_hash": w.model_hash,
        "accuracy": float((pred == labels).mean()) if n else None,
        "accuracy_int8_reference": float((ref == labels).mean()) if n else None,
        "accuracy_float": w.extra.get("accuracy_float"),
        "accuracy_int8_reference_full_split": w.extra.get("accuracy_int8"),
        "mismatches": len(mism),
        "mismatch_list": mism,
        "route_mismatches": sum(1 for r in recs if r["route"] != r["reference_route"]),
        "score_mismatches": sum(1 for r in recs if not r.get("scores_match", True)),
        "class_names": list(w.class_names),
    }
    # latency: one unit only
    costs = [r["cost"] for r in recs if r.get("cost") is not None]
    lat: dict = {"kind": CostKind(kind).name.lower()}
    if kind == CostKind.CYCLES and costs:
        if len(clocks) > 1:
            raise DitmosError(f"devices run at different clocks {sorted(clocks)}: evaluate them "
                              f"separately")
        clock = next(iter(clocks)) if clocks else meta.get("core_clock_hz")
        if not clock:
            raise DitmosError("the device reports cycle counts but a core clock of 0 Hz")
        lat.update({"unit": "ms", "clock_hz": clock,
                    **_dist([c * 1000.0 / clock for c in costs]),
                    "cycles": _dist(costs)})
    elif kind == CostKind.INSTRUCTIONS and costs:
        lat.update({"unit": "instructions", **_dist(costs)})
    else:
        lat.update({"unit": None, "note": "the firmware measures no cost on this target"})
    report["latency"] = lat
    # per-layer latency (profiling builds): by (program, layer index); a classifier
    # layer is attributed to the classifier the sample was routed to
    lmap = {int(j): v for j, v in (w.extra.get("layer_map") or {}).items()}
    per_key: dict[tuple, list[float]] = {}
    for r in recs:
        for j, v in enumerate(r.get("layer_cost") or []):
            if v <= 0:  # this layer index did not run for this sample
                continue
            progs = lmap.get(j, {})
            prog = f"classifier_{r['route']}" if f"classifier_{r['route']}" in progs else (
                next(iter(progs)) if len(progs) == 1 else None)
            if kind == CostKind.CYCLES and lat.get("clock_hz"):
                v = v * 1000.0 / lat["clock_hz"]
            per_key.setdefault((prog, j), []).append(v)
    if per_key:
        def order(key):
            prog, j = key
            return (0 if prog == "selector" else 1, prog or "", j)

        report["per_layer_latency"] = {"unit": lat.get("unit"), "layers": [
            {"program": prog, "layer": j,
             "name": f"{prog}/{lmap[j][prog]}" if prog in lmap.get(j, {}) else f"layer {j}",
             "count": len(vals), **_dist(vals)}
            for (prog, j), vals in sorted(per_key.items(), key=lambda kv: order(kv[0]))]}
    else:
        report["per_layer_latency"] = None
    # memory
    mem: dict = {}
    if hellos:
        h = hellos[0]
        mem.update({"flash": h.flash_used, "ram": h.ram_used, "arena": h.arena_size})
    # stack high-water over every device and session (a resumed run may talk to a
    # freshly booted device whose painting saw only part of the samples)
    stats = [vars(x.stats) for x in workers if x.stats is not None] + list(session_stats)
    if stats:
        mem["stack_size"] = max(s["stack_size"] for s in stats)
        mem["stack_high_water"] = max(s["stack_high_water"] for s in stats)
    if w.extra.get("build_memory") is not None:
        mem["build"] = w.extra["build_memory"]
    report["memory"] = mem
    # routing and confusion
    k = w.num_classifiers
    report["routing"] = {
        "device": np.bincount([r["route"] for r in recs], minlength=k).tolist() if n else [0] * k,
        "reference": np.bincount([r["reference_route"] for r in recs], minlength=k).tolist()
        if n else [0] * k,
    }
    c = w.num_classes
    conf = np.zeros((c, c), dtype=np.int64)
    for t, p in zip(labels, pred):
        if 0 <= p < c:
            conf[t, p] += 1
    report["confusion"] = conf.tolist()
    report["devices"] = [{
        "url": x.spec.name or x.spec.url,
        "board": x.hello.board_name if x.hello else None,
        "protocol_version": x.hello.protocol_version if x.hello else None,
        "core_clock_hz": x.hello.core_clock_hz if x.hello else None,
        "clock_status": x.hello.clock_status if x.hello else None,
        "boot_counter": x.hello.boot_counter if x.hello else None,
        "reboots": [{"from": r.before, "to": r.after} for r in (x.client.reboots if x.client else [])],
        "measured": x.measured,
        "link": x.client.counters.as_dict(x.client.decoder) if x.client else None,
        "stats": vars(x.stats) if x.stats else None,
        "error": str(x.error) if x.error else None,
    } for x in workers]
    report["meta"] = meta
    report["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return report


# ------------------------------------------------------- artefacts -> workload

def _short_layer(name: str) -> str:
    parts = str(name).split(";")[0].split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_map(codegen: dict) -> dict[int, dict[str, str]]:
    """``{layer_index: {program: "short name (kernel)"}}`` from a codegen manifest's
    ``layers``.  Each classifier program numbers its own layers after the
    selector's, so one index can name different layers in different classifiers."""
    out: dict[int, dict[str, str]] = {}
    for row in codegen.get("layers") or []:
        j = row.get("layer_index")
        if isinstance(j, int) and j >= 0:
            out.setdefault(j, {})[str(row.get("program", "?"))] = (
                f"{_short_layer(row.get('layer', '?'))} ({row.get('kernel', '?')})")
    return out


def load_workload(run_dir: str | Path, build_dir: str | Path | None, *,
                  limit: int | None = None, cache_dir: str | Path | None = None) -> Workload:
    """The test split quantised with the int8 manifest's parameters, plus the host
    TFLM reference answers and the figures the report quotes (float / int8
    accuracy from metrics.json, the build's memory table, layer names)."""
    from ditmos.quantize.reference import ComposedReference
    from ditmos.training.rundir import load_run_data

    run_dir = Path(run_dir)
    int8_dir = run_dir / "int8"
    manifest = read_json(int8_dir / "manifest.json", "run `ditmos quantize RUN_DIR` first")
    extra: dict = {}
    if build_dir is not None:
        build = read_json(Path(build_dir) / "manifest.json", "run `ditmos build` first")
        if build.get("model_hash") and build["model_hash"] != manifest["model_hash"]:
            raise DitmosError(
                f"{Path(build_dir) / 'manifest.json'} was built for model "
                f"{build['model_hash']}, the run's int8/manifest.json has "
                f"{manifest['model_hash']}: rebuild with `ditmos build --run {run_dir}`")
        if build.get("protocol_version", 1) != 1:
            raise DitmosError(
                f"{Path(build_dir) / 'manifest.json'} speaks protocol version "
                f"{build.get('protocol_version')}, this harness knows version 1: upgrade ditmos "
                f"or rebuild the firmware with this version")
        extra["build_memory"] = build.get("memory")
        extra["board"] = build.get("board")
        from ditmos.codegen import find_codegen_manifest

        found = find_codegen_manifest(Path(build_dir))
        if found is not None:
            layers = layer_map(found[1])
            if layers:
                extra["layer_map"] = layers
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        m = json.loads(metrics_path.read_text())
        test = m.get("test", {})
        extra["accuracy_float"] = (test.get("float") or {}).get("ditmos")
        extra["accuracy_int8"] = (test.get("int8") or {}).get("ditmos")
    data = load_run_data(run_dir)
    x, y = np.asarray(data.x_test), np.asarray(data.y_test)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    ref = ComposedReference(int8_dir)
    x_q = ref.quantize_input(x)
    cache = Path(cache_dir) / "reference.npz" if cache_dir is not None else None
    pred = route = scores = None
    if cache is not None and cache.is_file():
        z = np.load(cache)
        if str(z["model_hash"]) == manifest["model_hash"] and len(z["pred"]) >= len(y) and \
                np.array_equal(z["inputs"][:len(y)], x_q):
            pred, route, scores = z["pred"][:len(y)], z["route"][:len(y)], z["scores"][:len(y)]
    if pred is None:
        pred, route, scores = ref.predict(x_q)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name("reference.tmp.npz")
            np.savez(tmp, model_hash=np.array(manifest["model_hash"]), pred=pred, route=route,
                     scores=scores, inputs=x_q)
            os.replace(tmp, cache)
    return Workload(inputs=x_q, labels=y, ref_pred=pred, ref_route=route, ref_scores=scores,
                    model_hash=manifest["model_hash"], num_classes=int(manifest["num_classes"]),
                    num_classifiers=int(manifest["K"]),
                    class_names=list(manifest.get("class_names", [])), extra=extra)


def evaluate(run_dir, build_dir, out_dir, *, ports: list[str] = (), baudrate: int = 115200,
             emulate: bool = False, jobs: int = 1, resume: bool = False,
             limit: int | None = None, timeout: float | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """``ditmos evaluate``: the whole test split (or ``limit`` samples) on real
    boards (``ports``) or on ``jobs`` QEMU instances (``emulate``)."""
    if bool(ports) == bool(emulate):
        raise DitmosError("give either --port (one or more) or --emulate")
    if jobs < 1:
        raise DitmosError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out_dir)
    workload = load_workload(run_dir, build_dir, limit=limit, cache_dir=out)
    meta = {"run_dir": str(run_dir), "build_dir": str(build_dir),
            "board": workload.extra.get("board"), "emulated": bool(emulate)}
    if not emulate:
        devices = [DeviceSpec(url=p, baudrate=baudrate) for p in ports]
        # a request of T*C bytes at 10 bits per byte, plus the inference itself
        t = timeout or max(2.0, 3 * workload.inputs[0].size * 10 / baudrate + 1.0)
        return run_evaluation(workload, devices, out, resume=resume, limit=None, timeout=t,
                              meta=meta, progress=progress)
    with qemu_devices(Path(build_dir), jobs, out) as devices:
        return run_evaluation(workload, devices, out, resume=resume, limit=None,
                              timeout=timeout or 10.0, meta=meta, progress=progress)


@contextlib.contextmanager
def qemu_devices(build_dir: Path, jobs: int, workdir: Path):
    """``jobs`` QEMU instances of an mps2_an500 build as devices (UART on a loopback
    socket, instruction counts from the plugin log in ``workdir/qemu<j>/``)."""
    from ditmos.boards.qemu import QemuTarget

    targets = []
    try:
        for j in range(jobs):
            tgt = QemuTarget(build_dir, workdir=Path(workdir) / f"qemu{j}")
            targets.append(tgt)
            tgt.start()
        yield [DeviceSpec(url=t.url, marks=t.plugin_log, name=f"qemu{j}")
               for j, t in enumerate(targets)]
    finally:
        for tgt in targets:
            tgt.stop()
