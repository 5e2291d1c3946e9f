"""CERTIFY on the host-board firmware and in QEMU: the device's class counts
equal the host's integer simulation (numpy noise + the fixture model's twin)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ditmos.boards.host import HostDevice
from ditmos.harness.protocol import CertifyResult, encode_certify
from ditmos.smoothing import noise as N
from firmware import protocol_checks as pc
from firmware.frames import ERROR, HELLO, Link, parse_error

CERTIFY, CERTIFY_OK = 0x05, 0x85


def _model():
    return pc.fixture_model()


def simulate(window: bytes, table: N.NoiseTable, seed: int, first: int, n: int) -> list[int]:
    m = _model()
    x = np.frombuffer(window, np.int8)
    noisy = N.add_noise(x, N.sample(table, seed, first, n, m.N))
    counts = np.zeros(m.NUM_CLASSES, np.int64)
    for row in noisy:
        counts[m.predict(row)[0]] += 1
    return counts.tolist()


def check_counts(link: Link, n: int, windows: int) -> int:
    """CERTIFY windows (two counter ranges each); returns the last sequence number."""
    link.request(HELLO, 0)
    seq, costs = 0, []
    for i, window in enumerate(pc.samples(windows, seed=3)):
        table = N.make_table([0.7, 3.0, 12.0][i % 3])
        for first in (0, 7):
            seq += 1
            payload = encode_certify(window, table.thresholds, table.offset, 1000 + i, first, n)
            f = link.request(CERTIFY, seq, payload)
            assert (f.type, f.seq) == (CERTIFY_OK, seq), parse_error(f.payload) if f.type == ERROR else f
            res = CertifyResult.decode(f.payload)
            assert list(res.counts) == simulate(window, table, 1000 + i, first, n)
            costs.append(res.cost)
    return seq


def check_rejects(link: Link, seq: int) -> None:
    table = N.make_table(2.0)
    window = bytes(_model().N)
    good = encode_certify(window, table.thresholds, table.offset, 1, 0, 3)
    f = link.request(CERTIFY, seq + 1, good[:-1])  # one byte short
    assert f.type == ERROR and parse_error(f.payload) == (4, len(good))  # BAD_LENGTH
    bad = bytearray(good)
    bad[16 + 4 * (table.size - 1) : 16 + 4 * table.size] = b"\0\0\0\0"  # last threshold != 2^31
    f = link.request(CERTIFY, seq + 1, bytes(bad))  # the rejected frame did not count
    assert f.type == ERROR and parse_error(f.payload)[0] == 8  # INFER_FAILED


def test_host_device_counts_equal_simulation(host_build, tmp_path):
    with HostDevice(host_build, workdir=tmp_path) as dev:
        link = Link(path=dev.port)
        try:
            check_rejects(link, check_counts(link, n=40, windows=4))
        finally:
            link.close()


def test_client_certify_on_host_device(host_build, tmp_path):
    from ditmos.harness.client import DeviceClient
    from ditmos.harness.transport import open_transport

    table = N.make_table(5.0)
    window = pc.samples(4, seed=9)[3]
    with HostDevice(host_build, workdir=tmp_path) as dev:
        tr = open_transport(dev.port)
        try:
            c = DeviceClient(tr, timeout=5.0)
            c.hello()
            res = c.certify(window, table.thresholds, table.offset, 77, 3, 25, timeout=30.0)
            assert list(res.counts) == simulate(window, table, 77, 3, 25) and res.cost == 0
            assert c.timeout == 5.0
            assert c.stats().inferences == 25
        finally:
            tr.close()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_qemu_counts_equal_simulation(mps2_build, tmp_path):
    from ditmos.boards.qemu import QemuTarget

    with QemuTarget(mps2_build, workdir=tmp_path) as target:
        link = Link(address=target.address)
        try:
            check_counts(link, n=20, windows=3)
        finally:
            link.close()
