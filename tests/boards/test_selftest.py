"""`ditmos selftest` against the host-compiled firmware on a pseudo-terminal
(the fake device), given a cycle counter at a stated clock by build switches:
a healthy board passes; a wrong clock, a failed bring-up, a different answer
and a silent port fail with what to fix."""

from __future__ import annotations

import json
import os
import re
import shutil
import tty

import pytest

from ditmos.boards.build import build_project
from ditmos.boards.host import HostDevice
from ditmos.cli import main

CLOCK = 100_000_000  # a 32-bit counter at 100 MHz wraps after 42 s


def _host(tmp_path_factory, fixture_model_dir, name, **defines):
    return build_project("host", fixture_model_dir, tmp_path_factory.mktemp(name),
                         extra_defines=defines)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory, fixture_model_dir):
    return _host(tmp_path_factory, fixture_model_dir, "healthy", DITMOS_HOST_CLOCK_HZ=CLOCK)


@pytest.fixture(scope="module")
def broken(tmp_path_factory, fixture_model_dir):
    """States 100 MHz but counts 10 % slower, and reports a failed PLL (0x82)."""
    return _host(tmp_path_factory, fixture_model_dir, "broken", DITMOS_HOST_CLOCK_HZ=CLOCK,
                 DITMOS_HOST_CYCLE_HZ=CLOCK * 9 // 10, DITMOS_HOST_CLOCK_STATUS="0x82u")


def _selftest(build, capsys, *extra, port=None):
    with HostDevice(build) as dev:
        rc = main(["selftest", "--port", port or dev.port, "--build", str(build),
                   "--seconds", "1", *extra])
    return rc, capsys.readouterr().out


def _verdicts(out: str) -> dict:
    return {m.group(2): m.group(1)
            for m in re.finditer(r"^(PASS|FAIL|SKIP)\s+(link|clock|known answer|stack|timing)\b",
                                 out, re.M)}


def test_a_healthy_device_passes(healthy, capsys):
    rc, out = _selftest(healthy, capsys)
    assert rc == 0, out
    assert _verdicts(out) == {"link": "PASS", "clock": "PASS", "known answer": "PASS",
                              "stack": "SKIP", "timing": "PASS"}
    assert "core clock 100 MHz, bring-up ok" in out
    mhz = float(re.search(r"cycles in [\d.]+ s of host time: ([\d.]+) MHz", out).group(1))
    assert abs(mhz - 100) < 5
    assert "selftest: 4 passed, 0 failed" in out


def test_wrong_clock_and_failed_bring_up_are_reported_with_fixes(broken, capsys):
    rc, out = _selftest(broken, capsys)
    assert rc == 1
    v = _verdicts(out)
    assert v["clock"] == "FAIL" and v["timing"] == "FAIL" and v["known answer"] == "PASS"
    assert "PLL never locked" in out and "16 MHz oscillator" in out
    assert re.search(r"against the stated 100 MHz \(-1\d\.\d %\)", out), out
    assert out.count("fix: ") == 2
    assert "selftest: 2 passed, 2 failed (clock, timing)" in out


def test_a_different_answer_fails(healthy, tmp_path, capsys):
    build = tmp_path / "b"
    shutil.copytree(healthy, build)
    m = json.loads((build / "manifest.json").read_text())
    m["known_answer"]["scores"][0] += 1
    (build / "manifest.json").write_text(json.dumps(m))
    rc, out = _selftest(build, capsys)
    assert rc == 1 and _verdicts(out)["known answer"] == "FAIL"
    assert "not this build (flash it again)" in out


def test_another_model_on_the_board_is_named(healthy, tmp_path, capsys):
    build = tmp_path / "b"
    shutil.copytree(healthy, build)
    m = json.loads((build / "manifest.json").read_text())
    m["model_hash"] = "0123456789abcdef"
    (build / "manifest.json").write_text(json.dumps(m))
    rc, out = _selftest(build, capsys)
    assert rc == 1 and "runs model 5eed0000f17e5eed, the build holds 0123456789abcdef" in out
    assert "ditmos flash" in out


def test_a_silent_port_fails_quickly_with_advice(healthy, capsys):
    controller, device = os.openpty()  # nothing answers on this terminal
    tty.setraw(device)
    try:
        rc = main(["selftest", "--port", os.ttyname(device), "--build", str(healthy),
                   "--timeout", "0.3"])
    finally:
        os.close(controller)
        os.close(device)
    out = capsys.readouterr().out
    assert rc == 1 and _verdicts(out) == {"link": "FAIL"}
    assert "no answer to HELLO" in out and "baud rate" in out


def test_missing_build_is_a_one_line_error(tmp_path, capsys):
    assert main(["selftest", "--port", "/dev/null", "--build", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is missing")
def test_the_cortex_m7_firmware_in_qemu_passes(mps2_build, tmp_path, capsys):
    """The Arm build (cm7 kernels, our reset handler and HELLO fields) gives the
    known answer the host computed with the reference kernels."""
    from ditmos.boards.qemu import QemuTarget

    with QemuTarget(mps2_build, workdir=tmp_path) as target:
        rc = main(["selftest", "--port", target.url, "--build", str(mps2_build)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert _verdicts(out) == {"link": "PASS", "clock": "PASS", "known answer": "PASS",
                              "stack": "PASS", "timing": "SKIP"}
    assert "core clock 25 MHz, bring-up ok" in out
