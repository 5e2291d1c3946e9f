"""The protocol's constants have one meaning on both sides: every ``#define``
of firmware/include/ditmos_protocol.h equals its Python twin in
ditmos/harness/protocol.py (and no define is left without one)."""

from __future__ import annotations

import re
from pathlib import Path

from ditmos.boards.registry import COST_KINDS
from ditmos.harness import protocol as P

HEADER = Path(__file__).resolve().parents[2] / "firmware" / "include" / "ditmos_protocol.h"


def _defines() -> dict[str, int]:
    out = {}
    for name, value in re.findall(r"^#define (DITMOS_\w+) (0x[0-9A-Fa-f]+|\d+)u$", HEADER.read_text(), re.M):
        out[name] = int(value, 0)
    return out


def _python() -> dict[str, int]:
    py = {
        "DITMOS_PROTOCOL_VERSION": P.PROTOCOL_VERSION,
        "DITMOS_SYNC0": P.SYNC[0],
        "DITMOS_SYNC1": P.SYNC[1],
        "DITMOS_MAX_PAYLOAD": P.MAX_PAYLOAD,
        "DITMOS_HEADER_SIZE": P.HEADER_SIZE,
        "DITMOS_CRC_SIZE": P.CRC_SIZE,
        "DITMOS_INTERBYTE_TIMEOUT_MS": P.INTERBYTE_TIMEOUT_MS,
        "DITMOS_MODEL_HASH_BYTES": P.MODEL_HASH_BYTES,
        "DITMOS_MSG_RESPONSE_FLAG": P.RESPONSE_FLAG,
        "DITMOS_CRC16_INIT": P.CRC16_INIT,
    }
    py.update({f"DITMOS_MSG_{t.name}": int(t) for t in P.MsgType if t < P.RESPONSE_FLAG})
    py.update({f"DITMOS_ERR_{e.name}": int(e) for e in P.ErrorCode})
    py.update({f"DITMOS_COST_{k.name}": int(k) for k in P.CostKind})
    py.update({f"DITMOS_KIND_{k.name}": int(k) for k in P.ModelKind})
    py.update({f"DITMOS_RAW_{k.name}": int(k) for k in P.RawKind})
    return py


def test_every_header_constant_equals_the_python_one():
    header, py = _defines(), _python()
    assert len(header) >= 25
    assert header == py


def test_responses_and_cost_kinds_follow_the_same_constants():
    for request, response in P.RESPONSE_OF.items():
        assert int(response) == int(request) | P.RESPONSE_FLAG
    assert COST_KINDS == {k.name.lower(): int(k) for k in P.CostKind}
