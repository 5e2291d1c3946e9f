"""A protocol peer written from docs/protocol.md, for client-level tests.

It lets the client tests provoke situations the real firmware produces only
rarely (a reboot between two requests, an ERROR on demand).  The device-level
proofs (fault injection, evaluate) run against the host-compiled firmware;
this peer only stands in for it while testing the client's own logic.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty

from ditmos.harness.protocol import (
    PROTOCOL_VERSION,
    DeviceError,
    DeviceStats,
    ErrorCode,
    FrameDecoder,
    HelloInfo,
    InferResult,
    MsgType,
    encode_frame,
)


def toy_model(sample: bytes, num_classes: int = 4) -> InferResult:
    """A deterministic function of the input bytes standing in for the network."""
    total = sum(b if b < 128 else b - 256 for b in sample)
    pred = total % num_classes
    scores = tuple(((total >> (2 * i)) % 200) - 100 for i in range(num_classes))
    return InferResult(predicted=pred, route=(total // 7) % 3, scores=scores, cost=1000 + (total & 0xFF), layer_cost=())


class PyDevice:
    def __init__(
        self,
        *,
        input_size: int = 12,
        num_classes: int = 4,
        model_hash: str = "0123456789abcdef",
        boot_counter: int = 1,
        cost_kind: int = 0,
        protocol_version: int = PROTOCOL_VERSION,
        delay: float = 0.0,
    ) -> None:
        self.input_size = input_size
        self.num_classes = num_classes
        self.model_hash = model_hash
        self.boot_counter = boot_counter
        self.cost_kind = cost_kind
        self.protocol_version = protocol_version
        self.delay = delay
        self.inferences = 0
        self.errors = 0
        self.reboot_before_next = False
        self.drop_next_answers = 0
        self.received: list[tuple[int, int]] = []  # (type, seq) of accepted requests
        self._last_seq: int | None = None
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PyDevice":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self._master)
        os.close(self._slave)

    def reboot(self) -> None:
        self.boot_counter += 1
        self._last_seq = None
        self.inferences = 0
        self.errors = 0

    def _hello(self) -> bytes:
        return HelloInfo(
            self.protocol_version,
            self.cost_kind,
            216_000_000,
            self.boot_counter,
            self.model_hash,
            self.num_classes,
            3,
            self.input_size // 3,
            3,
            0.05,
            -3,
            40_000,
            9_000,
            4_096,
            0,
            "pydevice",
        ).encode()

    def _send(self, msg_type: int, seq: int, payload: bytes) -> None:
        if self.drop_next_answers:
            self.drop_next_answers -= 1
            return
        os.write(self._master, encode_frame(msg_type, seq, payload))

    def _run(self) -> None:
        dec = FrameDecoder()
        partial_since = None
        while not self._stop.is_set():
            r, _, _ = select.select([self._master], [], [], 0.02)
            if dec.pending and partial_since is None:
                partial_since = time.monotonic()
            if partial_since is not None and time.monotonic() - partial_since > 0.2:
                # a frame that never completes is dropped (the device never waits forever)
                for f in dec.drop_partial():
                    self._handle(f)
                partial_since = time.monotonic() if dec.pending else None
            if not r:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            crc_before = dec.stats.crc_errors
            frames = dec.feed(data)
            if dec.stats.crc_errors > crc_before:
                self.errors += 1
                self._send(MsgType.ERROR, 0, DeviceError(ErrorCode.BAD_CRC, 0).encode())
            for f in frames:
                self._handle(f)
            if not dec.pending:
                partial_since = None

    def _handle(self, f) -> None:
        if self.reboot_before_next:
            self.reboot_before_next = False
            self.reboot()
        if f.version != PROTOCOL_VERSION:
            self.errors += 1
            return self._send(MsgType.ERROR, f.seq, DeviceError(ErrorCode.BAD_VERSION, 0).encode())
        last = self._last_seq
        # HELLO is accepted with any sequence number and restarts the sequence
        if f.type != MsgType.HELLO and last is not None and f.seq not in (last, (last + 1) & 0xFFFF):
            self.errors += 1
            return self._send(MsgType.ERROR, f.seq, DeviceError(ErrorCode.BAD_SEQUENCE, (last + 1) & 0xFFFF).encode())
        self._last_seq = f.seq
        self.received.append((f.type, f.seq))
        if self.delay:
            time.sleep(self.delay)
        if f.type == MsgType.HELLO:
            self._send(MsgType.HELLO_OK, f.seq, self._hello())
        elif f.type == MsgType.INFER:
            if len(f.payload) != self.input_size:
                self.errors += 1
                return self._send(MsgType.ERROR, f.seq, DeviceError(ErrorCode.BAD_LENGTH, self.input_size).encode())
            self.inferences += 1
            self._send(MsgType.INFER_OK, f.seq, toy_model(f.payload, self.num_classes).encode())
        elif f.type == MsgType.STATS:
            self._send(MsgType.STATS_OK, f.seq, DeviceStats(8192, 1234, 4096, self.inferences, self.errors).encode())
        elif f.type == MsgType.RESET:
            self._send(MsgType.RESET_OK, f.seq, b"")
            self.reboot()
        else:
            self.errors += 1
            self._send(MsgType.ERROR, f.seq, DeviceError(ErrorCode.BAD_TYPE, f.type).encode())
