"""A protocol client with bounded retries, sequence numbers and reboot detection.

Sequence rule (docs/protocol.md): each new request carries ``last + 1``; a
retransmission reuses the sequence number of the request it repeats, which
is always acceptable to the device whether it lost the request (its ``last``
is one behind) or only its answer was lost (its ``last`` equals ours).

Failure handling, per request, bounded by ``retries``:

* no complete answer within the timeout (bytes dropped, a stall, a device
  busy rebooting) -> retransmit with the same sequence number;
* an answer frame with a bad CRC is dropped by the decoder, which then
  simply times out -> retransmit;
* an ERROR frame (the device saw a corrupted request, or a header that never
  completed) -> retransmit; an error that persists over all attempts is
  reported with its code;
* answers carrying another sequence number (late duplicates of an earlier
  request) are ignored;
* BAD_SEQUENCE (the device lost track of our sequence) -> HELLO, which
  restarts the sequence on the device, then the request again as a new one.

Reboots: after any request that needed a retransmission, and every
``probe_every`` requests, the client sends HELLO and compares the boot
counter.  A changed counter is recorded in ``reboots`` and reported to
``on_reboot`` (the evaluator re-checks the model hash there).  Since INFER is
deterministic and stateless, the answer obtained by the retransmission is the
answer for the sample that was in flight: the run continues from the last
acknowledged sample without losing or repeating one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ditmos.errors import DitmosError
from ditmos.harness.protocol import (
    RESPONSE_OF,
    SUPPORTED_VERSIONS,
    CertifyResult,
    DeviceError,
    DeviceStats,
    ErrorCode,
    Frame,
    FrameDecoder,
    HelloInfo,
    InferResult,
    MsgType,
    ProtocolError,
    RAW_HEADER,
    RawKind,
    RawResult,
    encode_certify,
    encode_frame,
    raw_chunks,
)
from ditmos.harness.transport import Transport


def _raw_kind_name(kind: int) -> str:
    try:
        return RawKind(kind).name
    except ValueError:
        return str(kind)


class _RawRestart(DitmosError):
    """BAD_OFFSET: the device lost the chunks sent so far (it rebooted)."""


class DeviceTimeout(DitmosError):
    """The device did not answer after every allowed retransmission."""


class DeviceRejected(DitmosError):
    """The device kept answering a request with an ERROR frame."""


@dataclass
class LinkCounters:
    requests: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    device_errors: dict = field(default_factory=dict)
    stale_frames: int = 0
    resyncs: int = 0

    def as_dict(self, decoder: FrameDecoder | None = None) -> dict:
        d = {
            "requests": self.requests,
            "retransmissions": self.retransmissions,
            "timeouts": self.timeouts,
            "device_errors": dict(self.device_errors),
            "stale_frames": self.stale_frames,
            "resyncs": self.resyncs,
        }
        if decoder is not None:
            d["crc_errors"] = decoder.stats.crc_errors
            d["discarded_bytes"] = decoder.stats.discarded_bytes
        return d


@dataclass(frozen=True)
class Reboot:
    before: int
    after: int
    request: int  # request counter at the moment it was detected


class DeviceClient:
    """Talks to one device over a :class:`Transport`."""

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = 2.0,
        retries: int = 8,
        probe_every: int = 100,
        on_reboot: Callable[[HelloInfo, HelloInfo], None] | None = None,
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.probe_every = probe_every
        self.on_reboot = on_reboot
        self.decoder = FrameDecoder()
        self.counters = LinkCounters()
        self.reboots: list[Reboot] = []
        self.info: HelloInfo | None = None
        self._seq = 0
        self._started = False
        self._since_probe = 0

    @property
    def url(self) -> str:
        return getattr(self.transport, "url", "?")

    # ------------------------------------------------------------- requests
    def hello(self) -> HelloInfo:
        frame = self._request(MsgType.HELLO, b"", probe=False)
        # the version decides the payload layout: check it before decoding the rest
        version = (
            frame.version
            if frame.version not in SUPPORTED_VERSIONS
            else (frame.payload[0] if frame.payload else frame.version)
        )
        if version not in SUPPORTED_VERSIONS:
            raise DitmosError(
                f"device on {self.url} speaks protocol version {version}, this "
                f"harness knows {', '.join(map(str, SUPPORTED_VERSIONS))}: rebuild the firmware "
                f"with this ditmos (`ditmos build`) and reflash it, or upgrade ditmos"
            )
        info = HelloInfo.decode(frame.payload)
        previous = self.info
        self.info = info
        self._since_probe = 0
        if previous is not None and info.boot_counter != previous.boot_counter:
            self.reboots.append(Reboot(previous.boot_counter, info.boot_counter, self.counters.requests))
            if self.on_reboot is not None:
                self.on_reboot(previous, info)
        return info

    def infer(self, sample: bytes) -> InferResult:
        frame = self._request(MsgType.INFER, bytes(sample))
        return InferResult.decode(frame.payload)

    def raw(self, kind: int, data: bytes) -> RawResult:
        """Send one raw input (RAW chunks in order); the device runs its input
        pipeline and the model on it: the last chunk's RAW_OK carries the answer."""
        chunks = raw_chunks(kind, data)
        for attempt in range(self.retries + 1):
            try:
                return self._raw_chunks(kind, data, chunks)
            except _RawRestart as err:
                if attempt == self.retries:
                    raise DeviceRejected(
                        f"device on {self.url} kept losing the chunks of a raw input ({err}) on {attempt + 1} attempts"
                    ) from err
        raise AssertionError("unreachable")

    def _raw_chunks(self, kind: int, data: bytes, chunks: list[bytes]) -> RawResult:
        for i, payload in enumerate(chunks):
            try:
                res = RawResult.decode(self._request(MsgType.RAW, payload).payload)
            except _RawRestart as err:
                if i == 0:  # even a fresh input was refused: it is longer than the device's
                    raise DeviceRejected(
                        f"device on {self.url} refused a raw {_raw_kind_name(kind)} input of "
                        f"{len(data)} bytes ({err}): it expects another size; rebuild the "
                        f"firmware for this run"
                    ) from err
                raise
            end = RAW_HEADER.unpack_from(payload)[1] + len(payload) - RAW_HEADER.size
            if res.total != len(data):
                raise ProtocolError(
                    f"device on {self.url} expects raw inputs of {res.total} bytes "
                    f"({RawKind(kind).name}), this one has {len(data)}"
                )
            if res.received != end or res.complete != (i == len(chunks) - 1):
                raise ProtocolError(
                    f"device on {self.url} reports {res.received} of {res.total} raw bytes after sending {end}"
                )
        return res

    def certify(
        self, window: bytes, thresholds, offset: int, seed: int, first: int, n: int, *, timeout: float | None = None
    ) -> CertifyResult:
        """Class counts of ``n`` noisy inferences on the device (integer smoothing,
        docs/smoothing.md); ``timeout`` replaces the per-request timeout meanwhile."""
        saved = self.timeout
        if timeout is not None:
            self.timeout = timeout
        try:
            frame = self._request(MsgType.CERTIFY, encode_certify(window, thresholds, offset, seed, first, n))
        finally:
            self.timeout = saved
        return CertifyResult.decode(frame.payload)

    def stats(self) -> DeviceStats:
        return DeviceStats.decode(self._request(MsgType.STATS, b"").payload)

    def reset(self) -> None:
        """Ask the device to reset; it answers RESET_OK first, then reboots."""
        self._request(MsgType.RESET, b"", probe=False)

    # ------------------------------------------------------------ machinery
    def _next_seq(self) -> int:
        if not self._started:
            self._started = True
        else:
            self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _request(self, msg_type: MsgType, payload: bytes, *, probe: bool = True) -> Frame:
        seq = self._next_seq()
        raw = encode_frame(msg_type, seq, payload)
        expected = RESPONSE_OF[msg_type]
        self.counters.requests += 1
        last_error: DeviceError | None = None
        attempt = 0
        while True:
            if attempt:
                self.counters.retransmissions += 1
            self.transport.write(raw)
            frame = self._await(seq)
            if frame is None:
                self.counters.timeouts += 1
            elif frame.type == MsgType.ERROR:
                last_error = DeviceError.decode(frame.payload)
                name = last_error.name
                self.counters.device_errors[name] = self.counters.device_errors.get(name, 0) + 1
                if last_error.code == ErrorCode.BAD_SEQUENCE and frame.seq == seq:
                    # the device and we disagree on the sequence: HELLO restarts it
                    # (docs/protocol.md), then the request goes again as a new one
                    if msg_type == MsgType.HELLO or attempt >= self.retries:
                        raise DeviceRejected(
                            f"device on {self.url} rejected sequence number {seq} (BAD_SEQUENCE, "
                            f"expected {last_error.detail}) even after a HELLO; reset the board "
                            f"and run again with --resume"
                        )
                    self.counters.resyncs += 1
                    self.hello()
                    seq = self._next_seq()
                    raw = encode_frame(msg_type, seq, payload)
                if last_error.code in (ErrorCode.BAD_OFFSET, ErrorCode.NO_RAW) and frame.seq == seq:
                    # refused before the sequence check passed: the device still expects
                    # this number, so the next request carries it again
                    self._seq = (seq - 1) & 0xFFFF
                if last_error.code == ErrorCode.BAD_OFFSET and frame.seq == seq:
                    raise _RawRestart(f"ERROR BAD_OFFSET, {last_error.detail} bytes held")
                if last_error.code == ErrorCode.NO_RAW and frame.seq == seq:
                    raise DeviceRejected(
                        f"device on {self.url} has no raw input of kind "
                        f"{_raw_kind_name(last_error.detail)} (ERROR NO_RAW): its firmware was "
                        f"built without it (a model without prepare.h, or a kind this model's "
                        f"pipeline lacks); rebuild with this ditmos (`ditmos build`)"
                    )
                if last_error.code == ErrorCode.INFER_FAILED and frame.seq == seq:
                    raise DeviceRejected(
                        f"device on {self.url} failed to run the model (INFER_FAILED, detail {last_error.detail})"
                    )
            elif frame.type != expected:
                raise ProtocolError(
                    f"device on {self.url} answered {MsgType(msg_type).name} (seq {seq}) with "
                    f"frame type 0x{frame.type:02x}, expected 0x{int(expected):02x}"
                )
            else:
                needed_retry = attempt > 0
                self._since_probe += 1
                if probe and (needed_retry or self._since_probe >= self.probe_every):
                    self.hello()
                return frame
            attempt += 1
            if attempt > self.retries:
                if last_error is not None:
                    raise DeviceRejected(
                        f"device on {self.url} answered {MsgType(msg_type).name} with ERROR "
                        f"{last_error.name} (detail {last_error.detail}) on all "
                        f"{attempt} attempts"
                    )
                raise DeviceTimeout(
                    f"device on {self.url} did not answer {MsgType(msg_type).name} (seq {seq}) "
                    f"within {self.timeout:.2f} s on any of {attempt} attempts; is the firmware "
                    f"running and the baud rate right?"
                )

    def _await(self, seq: int) -> Frame | None:
        """The answer to ``seq`` (or an ERROR frame), or None on timeout."""
        deadline = time.monotonic() + self.timeout
        pending: list[Frame] = []
        while True:
            for frame in pending:
                if frame.seq == seq and (frame.type & 0x80 or frame.type == MsgType.ERROR):
                    return frame
                if frame.type == MsgType.ERROR and frame.payload[:1] in (
                    bytes([ErrorCode.BAD_CRC]),
                    bytes([ErrorCode.TIMEOUT]),
                    bytes([ErrorCode.TOO_LONG]),
                ):
                    # the device saw a damaged frame; its sequence number cannot be trusted
                    return frame
                self.counters.stale_frames += 1
            left = deadline - time.monotonic()
            if left <= 0:
                # abandon a frame whose tail never came; rescan what is buffered
                pending = self.decoder.drop_partial() if self.decoder.pending else []
                for frame in pending:
                    if frame.seq == seq and frame.type & 0x80:
                        return frame
                return None
            pending = self.decoder.feed(self.transport.read(min(left, 0.05)))
