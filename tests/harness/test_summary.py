"""The evaluation summary names each device's clock and clock bring-up."""

from ditmos.harness.summary import summary_lines


def _report(devices):
    return {
        "samples": 3,
        "samples_planned": 3,
        "complete": True,
        "accuracy": 1.0,
        "accuracy_int8_reference": 1.0,
        "accuracy_float": 1.0,
        "mismatches": 0,
        "mismatch_list": [],
        "latency": {},
        "memory": {},
        "routing": {"device": [3]},
        "devices": devices,
    }


def test_summary_prints_clock_and_bring_up_per_device():
    lines = summary_lines(
        _report(
            [
                {"url": "/dev/ttyACM0", "board": "nucleo_f767zi", "core_clock_hz": 216_000_000, "clock_status": 0},
                {"url": "/dev/ttyACM1", "board": "nucleo_f767zi", "core_clock_hz": 16_000_000, "clock_status": 0x90},
                {"url": "/dev/ttyACM2", "board": "nucleo_f767zi", "core_clock_hz": 216_000_000, "clock_status": None},
            ]
        )
    )
    assert "device /dev/ttyACM0: nucleo_f767zi, core clock 216 MHz, bring-up ok" in lines
    bad = next(ln for ln in lines if ln.startswith("device /dev/ttyACM1"))
    assert "core clock 16 MHz, bring-up FAILED (0x90)" in bad and "never switched" in bad
    assert any("ttyACM2" in ln and "not reported" in ln for ln in lines)
