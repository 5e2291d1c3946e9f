"""The runtime compiled for the host board, over a pseudo-terminal: the whole
protocol, the fixture model's answers, reboot and boot counter."""

from __future__ import annotations

import time

import pytest

from ditmos.boards.host import HostDevice
from ditmos.errors import DitmosError
from firmware import protocol_checks as pc
from firmware.frames import HELLO, RESET, STATS, Link, parse_hello, parse_stats


@pytest.fixture
def device(host_build, tmp_path):
    with HostDevice(host_build, workdir=tmp_path) as dev:
        link = Link(path=dev.port)
        yield dev, link
        link.close()


def test_hello_reports_model_and_board(device):
    dev, link = device
    h = pc.check_hello(link, "host", cost_kind=3)
    assert h["boots"] == 1 and h["profiling_layers"] == 0


def test_infer_equals_python_reference(device):
    _, link = device
    pc.check_infer_matches_reference(link, 10, pc.samples(40))


def test_malformed_frames_get_errors_and_are_counted(device):
    _, link = device
    link.request(HELLO, 500)
    seq = pc.check_malformed(link, 500)
    stats = parse_stats(link.request(STATS, seq + 1).payload)
    assert stats["errors"] == 8


def test_retransmission_and_stats(device):
    _, link = device
    link.request(HELLO, 0)
    pc.check_retransmission_and_stats(link, 0)


def test_hello_resynchronises_the_sequence(device):
    _, link = device
    link.request(HELLO, 40)
    assert link.request(STATS, 41).type == 0x83
    assert link.request(HELLO, 7).type == 0x81  # any number: a reconnecting host
    assert link.request(STATS, 8).type == 0x83


def test_reset_reboots_and_counts_boots(device):
    dev, link = device
    assert parse_hello(link.request(HELLO, 1).payload)["boots"] == 1
    f = link.request(RESET, 2)
    assert (f.type, f.seq, f.payload) == (0x84, 2, b"")
    deadline = time.monotonic() + 5
    while dev.boots < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert parse_hello(link.request(HELLO, 9).payload)["boots"] == 2
    assert dev.boots == 2


def test_host_device_rejects_other_builds(mps2_build):
    with pytest.raises(DitmosError, match="not for the host board"):
        HostDevice(mps2_build)


def test_raw_needs_a_model_with_an_input_pipeline(host_build, tmp_path):
    """The fixture model has no prepare.h: RAW is refused with NO_RAW (detail = the kind),
    and the client says why in one line."""
    from ditmos.harness.client import DeviceClient, DeviceRejected
    from ditmos.harness.protocol import RawKind
    from ditmos.harness.transport import SerialTransport

    with HostDevice(host_build, workdir=tmp_path) as dev:
        t = SerialTransport(dev.url, 115200)
        t.open()
        try:
            client = DeviceClient(t, timeout=2.0)
            client.hello()
            before = client.stats().errors
            with pytest.raises(DeviceRejected, match="no raw input of kind I16 .*NO_RAW"):
                client.raw(RawKind.I16, bytes(8))
            after = client.stats()
            assert after.errors == before + 1 and after.inferences == 0
        finally:
            t.close()
