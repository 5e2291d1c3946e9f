"""Frame codec: CRC vectors, round trips, resynchronisation on garbage."""

import random
import struct

import pytest

from ditmos.harness.protocol import (
    MAX_PAYLOAD,
    DeviceError,
    DeviceStats,
    Frame,
    FrameDecoder,
    HelloInfo,
    InferResult,
    MsgType,
    ProtocolError,
    crc16_ccitt_false,
    encode_frame,
)


def test_crc_known_vectors():
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF
    assert crc16_ccitt_false(b"A") == 0xB915
    # incremental use gives the same result
    assert crc16_ccitt_false(b"56789", crc16_ccitt_false(b"1234")) == 0x29B1


def test_frame_layout_is_the_documented_one():
    raw = encode_frame(MsgType.INFER, 0x1234, b"\x01\x02\x03")
    assert raw[:2] == b"\xa5\x5a"
    assert raw[2] == 1 and raw[3] == 0x02
    assert raw[4:6] == b"\x34\x12" and raw[6:8] == b"\x03\x00"
    assert raw[8:11] == b"\x01\x02\x03"
    assert struct.unpack("<H", raw[11:13])[0] == crc16_ccitt_false(raw[2:11])
    assert len(raw) == 13


def test_round_trip_many_frames_in_one_buffer():
    rng = random.Random(1)
    frames = [
        Frame(
            rng.choice(list(MsgType)),
            rng.randrange(65536),
            bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))),
        )
        for _ in range(50)
    ]
    blob = b"".join(f.encode() for f in frames)
    dec = FrameDecoder()
    got = []
    for i in range(0, len(blob), 7):  # arbitrary chunking
        got += dec.feed(blob[i : i + 7])
    assert got == frames
    assert dec.stats.crc_errors == 0 and dec.pending == 0


def test_resynchronises_on_garbage_and_corruption():
    good = [Frame(MsgType.INFER_OK, i, bytes([i]) * 10) for i in range(5)]
    blob = bytearray(b"\x00\xa5\xa5\x5a\x01" + good[0].encode() + b"garbage\xa5" + good[1].encode())
    bad = bytearray(good[2].encode())
    bad[9] ^= 0x10  # flip a payload bit -> bad CRC
    blob += bad + good[3].encode()
    trunc = good[4].encode()[:6]  # a header that never completes, then a good frame
    blob += trunc + good[4].encode()
    dec = FrameDecoder()
    assert dec.feed(bytes(blob)) == [good[0], good[1], good[3], good[4]]
    assert dec.stats.crc_errors >= 1


def test_oversize_length_is_skipped():
    hdr = b"\xa5\x5a\x01\x82\x00\x00" + struct.pack("<H", MAX_PAYLOAD + 1)
    good = Frame(MsgType.STATS_OK, 3, b"x" * 20)
    dec = FrameDecoder()
    assert dec.feed(hdr + good.encode()) == [good]
    assert dec.stats.oversize == 1


def test_drop_partial_abandons_a_frame_that_never_ends():
    dec = FrameDecoder()
    # a corrupted length makes the decoder wait for 1000 bytes that never come
    stuck = b"\xa5\x5a\x01\x82\x07\x00" + struct.pack("<H", 1000) + b"abc"
    good = Frame(MsgType.HELLO_OK, 7, b"hi")
    assert dec.feed(stuck + good.encode()) == []
    assert dec.drop_partial() == [good]


def test_encode_refuses_oversize_payload():
    with pytest.raises(ProtocolError, match="exceeds the protocol maximum"):
        encode_frame(MsgType.INFER, 0, b"\0" * (MAX_PAYLOAD + 1))


def test_message_round_trips():
    hello = HelloInfo(
        1, 1, 25_000_000, 7, "00112233aabbccdd", 6, 6, 128, 6, 0.015625, -5, 70_000, 20_000, 6_000, 12, "mps2_an500"
    )
    assert HelloInfo.decode(hello.encode()) == hello
    res = InferResult(3, 2, (-128, 0, 5, 127, -1, 9), 123_456, (10, 20, 30))
    assert InferResult.decode(res.encode()) == res
    st = DeviceStats(8192, 2048, 6000, 100, 2)
    assert DeviceStats.decode(st.encode()) == st
    err = DeviceError(4, 768)
    assert DeviceError.decode(err.encode()) == err and err.name == "BAD_LENGTH"


def test_hello_model_kind_is_an_appended_field():
    from dataclasses import replace

    from ditmos.harness.protocol import ModelKind

    base = HelloInfo(
        1,
        1,
        25_000_000,
        7,
        "00112233aabbccdd",
        6,
        3,
        128,
        6,
        0.015625,
        -5,
        70_000,
        20_000,
        6_000,
        0,
        "mps2_an500",
        clock_status=0,
        cycles_now=9,
    )
    net = replace(base, model_kind=int(ModelKind.NETWORK))
    raw = net.encode()
    assert len(raw) == len(base.encode()) + 1 and raw[-1] == 1
    assert HelloInfo.decode(raw) == net
    assert HelloInfo.decode(base.encode()).model_kind is None  # firmware before the field
    with pytest.raises(ProtocolError, match="expected one of"):
        HelloInfo.decode(raw + b"\0")


def test_hello_layout_offsets():
    hello = HelloInfo(1, 0, 216_000_000, 3, "fedcba9876543210", 6, 6, 128, 6, 0.5, 1, 1, 2, 3, 0, "nucleo")
    raw = hello.encode()
    assert raw[0] == 1 and raw[1] == 0
    assert struct.unpack_from("<I", raw, 2)[0] == 216_000_000
    assert struct.unpack_from("<I", raw, 6)[0] == 3
    assert raw[10:26] == b"fedcba9876543210"
    assert raw[-7:] == b"\x06nucleo"


def test_truncated_payloads_are_rejected_clearly():
    res = InferResult(1, 0, (1, 2), 5, (7,)).encode()
    with pytest.raises(ProtocolError, match="INFER_OK payload"):
        InferResult.decode(res[:-1])
    with pytest.raises(ProtocolError, match="STATS_OK payload"):
        DeviceStats.decode(b"\0" * 19)
    h = HelloInfo(1, 0, 1, 1, "0" * 16, 2, 2, 2, 2, 1.0, 0, 0, 0, 0, 0, "ab").encode()
    with pytest.raises(ProtocolError, match="HELLO_OK payload"):
        HelloInfo.decode(h + b"x")


def test_hello_appended_clock_fields_are_optional():
    from ditmos.harness.protocol import clock_status_text

    old = HelloInfo(1, 0, 16_000_000, 1, "0" * 16, 2, 2, 2, 2, 1.0, 0, 0, 0, 0, 0, "nucleo")
    new = HelloInfo(*[getattr(old, f) for f in old.__dataclass_fields__][:16], clock_status=0x82, cycles_now=123_456)
    assert len(new.encode()) == len(old.encode()) + 5
    assert new.encode()[-5:] == struct.pack("<BI", 0x82, 123_456)
    assert HelloInfo.decode(new.encode()) == new
    assert HelloInfo.decode(old.encode()).clock_status is None  # firmware before the fields
    assert "PLL never locked" in clock_status_text(0x82) and "16 MHz" in clock_status_text(0x82)
    assert clock_status_text(0) == "ok" and "not reported" in old.clock_text
    assert new.clock_text.startswith("core clock 16 MHz, bring-up FAILED (0x82)")
