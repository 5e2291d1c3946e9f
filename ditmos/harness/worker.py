"""One thread per device: take sample indices from a shared queue, send them,
check and record every answer with its cost.

Where the cost of an inference comes from depends on the device's HELLO
(docs/protocol.md, cost_kind): CPU cycles and host wall-clock nanoseconds arrive in
INFER_OK; an emulator's retired instructions are read from the QEMU plugin's
marks log when the evaluation knows where it is (``DeviceSpec.marks``), and
are otherwise recorded as not measured: the samples are still checked.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError
from ditmos.harness.client import DeviceClient
from ditmos.harness.marks import MarkLog
from ditmos.harness.protocol import CostKind, DeviceStats, HelloInfo, InferResult, RawKind
from ditmos.harness.records import SampleLog, SampleRecord
from ditmos.harness.transport import SerialTransport
from ditmos.harness.workload import Workload

# cost kinds whose figures the device itself puts into INFER_OK
_COST_IN_ANSWER = (CostKind.CYCLES, CostKind.NANOSECONDS)


@dataclass
class DeviceSpec:
    url: str
    baudrate: int = 115200
    marks: str | Path | None = None  # QEMU plugin log (cost_kind 1, emulation)
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.url


@dataclass(frozen=True)
class DeviceOutcome:
    """What one device did in one session (a ``devices`` entry of report.json)."""

    label: str
    hello: HelloInfo | None  # the latest HELLO answer
    stats: DeviceStats | None  # STATS at the end of the session
    measured: int
    reboots: list[dict]  # {"from": boot counter, "to": boot counter}
    link: dict | None  # link counters of the client
    error: BaseException | None
    cost_source: str  # device (INFER_OK), marks (QEMU log), unavailable, none

    def as_json(self) -> dict:
        h = self.hello
        return {
            "url": self.label,
            "board": h.board_name if h else None,
            "protocol_version": h.protocol_version if h else None,
            "core_clock_hz": h.core_clock_hz if h else None,
            "clock_status": h.clock_status if h else None,
            "boot_counter": h.boot_counter if h else None,
            "reboots": list(self.reboots),
            "measured": self.measured,
            "link": self.link,
            "stats": vars(self.stats) if self.stats else None,
            "error": str(self.error) if self.error else None,
            "cost_source": self.cost_source,
        }


def check_device(info: HelloInfo, w: Workload, url: str) -> None:
    if info.model_hash != w.hash16:
        raise DitmosError(
            f"device on {url} ({info.board_name}) runs model {info.model_hash} but the run's "
            f"int8/manifest.json has {w.hash16}: rebuild the firmware for this run "
            f"(`ditmos build --run RUN_DIR`) and reflash it (`ditmos flash`) or pass the "
            f"matching --build directory"
        )
    if info.input_size != int(np.prod(w.inputs.shape[1:])):
        raise DitmosError(
            f"device on {url} expects {info.input_t}x{info.input_c} inputs, the run's test "
            f"split has {'x'.join(map(str, w.inputs.shape[1:]))}: rebuild and reflash"
        )
    if info.num_classes != w.num_classes:
        raise DitmosError(f"device on {url} reports {info.num_classes} classes, the run has {w.num_classes}")


def make_record(
    i: int, res: InferResult, cost, layer_cost: list, w: Workload, label: str, info: HelloInfo, prepare_cost=None
) -> SampleRecord:
    scores = list(res.scores)
    return SampleRecord(
        index=int(i),
        label=int(w.labels[i]),
        predicted=int(res.predicted),
        route=int(res.route),
        scores=scores,
        reference=int(w.ref_pred[i]),
        reference_route=int(w.ref_route[i]),
        match=int(res.predicted) == int(w.ref_pred[i]),
        scores_match=scores == [int(v) for v in w.ref_scores[i]],
        cost=cost,
        cost_kind=CostKind(info.cost_kind).name.lower(),
        clock_hz=info.core_clock_hz,
        layer_cost=layer_cost,
        device=label,
        boot=info.boot_counter,
        prepare_cost=prepare_cost,
    )


class DeviceWorker(threading.Thread):
    def __init__(
        self,
        spec: DeviceSpec,
        workload: Workload,
        todo: "queue.Queue[int]",
        results: SampleLog,
        stop: threading.Event,
        *,
        timeout: float,
        retries: int,
    ) -> None:
        super().__init__(daemon=True, name=f"eval-{spec.url}")
        self.spec, self.workload, self.todo, self.results, self.stop = (spec, workload, todo, results, stop)
        self.timeout, self.retries = timeout, retries
        self.error: BaseException | None = None
        self.hello: HelloInfo | None = None
        self.stats: DeviceStats | None = None
        self.client: DeviceClient | None = None
        self.marks: MarkLog | None = None
        self.measured = 0

    def _on_reboot(self, before: HelloInfo, after: HelloInfo) -> None:
        check_device(after, self.workload, self.spec.url)

    def _cost_source(self) -> str:
        kind = self.hello.cost_kind if self.hello else CostKind.NONE
        if kind in _COST_IN_ANSWER:
            return "device"
        if kind == CostKind.INSTRUCTIONS:
            return "marks" if self.spec.marks else "unavailable"
        return "none"

    def _cost(self, res: InferResult) -> tuple[int | None, list]:
        """(cost of the inference, per-layer costs) in the device's cost unit."""
        if self.hello.cost_kind in _COST_IN_ANSWER:
            return res.cost, list(res.layer_cost)
        if self.marks is not None:
            return self.marks.take(self.hello.profiling_layers, timeout=max(self.timeout, 2.0))
        return None, list(res.layer_cost)

    def _measure(self, client: DeviceClient) -> None:
        while not self.stop.is_set():
            try:
                i = self.todo.get_nowait()
            except queue.Empty:
                return
            w = self.workload
            try:
                if w.raw is not None:  # the device prepares the raw input itself
                    raw = client.raw(RawKind[w.raw_kind.upper()], w.raw[i].tobytes())
                    res = raw.result
                else:
                    res = client.infer(w.inputs[i].tobytes())
            except BaseException:
                self.todo.put(i)  # not measured: leave it for another device or --resume
                raise
            self.hello = client.info
            cost, layer_cost = self._cost(res)
            prepare = None
            if w.raw is not None:
                prepare = (
                    raw.prepare_cost
                    if self.hello.cost_kind in _COST_IN_ANSWER
                    else self.marks.last_prepare
                    if self.marks is not None
                    else None
                )
            self.results.add(
                make_record(i, res, cost, layer_cost, w, self.spec.label, self.hello, prepare_cost=prepare)
            )
            self.measured += 1

    def run(self) -> None:
        transport = SerialTransport(self.spec.url, self.spec.baudrate)
        try:
            transport.open()
            self.client = client = DeviceClient(
                transport, timeout=self.timeout, retries=self.retries, on_reboot=self._on_reboot
            )
            self.hello = client.hello()
            check_device(self.hello, self.workload, self.spec.url)
            if self._cost_source() == "marks":
                self.marks = MarkLog(self.spec.marks)
            self._measure(client)
            self.stats = client.stats()
            self.hello = client.info
        except BaseException as err:  # reported by the main thread
            self.error = err
            self.stop.set()
        finally:
            transport.close()

    def outcome(self) -> DeviceOutcome:
        c = self.client
        return DeviceOutcome(
            label=self.spec.label,
            hello=self.hello,
            stats=self.stats,
            measured=self.measured,
            reboots=[{"from": r.before, "to": r.after} for r in (c.reboots if c else [])],
            link=c.counters.as_dict(c.decoder) if c else None,
            error=self.error,
            cost_source=self._cost_source(),
        )
