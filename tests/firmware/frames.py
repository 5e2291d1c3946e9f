"""Test helpers: an independent, minimal codec of docs/protocol.md and a link
that exchanges frames with a device over a TCP socket or a pseudo-terminal.

Deliberately separate from ditmos.harness.protocol: two implementations
written from the same document must agree.
"""

from __future__ import annotations

import importlib.util
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

FIXTURE_MODEL = Path(__file__).parent / "fixtures" / "tiny_model"

HELLO, INFER, STATS, RESET, ERROR = 0x01, 0x02, 0x03, 0x04, 0x7F
BAD_CRC, BAD_VERSION, BAD_TYPE, BAD_LENGTH, TOO_LONG, BAD_SEQUENCE, TIMEOUT = range(1, 8)


def fixture_model():
    """The Python twin of the hand-written fixture model."""
    spec = importlib.util.spec_from_file_location("fixture_model", FIXTURE_MODEL / "fixture_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def encode(
    msg_type: int, seq: int, payload: bytes = b"", *, version: int = 1, length: int | None = None, bad_crc: bool = False
) -> bytes:
    n = len(payload) if length is None else length
    body = struct.pack("<BBHH", version, msg_type, seq, n) + payload
    crc = crc16(body) ^ (0x0101 if bad_crc else 0)
    return b"\xa5\x5a" + body + struct.pack("<H", crc)


@dataclass
class Frame:
    type: int
    seq: int
    payload: bytes


def parse_hello(p: bytes) -> dict:
    (version, cost_kind, clock, boots) = struct.unpack_from("<BBII", p, 0)
    model_hash = p[10:26].rstrip(b"\0").decode()
    (num_classes, k, t, c, scale, zp, flash, ram, arena, layers) = struct.unpack_from("<HBHHfiIIIH", p, 26)
    name_len = p[55]
    end = 56 + name_len
    assert len(p) == end + 6  # + clock_status u8, cycles_now u32, model_kind u8
    clock_status, cycles_now, model_kind = struct.unpack_from("<BIB", p, end)
    return dict(
        version=version,
        cost_kind=cost_kind,
        clock=clock,
        boots=boots,
        model_hash=model_hash,
        num_classes=num_classes,
        num_classifiers=k,
        input_t=t,
        input_c=c,
        input_scale=scale,
        input_zero_point=zp,
        flash_used=flash,
        ram_used=ram,
        arena_size=arena,
        profiling_layers=layers,
        board=p[56:end].decode(),
        clock_status=clock_status,
        cycles_now=cycles_now,
        model_kind=model_kind,
    )


def parse_infer(p: bytes) -> dict:
    predicted, route, n = struct.unpack_from("<HBH", p, 0)
    scores = list(struct.unpack_from(f"<{n}b", p, 5))
    cost, layers = struct.unpack_from("<IH", p, 5 + n)
    layer_cost = list(struct.unpack_from(f"<{layers}I", p, 11 + n))
    assert len(p) == 11 + n + 4 * layers
    return dict(predicted=predicted, route=route, scores=scores, cost=cost, layer_cost=layer_cost)


def parse_stats(p: bytes) -> dict:
    keys = ("stack_size", "stack_high_water", "arena_size", "inferences", "errors")
    return dict(zip(keys, struct.unpack("<5I", p)))


def parse_error(p: bytes) -> tuple[int, int]:
    return struct.unpack("<BH", p)


class Link:
    """Raw bytes to and from a device: a TCP address or a file descriptor."""

    def __init__(self, *, address: tuple[str, int] | None = None, path: str | None = None):
        if address is not None:
            self.sock = socket.create_connection(address, timeout=5)
            self.fd = self.sock.fileno()
        else:
            import termios
            import tty

            self.sock = None
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self.fd, termios.TCSANOW)
        self.buf = b""

    def write(self, data: bytes) -> None:
        if self.sock is not None:
            self.sock.sendall(data)
        else:
            os.write(self.fd, data)

    def _read_some(self, timeout: float) -> bytes:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return b""
        data = self.sock.recv(4096) if self.sock is not None else os.read(self.fd, 4096)
        if not data:
            raise EOFError("the device closed the link")
        return data

    def read_frame(self, timeout: float = 10.0) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\xa5\x5a")
            if i >= 0 and len(self.buf) >= i + 8:
                n = struct.unpack_from("<H", self.buf, i + 6)[0]
                if len(self.buf) >= i + 10 + n:
                    raw, self.buf = self.buf[i : i + 10 + n], self.buf[i + 10 + n :]
                    assert raw[2] == 1, "response with a wrong protocol version"
                    assert crc16(raw[2 : 8 + n]) == struct.unpack_from("<H", raw, 8 + n)[0]
                    _, t, seq, _ = struct.unpack_from("<BBHH", raw, 2)
                    return Frame(t, seq, raw[8 : 8 + n])
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame within {timeout} s (buffer {self.buf[:32]!r})")
            self.buf += self._read_some(left)

    def request(self, msg_type: int, seq: int, payload: bytes = b"", **kw) -> Frame:
        self.write(encode(msg_type, seq, payload, **kw))
        return self.read_frame()

    def quiet(self, seconds: float) -> bytes:
        """Bytes that arrive within `seconds` (expected: none)."""
        end, got = time.monotonic() + seconds, b""
        while (left := end - time.monotonic()) > 0:
            got += self._read_some(left)
        return got

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        else:
            os.close(self.fd)
