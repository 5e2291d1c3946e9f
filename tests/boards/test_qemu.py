"""The mps2_an500 firmware in QEMU: real frames over the emulated UART on a
loopback TCP socket, instruction-count marks from the project's plugin."""

from __future__ import annotations

import shutil
import time

import pytest

from ditmos.boards.qemu import QemuTarget
from ditmos.errors import DitmosError
from firmware import protocol_checks as pc
from firmware.frames import HELLO, RESET, STATS, Link, parse_hello, parse_stats

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")


def read_marks(path, want_lines: int, timeout: float = 5.0) -> list[tuple[int, int]]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.startswith("mark ")]
        if len(lines) >= want_lines or time.monotonic() > deadline:
            return [(int(a), int(b)) for _, a, b in lines]
        time.sleep(0.02)


@pytest.fixture(scope="module")
def qemu(mps2_build, tmp_path_factory):
    with QemuTarget(mps2_build, workdir=tmp_path_factory.mktemp("qemu")) as target:
        link = Link(address=target.address)
        yield target, link
        link.close()


def test_hello(qemu):
    _, link = qemu
    h = pc.check_hello(link, "mps2_an500", cost_kind=1, seq=3)
    assert h["boots"] == 1 and h["clock"] == 25_000_000
    assert h["profiling_layers"] == 2
    assert 0 < h["flash_used"] < 64 * 1024 and 8192 < h["ram_used"] < 64 * 1024


def test_infer_equals_host_reference_with_instruction_marks(qemu):
    target, link = qemu
    link.request(HELLO, 0)
    before = len(read_marks(target.plugin_log, 0, timeout=0))
    inputs = pc.samples(12, seed=1)
    inputs.append(inputs[-1])  # the same input twice: the same instruction count
    _, answers = pc.check_infer_matches_reference(link, 0, inputs)
    for r in answers:
        assert r["cost"] == 0 and r["layer_cost"] == [0, 0]  # counts come from the plugin
    marks = read_marks(target.plugin_log, before + 4 * len(inputs))[before:]
    assert [m[0] for m in marks] == [0, 2, 3, 1] * len(inputs)
    costs = [marks[i + 3][1] - marks[i][1] for i in range(0, len(marks), 4)]
    layers = [(marks[i + 1][1] - marks[i][1], marks[i + 2][1] - marks[i + 1][1]) for i in range(0, len(marks), 4)]
    assert all(200 < c < 20_000 for c in costs), costs
    assert costs[-1] == costs[-2] and layers[-1] == layers[-2]
    assert all(a + b < c for (a, b), c in zip(layers, costs))


def test_malformed_frames_get_errors(qemu):
    _, link = qemu
    link.request(HELLO, 200)
    seq = pc.check_malformed(link, 200)
    assert parse_stats(link.request(STATS, seq + 1).payload)["errors"] >= 8


def test_retransmission_and_stack_high_water(qemu):
    _, link = qemu
    link.request(HELLO, 300)
    seq = pc.check_retransmission_and_stats(link, 300)
    s = parse_stats(link.request(STATS, seq + 1).payload)
    assert s["stack_size"] == 8192
    assert 64 < s["stack_high_water"] < 8192  # measured by stack painting


def test_reset_keeps_the_boot_counter_in_noinit_ram(qemu):
    target, link = qemu
    boots = parse_hello(link.request(HELLO, 1).payload)["boots"]
    f = link.request(RESET, 2)
    assert f.type == 0x84
    time.sleep(0.3)
    h = parse_hello(link.request(HELLO, 5).payload)
    assert h["boots"] == boots + 1
    assert target.running()


def test_stop_ends_qemu(mps2_build, tmp_path):
    t = QemuTarget(mps2_build, workdir=tmp_path).start()
    assert t.running()
    t.stop()
    assert not t.running() and t.proc is None


def test_target_refuses_a_nucleo_build(nucleo_build):
    with pytest.raises(DitmosError, match="QEMU cannot emulate"):
        QemuTarget(nucleo_build)


def test_many_back_to_back_frames(qemu):
    """Hundreds of requests, several per TCP write: none lost (guards the
    UART receive-interrupt race: clear, then drain)."""
    from firmware.frames import encode

    _, link = qemu
    link.request(HELLO, 1000)
    seq = 1000
    x = pc.samples(4, seed=9)[3]
    for burst in range(60):
        frames = b""
        for _ in range(5):
            seq += 1
            frames += encode(STATS if burst % 2 else 0x02, seq, b"" if burst % 2 else x)
        link.write(frames)
        for k in range(5):
            f = link.read_frame(timeout=5)
            assert f.seq == seq - 4 + k and f.type in (0x82, 0x83), f
