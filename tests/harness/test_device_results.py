"""The on-device table's Pareto fronts are computed from the measured
figures: a dominated method names who dominates it, DiTMoS's place is stated."""

from __future__ import annotations

from ditmos.harness.device_results import pareto, render


def _row(method, acc, lat, flash, ram):
    return {
        "method": method,
        "exits": None,
        "report": {
            "samples": 100,
            "accuracy": acc,
            "mismatches": 0,
            "route_mismatches": 0,
            "latency": {"available": True, "unit": "instructions", "median": lat, "p95": lat},
            "memory": {"build": {"flash": {"total": flash}, "ram": {"total": ram}}},
            "routing": {"device": [100]},
        },
    }


def test_pareto_fronts_and_where_ditmos_stands():
    rows = [
        _row("ditmos", 0.93, 300_000, 60_000, 20_000),
        _row("weak_equal_macs", 0.95, 250_000, 50_000, 18_000),  # dominates DiTMoS
        _row("equal_params", 0.97, 900_000, 40_000, 30_000),
        _row("early_exit", 0.90, 100_000, 90_000, 25_000),
    ]
    lat = pareto(rows, ("latency",))
    assert lat == {"ditmos": ["weak_equal_macs"], "weak_equal_macs": [], "equal_params": [], "early_exit": []}
    # flash and RAM together: equal-params is cheaper in flash, still not over DiTMoS's RAM
    full = pareto(rows, ("latency", "flash", "ram"))
    assert full["ditmos"] == ["weak_equal_macs"] and full["equal_params"] == []
    text = render(rows, dataset="hapt", preset="quick", board="mps2_an500")
    assert "## Measured Pareto front" in text
    assert (
        "Where DiTMoS stands: 93.00% on the device at 300,000 instructions median; not on "
        "the accuracy vs latency front (dominated by CNN, equal MACs)"
    ) in text
    assert "More accurate on the device: CNN, equal MACs, CNN, equal params." in text
    # a method missing a figure is left out of the fronts, not counted as free
    rows[3]["report"]["latency"] = {"available": False}
    assert "early_exit" not in pareto(rows, ("latency",))
