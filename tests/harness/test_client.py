"""Client logic: sequence numbers, retries, reboot detection (against a protocol peer)."""

import pytest

from ditmos.errors import DitmosError
from ditmos.harness.client import DeviceClient, DeviceRejected, DeviceTimeout
from ditmos.harness.faults import FaultPlan, FaultProxy
from ditmos.harness.protocol import MsgType
from ditmos.harness.transport import SerialTransport

from tests.harness.pydevice import PyDevice, toy_model


def _samples(n, size=12):
    return [bytes(((i * 31 + j * 7) % 256) for j in range(size)) for i in range(n)]


def test_hello_infer_stats_and_sequence_numbers():
    with PyDevice() as dev, SerialTransport(dev.path).open() as tr:
        c = DeviceClient(tr, timeout=0.5)
        info = c.hello()
        assert info.model_hash == "0123456789abcdef" and info.board_name == "pydevice"
        for s in _samples(5):
            assert c.infer(s) == toy_model(s)
        st = c.stats()
        assert st.inferences == 5
        seqs = [seq for _, seq in dev.received]
        assert seqs == list(range(len(seqs)))  # each new request is last + 1
        assert c.counters.retransmissions == 0


def test_lost_answer_is_retransmitted_with_the_same_sequence_number():
    with PyDevice() as dev, SerialTransport(dev.path).open() as tr:
        c = DeviceClient(tr, timeout=0.3)
        c.hello()
        dev.drop_next_answers = 2
        s = _samples(1)[0]
        assert c.infer(s) == toy_model(s)
        infer_seqs = [seq for t, seq in dev.received if t == MsgType.INFER]
        assert infer_seqs == [1, 1, 1]
        assert c.counters.timeouts == 2 and c.counters.retransmissions == 2
        assert c.reboots == []  # the HELLO probe after the retries saw the same boot counter


def test_reboot_between_requests_is_detected_by_the_probe():
    with PyDevice() as dev, SerialTransport(dev.path).open() as tr:
        seen = []
        c = DeviceClient(
            tr, timeout=0.3, probe_every=3, on_reboot=lambda a, b: seen.append((a.boot_counter, b.boot_counter))
        )
        c.hello()
        results = []
        for i, s in enumerate(_samples(6)):
            if i == 1:
                dev.reboot_before_next = True
            results.append(c.infer(s))
        assert results == [toy_model(s) for s in _samples(6)]
        assert seen == [(1, 2)] and len(c.reboots) == 1


def test_device_that_never_answers_times_out_with_a_clear_message():
    with PyDevice() as dev, SerialTransport(dev.path).open() as tr:
        dev.drop_next_answers = 100
        c = DeviceClient(tr, timeout=0.1, retries=2)
        with pytest.raises(DeviceTimeout, match=r"did not answer HELLO .* 3 attempts"):
            c.hello()


def test_wrong_input_length_is_reported_with_the_device_error():
    with PyDevice(input_size=12) as dev, SerialTransport(dev.path).open() as tr:
        c = DeviceClient(tr, timeout=0.3, retries=1)
        c.hello()
        with pytest.raises(DeviceRejected, match="BAD_LENGTH .detail 12."):
            c.infer(b"\0" * 11)


def test_unknown_protocol_version_is_refused():
    with PyDevice(protocol_version=9) as dev, SerialTransport(dev.path).open() as tr:
        with pytest.raises(DitmosError, match="protocol version 9.*reflash"):
            DeviceClient(tr, timeout=0.3).hello()


def test_faults_on_the_link_lose_and_duplicate_nothing():
    samples = _samples(60)
    plan = FaultPlan(seed=3, drop_rate=0.004, flip_rate=0.004, stall_rate=0.03, stall_seconds=0.25, reboot_at=(20, 45))
    with PyDevice() as dev, FaultProxy(dev.path, plan) as proxy, SerialTransport(proxy.url).open() as tr:
        c = DeviceClient(tr, timeout=0.2, retries=20)
        c.hello()
        got = [c.infer(s) for s in samples]
    assert got == [toy_model(s) for s in samples]
    inj = proxy.injected
    assert inj["dropped"] > 0 and inj["flipped"] > 0 and inj["stalls"] > 0 and inj["reboots"] == 2
    assert len(c.reboots) == 2
    assert c.counters.retransmissions > 0


def test_bad_sequence_is_recovered_with_a_hello():
    with PyDevice() as dev, SerialTransport(dev.path).open() as tr:
        c = DeviceClient(tr, timeout=0.3)
        c.hello()
        s = _samples(2)
        assert c.infer(s[0]) == toy_model(s[0])
        dev._last_seq = 500  # the device's idea of the sequence is now far off
        assert c.infer(s[1]) == toy_model(s[1])
        assert c.counters.resyncs == 1 and c.reboots == []


def test_nul_padded_model_hash():
    from ditmos.harness.protocol import HelloInfo

    h = HelloInfo(1, 2, 0, 1, "abc", 2, 2, 2, 2, 1.0, 0, 0, 0, 0, 0, "x")
    raw = h.encode()
    assert raw[10:26] == b"abc" + b"\0" * 13
    assert HelloInfo.decode(raw).model_hash == "abc"


def test_a_frame_of_another_protocol_version_is_refused_before_decoding():
    import os
    import threading

    from ditmos.harness.protocol import FrameDecoder, encode_frame

    master, slave = os.openpty()
    import tty

    tty.setraw(slave)

    def device():  # answers HELLO with a version-2 frame whose payload layout is unknown
        dec = FrameDecoder()
        while True:
            for f in dec.feed(os.read(master, 4096)):
                os.write(master, encode_frame(MsgType.HELLO_OK, f.seq, b"\x02\x00", version=2))
                return

    t = threading.Thread(target=device, daemon=True)
    t.start()
    try:
        with SerialTransport(os.ttyname(slave)).open() as tr:
            with pytest.raises(DitmosError, match="protocol version 2.*rebuild the firmware"):
                DeviceClient(tr, timeout=0.5).hello()
    finally:
        t.join(2)
        os.close(master)
        os.close(slave)
