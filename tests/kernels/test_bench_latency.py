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


def test_latency_summary_of_an_early_exit_network_follows_its_exits(tiny_early_exit, tmp_path):
    """A single network with early exits: each inference runs the layers up to
    the exit it took (the host reference's exits for the first test windows),
    so per exit the layers' MACs add up to the MACs the generator lists for
    that exit, and each layer counts the windows that reached it.  Per-layer
    instruction counts are stand-ins here (the QEMU counts are covered by the
    test above on a composed model); the aggregation is what is checked."""
    from ditmos.bench.latency import format_latency, summarize
    from ditmos.codegen import generate
    from ditmos.quantize.reference import NetworkReference
    from ditmos.training.rundir import load_run_data

    cg = generate(tiny_early_exit / "int8", tmp_path / "gen", kernels="cm7", profile=True)
    exits = cg["exits"]
    ref = NetworkReference(tiny_early_exit / "int8")
    _, route, _ = ref.predict(ref.quantize_input(load_run_data(tiny_early_exit).x_test[:40]))
    assert len(set(route.tolist())) >= 2  # the fixture's thresholds split the windows
    n_layers = exits[-1]["layers"]

    def records(scale):
        out = []
        for i, r in enumerate(route.tolist()):
            lc = [scale * (100 + j) if j < exits[r]["layers"] else 0 for j in range(n_layers)]
            out.append({"index": i, "route": r, "layer_cost": lc, "cost": sum(lc) + 7})
        return out

    res = summarize(
        {"records": records(10), "codegen": cg, "raw": None, "mismatches": 0},
        {"records": records(1), "codegen": cg, "raw": None, "mismatches": 0},
    )
    by_route = {e["route"]: e for e in res["routes"]}
    assert set(by_route) == set(route.tolist())
    for r, e in by_route.items():
        assert e["macs"] == exits[r]["macs"] and e["samples"] == int((route == r).sum())
        assert e["optimized_instructions"] == sum(100 + j for j in range(exits[r]["layers"])) + 7
        assert e["reference_instructions"] == 10 * (e["optimized_instructions"] - 7) + 7
    assert {e["program"] for e in res["layers"]} == {"network"}
    for e in res["layers"]:  # a layer runs in every window that left at or after its exit
        first = min(x["exit"] for x in exits if e["layer_index"] < x["layers"])
        assert e["samples"] == int((route >= first).sum())
        assert e["optimized_instructions"] == 100 + e["layer_index"] and e["ratio"] == 10
    assert res["macs"] == pytest.approx(sum(exits[r]["macs"] for r in route.tolist()) / len(route))
    assert "per route" in format_latency(res)
