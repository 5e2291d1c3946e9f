"""The Nucleo's clock bring-up never hangs and always ends in a known clock:
the real firmware code (stm32f767_clock.c) compiled for the host against a
register model in which any ready flag can be made to never come, and which
stops with an error when the code breaks one of RM0410's sequencing rules
(HSEBYP only with HSE off, PLL configured only while off, no clock source
turned off while it clocks the system, 216 MHz only with 7 flash wait states,
voltage scale 1, over-drive on and APB1/APB2 within 54/108 MHz)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ditmos.paths import firmware_dir

HERE = Path(__file__).parent / "clock"
BAUD = 115200
SPINS = 1_000_000  # F7_CLOCK_SPINS


def _build(tmp: Path, force: int = 0) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to compile the clock model")
    exe = tmp / f"clock_model_{force}"
    fw = firmware_dir()
    cmd = [
        "gcc",
        "-std=c99",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
        f"-DDITMOS_CLOCK_FORCE_TIMEOUT={force}u",
        f"-I{fw / 'boards' / 'nucleo_f767zi'}",
        f"-I{fw / 'boards' / 'cortex_m7'}",
        str(HERE / "clock_model.c"),
        "-o",
        str(exe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return exe


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clock")
    exes = {}

    def run(hse=1, pll=1, od=1, odsw=1, flash=1, switch=1, force=0) -> dict:
        if force not in exes:
            exes[force] = _build(tmp, force)
        out = subprocess.run(
            [str(exes[force]), *map(str, (hse, pll, od, odsw, flash, switch))],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)

    return run


def brr(pclk: int) -> int:
    return (pclk + BAUD // 2) // BAUD


def assert_on_hsi(r: dict, status: int) -> None:
    """The fallback: 16 MHz from HSI, APB1 undivided, UART set for 16 MHz,
    PLL and over-drive off, and the registers agree with what is reported."""
    assert r["status"] == status | 0x80, r
    assert (r["core_hz"], r["apb1_hz"]) == (r["read_core_hz"], r["read_apb1_hz"]) == (16_000_000, 16_000_000)
    assert r["brr"] == brr(16_000_000) == 139
    assert r["cfgr"] & 0xF == 0 and (r["cfgr"] >> 4) & 0x3FF == 0  # SW = SWS = HSI, /1
    assert not r["cr"] & (1 << 24) and not r["pwr_cr1"] & (3 << 16)  # PLL, over-drive off
    assert not r["cr"] & ((1 << 16) | (1 << 18))  # HSE and its bypass off


def test_everything_works_216_mhz_from_hse(model):
    r = model()
    assert r["status"] == 0
    assert (r["core_hz"], r["apb1_hz"]) == (r["read_core_hz"], r["read_apb1_hz"]) == (216_000_000, 54_000_000)
    assert r["brr"] == brr(54_000_000) == 469
    assert r["pllcfgr"] & (1 << 22) and r["pllcfgr"] & 0x3F == 4  # HSE / 4
    assert r["accesses"] < 100


def test_no_st_link_clock_uses_the_pll_from_hsi(model):
    r = model(hse=0)
    assert r["status"] == 0x01 and r["core_hz"] == r["read_core_hz"] == 216_000_000
    assert not r["pllcfgr"] & (1 << 22) and r["pllcfgr"] & 0x3F == 8  # HSI / 8
    assert r["brr"] == 469


@pytest.mark.parametrize(
    "fault, status",
    [
        (dict(pll=0), 0x02),
        (dict(od=0), 0x04),
        (dict(odsw=0), 0x04),
        (dict(flash=0), 0x08),
        (dict(switch=0), 0x10),
        (dict(hse=0, pll=0), 0x03),
    ],
)
def test_a_missing_flag_times_out_to_hsi(model, fault, status):
    r = model(**fault)
    assert_on_hsi(r, status)
    # Bounded: each failed wait polls at most F7_CLOCK_SPINS times.
    assert r["accesses"] < 3 * SPINS + 100


@pytest.mark.parametrize("force", [0x02, 0x10])
def test_the_build_flag_forces_the_fallback_without_waiting(model, force):
    r = model(force=force)
    assert_on_hsi(r, force)
    assert r["accesses"] < 100  # the forced timeout does not spin
