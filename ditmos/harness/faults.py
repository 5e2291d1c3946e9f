"""Fault injection between the harness and a device (a shipped test helper).

:class:`FaultProxy` listens on a loopback TCP port; point the harness at
``proxy.url`` (``socket://127.0.0.1:PORT``) and the proxy relays frames to the
real device (any pyserial URL: a pseudo-terminal, a serial port, QEMU's
socket) while it

* drops bytes and flips bits (independently per byte, both directions),
* stalls a frame for a while before relaying it,
* reboots the device mid-run: at the chosen INFER requests it sends the
  device a RESET in place of the request (with the request's own sequence
  number, so the device accepts it) and hides the RESET_OK, exactly as if
  the board had reset while the sample was in flight.

Everything is driven by one seeded random generator; ``proxy.injected``
counts what was actually done, so a test can prove the faults happened.

Example::

    with HostDevice(build_dir) as dev, \
            FaultProxy(dev.url, FaultPlan(seed=1, drop_rate=1e-3, reboot_at=(40,))) as proxy:
        run_evaluation(workload, [DeviceSpec(proxy.url)], out_dir)

or from the command line, ``ditmos evaluate ... --port socket://127.0.0.1:PORT``.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass

from ditmos.harness.protocol import Frame, FrameDecoder, MsgType, encode_frame
from ditmos.harness.transport import SerialTransport


@dataclass(frozen=True)
class FaultPlan:
    seed: int = 0
    drop_rate: float = 0.0  # probability of dropping each byte
    flip_rate: float = 0.0  # probability of flipping one bit of each byte
    stall_rate: float = 0.0  # probability of holding a frame back ...
    stall_seconds: float = 0.0  # ... for this long
    reboot_at: tuple[int, ...] = ()  # 1-based indices of INFER requests replaced by a reboot
    to_device: bool = True  # apply byte faults host -> device
    to_host: bool = True  # apply byte faults device -> host


class FaultProxy:
    def __init__(self, device_url: str, plan: FaultPlan, *, baudrate: int = 115200) -> None:
        self.device_url = device_url
        self.plan = plan
        self.baudrate = baudrate
        self.injected = {"dropped": 0, "flipped": 0, "stalls": 0, "reboots": 0}
        self._rng = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conn: socket.socket | None = None
        self._device: SerialTransport | None = None
        self._infer_count = 0
        self._hidden_reset_seqs: set[int] = set()

    # ----------------------------------------------------------- lifecycle
    def __enter__(self) -> "FaultProxy":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self._device = SerialTransport(self.device_url, self.baudrate).open()
        t = threading.Thread(target=self._accept, name="faultproxy-accept", daemon=True)
        t.start()
        self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        for t in self._threads:
            t.join(5)
        if self._conn is not None:
            self._conn.close()
        if self._device is not None:
            self._device.close()

    def _accept(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if self._conn is not None:  # one harness at a time: a reconnect replaces the old one
                self._conn.close()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(0.05)
            self._conn = conn
            for target in (self._host_to_device, self._device_to_host):
                t = threading.Thread(target=target, args=(conn,), daemon=True)
                t.start()
                self._threads.append(t)

    # -------------------------------------------------------------- faults
    def _damage(self, raw: bytes) -> bytes:
        plan = self.plan
        out = bytearray()
        with self._lock:
            if plan.stall_rate and self._rng.random() < plan.stall_rate:
                self.injected["stalls"] += 1
                stall = True
            else:
                stall = False
            for b in raw:
                if plan.drop_rate and self._rng.random() < plan.drop_rate:
                    self.injected["dropped"] += 1
                    continue
                if plan.flip_rate and self._rng.random() < plan.flip_rate:
                    self.injected["flipped"] += 1
                    b ^= 1 << self._rng.randrange(8)
                out.append(b)
        if stall:
            time.sleep(plan.stall_seconds)
        return bytes(out)

    def _host_to_device(self, conn: socket.socket) -> None:
        dec = FrameDecoder()
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if not data:
                return
            for frame in dec.feed(data):
                raw, injected = self._maybe_reboot(frame)
                if self.plan.to_device and not injected:
                    raw = self._damage(raw)
                self._device.write(raw)

    def _maybe_reboot(self, frame: Frame) -> tuple[bytes, bool]:
        """The bytes to send for ``frame`` and whether they are an injected RESET."""
        if frame.type == MsgType.INFER:
            self._infer_count += 1
            if self._infer_count in self.plan.reboot_at:
                with self._lock:
                    self.injected["reboots"] += 1
                    self._hidden_reset_seqs.add(frame.seq)
                return encode_frame(MsgType.RESET, frame.seq), True
        return frame.encode(), False

    def _device_to_host(self, conn: socket.socket) -> None:
        dec = FrameDecoder()
        while not self._stop.is_set():
            data = self._device.read(0.05)
            if not data:
                continue
            for frame in dec.feed(data):
                if frame.type == MsgType.RESET_OK:
                    with self._lock:
                        if frame.seq in self._hidden_reset_seqs:
                            self._hidden_reset_seqs.discard(frame.seq)
                            continue
                raw = frame.encode()
                if self.plan.to_host:
                    raw = self._damage(raw)
                try:
                    conn.sendall(raw)
                except OSError:
                    return
