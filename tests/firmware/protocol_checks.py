"""Protocol conformance checks run against every device kind (host pty, QEMU)."""

from __future__ import annotations

import time

import numpy as np

from firmware.frames import (
    BAD_CRC,
    BAD_LENGTH,
    BAD_SEQUENCE,
    BAD_TYPE,
    BAD_VERSION,
    ERROR,
    HELLO,
    INFER,
    STATS,
    TIMEOUT,
    TOO_LONG,
    encode,
    fixture_model,
    parse_error,
    parse_hello,
    parse_infer,
    parse_stats,
)

RESPONSE = {HELLO: 0x81, INFER: 0x82, STATS: 0x83}


def samples(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    model = fixture_model()
    out = [bytes(model.N), bytes([0x7F] * model.N), bytes([0x80] * model.N)]
    out += [rng.integers(-128, 128, model.N, dtype=np.int8).tobytes() for _ in range(n - 3)]
    return out


def check_hello(link, board: str, cost_kind: int, seq: int = 100) -> dict:
    model = fixture_model()
    f = link.request(HELLO, seq)
    assert (f.type, f.seq) == (0x81, seq)
    h = parse_hello(f.payload)
    assert h["version"] == 1 and h["board"] == board and h["cost_kind"] == cost_kind
    assert h["model_hash"] == model.MODEL_HASH
    assert (h["input_t"], h["input_c"]) == (model.T, model.C)
    assert (h["num_classes"], h["num_classifiers"]) == (model.NUM_CLASSES, model.K)
    assert h["input_scale"] == model.INPUT_SCALE
    assert h["input_zero_point"] == model.INPUT_ZERO_POINT
    assert h["arena_size"] == 1024
    assert h["clock_status"] == 0  # appended field: a fixed clock, nothing to bring up
    assert h["model_kind"] == 0  # appended field: the fixture is a DiTMoS model
    return h


def check_infer_matches_reference(link, seq: int, inputs: list[bytes]) -> tuple[int, list]:
    """INFER every input; each answer must equal the Python twin exactly."""
    model = fixture_model()
    answers = []
    for x in inputs:
        seq += 1
        f = link.request(INFER, seq, x)
        assert (f.type, f.seq) == (0x82, seq), parse_error(f.payload) if f.type == ERROR else f
        r = parse_infer(f.payload)
        pred, route, scores = model.predict(x)
        assert (r["predicted"], r["route"], r["scores"]) == (pred, route, scores.tolist())
        answers.append(r)
    return seq, answers


def expect_error(link, code: int, *, seq: int | None = None, detail: int | None = None):
    f = link.read_frame()
    assert f.type == ERROR, f"expected ERROR {code}, got type 0x{f.type:02x}"
    got_code, got_detail = parse_error(f.payload)
    assert got_code == code, (got_code, got_detail)
    if seq is not None:
        assert f.seq == seq
    if detail is not None:
        assert got_detail == detail
    return got_detail


def check_malformed(link, seq: int) -> int:
    """Every kind of bad frame gets its ERROR; the device keeps answering."""
    model = fixture_model()
    x = bytes(model.N)
    link.write(encode(STATS, seq + 1, bad_crc=True))
    expect_error(link, BAD_CRC, seq=seq + 1)
    link.write(encode(STATS, seq + 1, version=2))
    expect_error(link, BAD_VERSION, seq=seq + 1, detail=2)
    link.write(encode(0x55, seq + 1))
    expect_error(link, BAD_TYPE, seq=seq + 1, detail=0x55)
    link.write(encode(INFER, seq + 1, x[:-1]))
    expect_error(link, BAD_LENGTH, seq=seq + 1, detail=model.N)
    link.write(encode(STATS, seq + 1, b"\x01"))
    expect_error(link, BAD_LENGTH, seq=seq + 1, detail=0)
    # An impossible length is refused from the header alone (no payload waited for).
    link.write(encode(INFER, seq + 1, b"", length=4000)[:8])
    expect_error(link, TOO_LONG, seq=seq + 1, detail=4000)
    # Out of sequence: neither last nor last + 1.
    link.write(encode(STATS, seq + 7))
    expect_error(link, BAD_SEQUENCE, seq=seq + 7, detail=(seq + 1) & 0xFFFF)
    # Noise between frames is ignored, including false sync bytes.
    link.write(b"\x00\xa5\x13\xa5\xa5" + encode(STATS, seq + 1))
    f = link.read_frame()
    assert (f.type, f.seq) == (0x83, seq + 1)
    seq += 1
    # A frame that stops mid-way is dropped after the inter-byte timeout.
    t0 = time.monotonic()
    link.write(encode(INFER, seq + 1, x)[:12])
    expect_error(link, TIMEOUT, seq=seq + 1, detail=12)
    assert time.monotonic() - t0 >= 0.15
    # Still alive and in sequence.
    f = link.request(STATS, seq + 1)
    assert f.type == 0x83
    return seq + 1


def check_retransmission_and_stats(link, seq: int) -> int:
    x = samples(4, seed=5)[3]
    seq += 1
    first = link.request(INFER, seq, x)
    before = parse_stats(link.request(STATS, seq + 1).payload)
    seq += 1
    again = link.request(STATS, seq)  # STATS retransmitted: same seq, answered again
    assert again.type == 0x83
    seq += 1
    r1 = link.request(INFER, seq, x)
    r2 = link.request(INFER, seq, x)  # retransmission of the INFER
    # deterministic: the same answer again (a measured wall-clock cost may differ)
    answers = [parse_infer(f.payload) for f in (first, r1, r2)]
    for a in answers:
        a.pop("cost"), a.pop("layer_cost")
    assert answers[0] == answers[1] == answers[2]
    if parse_infer(r1.payload)["cost"] == 0:  # no cost in the answer: byte for byte
        assert r1.payload == first.payload == r2.payload
    after = parse_stats(link.request(STATS, seq + 1).payload)
    seq += 1
    assert after["inferences"] == before["inferences"] + 1  # the retransmission is not counted
    assert after["arena_size"] == 1024
    return seq
