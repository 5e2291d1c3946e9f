"""``ditmos bench latency`` on the session's tiny quantised run: both kernel
sets built for mps2-an500 and run in QEMU with the instruction-count plugin."""

from __future__ import annotations

import json
import shutil

import pytest

from ditmos.cli import main
from ditmos.errors import DitmosError

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc and qemu-system-arm are installed by scripts/setup.sh",
)


@needs_arm
def test_latency_bench_counts_both_kernel_sets(tiny_run, tiny_int8, tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "latency",
                "--run",
                str(tiny_run),
                "--samples",
                "2",
                "--work-dir",
                str(tmp_path / "work"),
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["samples"] == 2
    assert res["mismatches"] == {"ref": 0, "cm7": 0}
    pipe = res["input_pipeline"]  # hapt's int16 counts prepared on the device, counted apart
    assert pipe["raw"] == "i16" and pipe["instructions"] > 0
    assert pipe["share"] == pytest.approx(pipe["instructions"] / pipe["with_inference"])
    ref, opt, macs = res["reference_instructions"], res["optimized_instructions"], res["macs"]
    assert macs > 0 and 0 < opt < ref
    assert res["ratio"] == pytest.approx(ref / opt)
    assert res["optimized_per_mac"] == pytest.approx(opt / macs)
    layers = res["layers"]
    assert {e["program"] for e in layers} >= {"selector"}
    assert any(e["program"].startswith("classifier_") for e in layers)
    for e in layers:
        assert e["samples"] >= 1 and e["reference_instructions"] > 0
        assert e["optimized_instructions"] > 0
    # each sample runs the selector and its routed classifier: the MACs add up
    assert sum(e["macs"] * e["samples"] for e in layers) / res["samples"] == pytest.approx(macs)
    assert all(e["samples"] == res["samples"] for e in layers if e["program"] == "selector")
    # the layers account for nearly all of an inference (the rest is routing and marks)
    per_sample = sum(e["optimized_instructions"] * e["samples"] for e in layers) / res["samples"]
    assert 0.9 * opt <= per_sample <= opt
    conv = [e for e in layers if e["kind"] == "conv1d"]
    assert conv and all(e["ratio"] > 2 for e in conv)
    assert all(e["reference_kernel"] == "dtm_conv1d_s8" for e in conv)
    # the cm7 build picks the register-blocked variant where the layer qualifies
    assert any(e["kernel"] == "dtm_conv1d_packed_s8" for e in conv)
    assert res["floor_per_mac"] == 0.5
    assert res["optimized_vs_floor"] == pytest.approx(res["optimized_per_mac"] / 0.5)


def test_latency_bench_needs_a_quantised_run(tmp_path):
    from ditmos.bench.latency import measure_latency

    with pytest.raises(DitmosError, match="ditmos quantize"):
        measure_latency(tmp_path)
    with pytest.raises(DitmosError, match="--samples"):
        (tmp_path / "int8").mkdir()
        (tmp_path / "int8" / "manifest.json").write_text("{}")
        measure_latency(tmp_path, samples=0)


@needs_arm
def test_latency_bench_counts_an_early_exit_network_per_exit(tiny_early_exit, tmp_path):
    """A single network with early exits: each sample runs the layers up to the
    exit it took, and the per-exit rows carry the MACs the generator lists for
    that exit."""
    from ditmos.bench.latency import format_latency, measure_latency

    res = measure_latency(tiny_early_exit, samples=6, work_dir=tmp_path / "work")
    assert res["mismatches"] == {"ref": 0, "cm7": 0}
    man = json.loads((tmp_path / "work" / "build_cm7" / "model" / "manifest.json").read_text())
    exits = man["exits"]
    routes = res["routes"]
    assert sum(e["samples"] for e in routes) == 6 and len(routes) >= 2  # the fixture splits the windows
    for e in routes:
        assert e["macs"] == exits[e["route"]]["macs"]
        assert e["optimized_instructions"] > e["macs"] and e["instructions_minus_macs"] > 0
    costs = [e["optimized_instructions"] for e in routes]
    assert costs == sorted(costs)  # a later exit runs more layers
    layers = res["layers"]
    assert {e["program"] for e in layers} == {"network"}
    for e in layers:  # a layer runs in every sample that left at or after its exit
        first_exit = min(x["exit"] for x in exits if e["layer_index"] < x["layers"])
        assert e["samples"] == sum(r["samples"] for r in routes if r["route"] >= first_exit)
    assert res["macs"] == pytest.approx(sum(e["macs"] * e["samples"] for e in routes) / 6)
    assert "per route" in format_latency(res)
