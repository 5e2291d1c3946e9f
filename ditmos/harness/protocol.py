"""The ditmos serial protocol, version 1 (see ``docs/protocol.md``).

Frames are ``sync(2) version(1) type(1) seq(u16) length(u16) payload crc(u16)``,
little-endian, with a CRC-16/CCITT-FALSE over everything after the sync
marker.  This module is pure: bytes in, typed values out.  It holds both the
host side (requests, response parsing) and enough of the device side (response
encoding) for test peers and the fault-injection proxy.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from ditmos.errors import DitmosError

# The constants below are the C header's (firmware/include/ditmos_protocol.h);
# tests/firmware/test_protocol_constants.py keeps the two in step.
SYNC = b"\xa5\x5a"
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_PAYLOAD = 2048
HEADER_SIZE = 8
CRC_SIZE = 2
# Inter-byte timeout of the device's parser (ms): a partial frame older than
# this since its last byte is dropped.
INTERBYTE_TIMEOUT_MS = 200
# HELLO_OK carries the first MODEL_HASH_BYTES hex digits of the model hash.
MODEL_HASH_BYTES = 16
RESPONSE_FLAG = 0x80  # a response's type is its request's type | RESPONSE_FLAG
CRC16_INIT = 0xFFFF
_HEADER = struct.Struct("<2sBBHH")


class MsgType(enum.IntEnum):
    HELLO = 0x01
    INFER = 0x02
    STATS = 0x03
    RESET = 0x04
    CERTIFY = 0x05
    RAW = 0x06
    HELLO_OK = 0x81
    INFER_OK = 0x82
    STATS_OK = 0x83
    RESET_OK = 0x84
    CERTIFY_OK = 0x85
    RAW_OK = 0x86
    ERROR = 0x7F


RESPONSE_OF = {
    MsgType.HELLO: MsgType.HELLO_OK,
    MsgType.INFER: MsgType.INFER_OK,
    MsgType.STATS: MsgType.STATS_OK,
    MsgType.RESET: MsgType.RESET_OK,
    MsgType.CERTIFY: MsgType.CERTIFY_OK,
    MsgType.RAW: MsgType.RAW_OK,
}


_KNOWN_TYPES = frozenset(int(t) for t in MsgType)


class ErrorCode(enum.IntEnum):
    BAD_CRC = 1
    BAD_VERSION = 2
    BAD_TYPE = 3
    BAD_LENGTH = 4
    TOO_LONG = 5
    BAD_SEQUENCE = 6
    TIMEOUT = 7
    INFER_FAILED = 8
    NO_RAW = 9  # RAW of a kind this firmware was not built with
    BAD_OFFSET = 10  # RAW chunk that leaves a gap, changes kind or overruns the input


class RawKind(enum.IntEnum):
    """What a RAW request carries (docs/protocol.md)."""

    FLOAT = 1  # float32 window [T][C] in the training data's units
    I16 = 2  # int16 sensor counts [T][C] (per-channel scale built in)
    AUDIO = 3  # int16 audio clip (the front end's clip length)


class ModelKind(enum.IntEnum):
    """HELLO_OK's appended ``model_kind``: what INFER_OK's ``route`` means."""

    DITMOS = 0  # selector + K classifiers: route = the classifier chosen
    NETWORK = 1  # one network with N exits (N = num_classifiers): route = the exit taken


class CostKind(enum.IntEnum):
    CYCLES = 0
    INSTRUCTIONS = 1
    NONE = 2
    NANOSECONDS = 3  # host wall clock (the host board)


def device_model_hash(model_hash: str) -> str:
    """What a device built for ``model_hash`` (the 64 hex digits of every
    manifest) reports in HELLO_OK: its first MODEL_HASH_BYTES digits."""
    return str(model_hash)[:MODEL_HASH_BYTES]


class ProtocolError(DitmosError):
    """A frame or payload that does not follow docs/protocol.md."""


# --------------------------------------------------------------------------- CRC


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16_ccitt_false(data: bytes, crc: int = CRC16_INIT) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


# ------------------------------------------------------------------------ frames


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes = b""
    version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        return encode_frame(self.type, self.seq, self.payload, version=self.version)


def encode_frame(msg_type: int, seq: int, payload: bytes = b"", *, version: int = PROTOCOL_VERSION) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the protocol maximum of {MAX_PAYLOAD}")
    body = _HEADER.pack(SYNC, version, int(msg_type), seq & 0xFFFF, len(payload))[2:] + payload
    return SYNC + body + struct.pack("<H", crc16_ccitt_false(body))


@dataclass
class DecoderStats:
    frames: int = 0
    crc_errors: int = 0
    oversize: int = 0
    discarded_bytes: int = 0


class FrameDecoder:
    """Streaming decoder: feed it bytes, get whole frames back.

    Bytes outside a frame are discarded; a frame with a bad CRC or an
    impossible length is dropped and the search for the next sync marker
    restarts one byte after the rejected marker, so a good frame hidden inside
    garbage is still found.  A header naming an unknown frame type is taken for
    a false sync marker at once.  ``drop_partial()`` abandons a frame whose tail
    never arrived (call it after a read timeout).
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self.max_payload = max_payload
        self.stats = DecoderStats()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def drop_partial(self) -> list[Frame]:
        """Skip the sync marker at the head of the buffer and rescan the rest."""
        if self._buf:
            del self._buf[:1]
            self.stats.discarded_bytes += 1
        return self.feed(b"")

    def _next(self) -> Frame | None:
        buf = self._buf
        while True:
            start = buf.find(SYNC)
            if start < 0:
                # keep a trailing first sync byte, it may be the start of a marker
                keep = 1 if buf[-1:] == SYNC[:1] else 0
                self.stats.discarded_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                return None
            if start:
                self.stats.discarded_bytes += start
                del buf[:start]
            if len(buf) < HEADER_SIZE:
                return None
            _, version, msg_type, seq, length = _HEADER.unpack_from(buf, 0)
            if msg_type not in _KNOWN_TYPES:
                # a false sync marker inside garbage: no such frame type exists
                self.stats.discarded_bytes += 1
                del buf[:1]
                continue
            if length > self.max_payload:
                self.stats.oversize += 1
                self.stats.discarded_bytes += 1
                del buf[:1]
                continue
            total = HEADER_SIZE + length + CRC_SIZE
            if len(buf) < total:
                return None
            (crc,) = struct.unpack_from("<H", buf, HEADER_SIZE + length)
            if crc != crc16_ccitt_false(bytes(buf[2 : HEADER_SIZE + length])):
                self.stats.crc_errors += 1
                self.stats.discarded_bytes += 1
                del buf[:1]
                continue
            payload = bytes(buf[HEADER_SIZE : HEADER_SIZE + length])
            del buf[:total]
            self.stats.frames += 1
            return Frame(type=msg_type, seq=seq, payload=payload, version=version)


# ---------------------------------------------------------------------- messages

_HELLO_FIXED = struct.Struct("<BBII16sHBHHfiIIIH")
_HELLO_TAIL = struct.Struct("<BI")  # clock_status, cycles_now (after board_name)
_HELLO_TAIL2 = struct.Struct("<BIB")  # ... and model_kind (appended after them)

# clock_status bits of the Nucleo-F767ZI (firmware/boards/nucleo_f767zi/stm32f767_clock.h);
# bit 7 means the same on every board: running from a fallback clock.
CLOCK_STATUS_BITS = {
    0x01: "no 8 MHz clock from the ST-LINK (HSE): PLL fed by the internal 16 MHz RC, +-1 %",
    0x02: "the PLL never locked",
    0x04: "voltage over-drive never became ready",
    0x08: "the flash wait states did not read back",
    0x10: "the system clock never switched to the PLL",
    0x80: "running from the internal 16 MHz oscillator (HSI) instead",
}


def clock_status_text(status: int | None) -> str:
    """A clock bring-up status in words ('ok', or what went wrong)."""
    if status is None:
        return "status not reported (firmware older than this harness)"
    if status == 0:
        return "ok"
    parts = [text for bit, text in CLOCK_STATUS_BITS.items() if status & bit]
    unknown = status & ~sum(CLOCK_STATUS_BITS)
    if unknown:
        parts.append(f"unknown bits 0x{unknown:02x}")
    return f"FAILED (0x{status:02x}): " + "; ".join(parts)


@dataclass(frozen=True)
class HelloInfo:
    protocol_version: int
    cost_kind: int
    core_clock_hz: int
    boot_counter: int
    model_hash: str
    num_classes: int
    num_classifiers: int
    input_t: int
    input_c: int
    input_scale: float
    input_zero_point: int
    flash_used: int
    ram_used: int
    arena_size: int
    profiling_layers: int
    board_name: str
    # Appended fields (docs/protocol.md); None from firmware that predates them.
    clock_status: int | None = None
    cycles_now: int | None = None
    model_kind: int | None = None  # ModelKind; None: firmware before the field (DiTMoS)

    @property
    def input_size(self) -> int:
        return self.input_t * self.input_c

    @property
    def clock_text(self) -> str:
        """The core clock and the bring-up status, in words."""
        mhz = f"{self.core_clock_hz / 1e6:g} MHz" if self.core_clock_hz else "no clock reported"
        return f"core clock {mhz}, bring-up {clock_status_text(self.clock_status)}"

    @classmethod
    def decode(cls, payload: bytes) -> "HelloInfo":
        n = _HELLO_FIXED.size
        if len(payload) < n + 1:
            raise ProtocolError(f"HELLO_OK payload of {len(payload)} bytes is shorter than {n + 1}")
        fields = list(_HELLO_FIXED.unpack_from(payload, 0))
        name_len = payload[n]
        end = n + 1 + name_len
        sizes = (end, end + _HELLO_TAIL.size, end + _HELLO_TAIL2.size)
        if len(payload) not in sizes:
            raise ProtocolError(
                f"HELLO_OK payload is {len(payload)} bytes, expected one of "
                f"{', '.join(map(str, sizes))} for a board name of {name_len} bytes"
            )
        fields[4] = _ascii(fields[4].rstrip(b"\0"), "model_hash")  # NUL-padded if shorter
        name = _ascii(payload[n + 1 : end], "board_name")
        tail = (None, None, None)
        if len(payload) == sizes[2]:
            tail = _HELLO_TAIL2.unpack_from(payload, end)
        elif len(payload) == sizes[1]:
            tail = _HELLO_TAIL.unpack_from(payload, end) + (None,)
        return cls(*fields, board_name=name, clock_status=tail[0], cycles_now=tail[1], model_kind=tail[2])

    def encode(self) -> bytes:
        name = self.board_name.encode("ascii")
        h = self.model_hash.encode("ascii")
        if len(h) > MODEL_HASH_BYTES:
            raise ProtocolError(f"model hash must be at most {MODEL_HASH_BYTES} ASCII bytes, got {len(h)}")
        return (
            _HELLO_FIXED.pack(
                self.protocol_version,
                self.cost_kind,
                self.core_clock_hz,
                self.boot_counter,
                h,
                self.num_classes,
                self.num_classifiers,
                self.input_t,
                self.input_c,
                self.input_scale,
                self.input_zero_point,
                self.flash_used,
                self.ram_used,
                self.arena_size,
                self.profiling_layers,
            )
            + bytes([len(name)])
            + name
            + (b"" if self.clock_status is None else _HELLO_TAIL.pack(self.clock_status, self.cycles_now or 0))
            + (b"" if self.clock_status is None or self.model_kind is None else bytes([int(self.model_kind)]))
        )


def _ascii(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as err:
        raise ProtocolError(f"{what} in HELLO_OK is not ASCII: {raw!r}") from err


@dataclass(frozen=True)
class InferResult:
    predicted: int
    route: int
    scores: tuple[int, ...]
    cost: int
    layer_cost: tuple[int, ...] = field(default=())

    @classmethod
    def decode(cls, payload: bytes) -> "InferResult":
        if len(payload) < 5:
            raise ProtocolError(f"INFER_OK payload of {len(payload)} bytes is too short")
        predicted, route, ncls = struct.unpack_from("<HBH", payload, 0)
        off = 5
        need = off + ncls + 4 + 2
        if len(payload) < need:
            raise ProtocolError(f"INFER_OK payload of {len(payload)} bytes is too short for {ncls} classes")
        scores = struct.unpack_from(f"<{ncls}b", payload, off)
        off += ncls
        cost, nlay = struct.unpack_from("<IH", payload, off)
        off += 6
        if len(payload) != off + 4 * nlay:
            raise ProtocolError(
                f"INFER_OK payload is {len(payload)} bytes, expected {off + 4 * nlay} "
                f"for {ncls} classes and {nlay} layers"
            )
        layers = struct.unpack_from(f"<{nlay}I", payload, off)
        return cls(predicted, route, tuple(scores), cost, tuple(layers))

    def encode(self) -> bytes:
        n = len(self.scores)
        return (
            struct.pack("<HBH", self.predicted, self.route, n)
            + struct.pack(f"<{n}b", *self.scores)
            + struct.pack("<IH", self.cost, len(self.layer_cost))
            + struct.pack(f"<{len(self.layer_cost)}I", *self.layer_cost)
        )


def encode_certify(window: bytes, thresholds, offset: int, seed: int, first: int, n: int) -> bytes:
    """CERTIFY payload: seed, first, n (u32), table size, offset (u16), the
    thresholds (u32 each), the int8 window."""
    thresholds = [int(t) for t in thresholds]
    return (
        struct.pack("<IIIHH", seed & 0xFFFFFFFF, first & 0xFFFFFFFF, n, len(thresholds), offset)
        + struct.pack(f"<{len(thresholds)}I", *thresholds)
        + bytes(window)
    )


@dataclass(frozen=True)
class CertifyResult:
    counts: tuple[int, ...]
    cost: int

    @classmethod
    def decode(cls, payload: bytes) -> "CertifyResult":
        if len(payload) < 2:
            raise ProtocolError(f"CERTIFY_OK payload of {len(payload)} bytes is too short")
        (ncls,) = struct.unpack_from("<H", payload, 0)
        if len(payload) != 2 + 4 * ncls + 4:
            raise ProtocolError(
                f"CERTIFY_OK payload is {len(payload)} bytes, expected {2 + 4 * ncls + 4} for {ncls} classes"
            )
        counts = struct.unpack_from(f"<{ncls}I", payload, 2)
        (cost,) = struct.unpack_from("<I", payload, 2 + 4 * ncls)
        return cls(tuple(counts), cost)

    def encode(self) -> bytes:
        n = len(self.counts)
        return struct.pack(f"<H{n}II", n, *self.counts, self.cost)


RAW_HEADER = struct.Struct("<BI")  # kind, byte offset of the chunk
_RAW_OK = struct.Struct("<III")  # received, total, prepare cost


def raw_chunks(kind: int, data: bytes, chunk: int = MAX_PAYLOAD - RAW_HEADER.size) -> list[bytes]:
    """The RAW payloads that send ``data`` (one raw input) in order."""
    if not data:
        raise ProtocolError("a RAW input needs at least one byte")
    return [RAW_HEADER.pack(int(kind), off) + bytes(data[off : off + chunk]) for off in range(0, len(data), chunk)]


@dataclass(frozen=True)
class RawResult:
    """RAW_OK: the bytes received so far; once complete, the cost of the input
    pipeline and the inference's answer."""

    received: int
    total: int
    prepare_cost: int
    result: InferResult | None = None

    @property
    def complete(self) -> bool:
        return self.result is not None

    @classmethod
    def decode(cls, payload: bytes) -> "RawResult":
        if len(payload) < _RAW_OK.size:
            raise ProtocolError(f"RAW_OK payload of {len(payload)} bytes is too short")
        received, total, cost = _RAW_OK.unpack_from(payload, 0)
        rest = payload[_RAW_OK.size :]
        if received > total:
            raise ProtocolError(f"RAW_OK reports {received} of {total} bytes")
        if received < total:
            if rest:
                raise ProtocolError(f"RAW_OK for an incomplete input carries {len(rest)} extra bytes")
            return cls(received, total, cost)
        return cls(received, total, cost, InferResult.decode(rest))

    def encode(self) -> bytes:
        head = _RAW_OK.pack(self.received, self.total, self.prepare_cost)
        return head + (self.result.encode() if self.result is not None else b"")


_STATS = struct.Struct("<IIIII")


@dataclass(frozen=True)
class DeviceStats:
    stack_size: int
    stack_high_water: int
    arena_size: int
    inferences: int
    errors: int

    @classmethod
    def decode(cls, payload: bytes) -> "DeviceStats":
        if len(payload) != _STATS.size:
            raise ProtocolError(f"STATS_OK payload is {len(payload)} bytes, expected {_STATS.size}")
        return cls(*_STATS.unpack(payload))

    def encode(self) -> bytes:
        return _STATS.pack(self.stack_size, self.stack_high_water, self.arena_size, self.inferences, self.errors)


_ERROR = struct.Struct("<BH")


@dataclass(frozen=True)
class DeviceError:
    code: int
    detail: int

    @property
    def name(self) -> str:
        try:
            return ErrorCode(self.code).name
        except ValueError:
            return f"UNKNOWN_{self.code}"

    @classmethod
    def decode(cls, payload: bytes) -> "DeviceError":
        if len(payload) != _ERROR.size:
            raise ProtocolError(f"ERROR payload is {len(payload)} bytes, expected {_ERROR.size}")
        return cls(*_ERROR.unpack(payload))

    def encode(self) -> bytes:
        return _ERROR.pack(self.code, self.detail)
