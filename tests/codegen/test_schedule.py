"""The composed schedule and its memory plan per strategy."""

from __future__ import annotations

import json

import pytest

from ditmos.codegen import load_int8_dir, plan_all, schedule
from ditmos.errors import DitmosError


@pytest.fixture(scope="module")
def model(cg_int8):
    return load_int8_dir(cg_int8)


def _concat_steps(s):
    return [st for p in s.programs.values() for st in p.steps if st.kind == "copy"]


def test_slicing_builds_a_concatenation_only_where_a_non_conv_reads_it(model):
    manifest, graphs = model
    s = schedule.build(manifest, graphs, "slicing")
    # classifier_2's concatenation feeds a max pool: the only one built
    assert [st.program for st in _concat_steps(s)] == ["classifier_2"]
    multi = [
        st.call
        for p in s.programs.values()
        for st in p.steps
        if st.kind == "call" and st.call.kernel == "dtm_conv1d_s8" and st.call.fields["num_parts"] == 2
    ]
    assert len(multi) == 2  # classifiers 0 and 1: a two-part conv over [own ; selector]
    for call in multi:
        # the second part is the selector's feature map itself, never copied
        assert call.inputs[1] == s.programs["selector"].outputs["feat_1"]
    s.plan.check()


def test_greedy_materialises_concat_and_every_plan_is_consistent(model):
    manifest, graphs = model
    sizes = {}
    for strat in schedule.STRATEGIES:
        s = schedule.build(manifest, graphs, strat)
        s.plan.check()
        sizes[strat] = s.plan.arena_size
        if strat != "slicing":
            assert len(_concat_steps(s)) == manifest["K"]
        # only selector values and the selector features outlive the selector
        sel_end = len(s.programs["selector"].steps) - 1
        long_lived = {v.name for v in s.values.values() if v.group is None and v.name != "input" and v.last > sel_end}
        assert long_lived == {s.programs["selector"].outputs["feat_1"]}
    assert sizes["slicing"] <= sizes["greedy"] <= sizes["none"]


def test_slicing_peak_close_to_largest_single_submodel(model):
    manifest, graphs = model
    res = plan_all(*model)
    assert res["peak_bytes"]["slicing"] <= 1.05 * res["max_single_bytes"]
    json.dumps(res)


def test_recompute_frees_selector_features(model):
    manifest, graphs = model
    s = schedule.build(manifest, graphs, "slicing", recompute=("feat_1",))
    s.plan.check()
    feat = s.programs["selector"].outputs["feat_1"]
    sel_end = len(s.programs["selector"].steps) - 1
    assert s.values[feat].last <= sel_end  # no longer kept for the classifiers
    re_steps = [st for p in s.programs.values() for st in p.steps if st.recompute]
    assert len(re_steps) >= 2 * manifest["K"]  # conv + pool per classifier


def test_unknown_strategy(model):
    with pytest.raises(DitmosError, match="unknown memory strategy 'best'"):
        schedule.build(*model, strategy="best")


def test_bench_memory_json(cg_int8):
    from click.testing import CliRunner

    from ditmos.bench.memory import command

    res = CliRunner().invoke(command, ["--run", str(cg_int8.parent), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data["peak_bytes"]) == {"slicing", "greedy", "none"}
    assert set(data["tflm_arena_bytes"]) == {"selector", "classifier_0", "classifier_1", "classifier_2"}
    assert data["max_single_bytes"] == max(data["single_bytes"].values())
    assert data["targets"]["slicing_peak_le_1.05_max_single"]
    assert data["targets"]["each_single_le_tflm_arena"]
    # the TFLM figures are labelled for what they are: the 64-bit host interpreter's
    assert data["tflm_arena_source"].startswith("host-64bit")
    assert all(data["tflm_head_bytes"][n] <= data["tflm_arena_bytes"][n] for n in data["tflm_arena_bytes"])
    text = CliRunner().invoke(command, ["--run", str(cg_int8.parent)]).output
    assert "64-bit host interpreter" in text


def test_bench_memory_without_int8_dir(tmp_path):
    from click.testing import CliRunner

    from ditmos.bench.memory import command

    res = CliRunner().invoke(command, ["--run", str(tmp_path)])
    assert res.exit_code != 0
    assert "run `ditmos quantize" in str(res.exception)


def test_generated_identifiers_are_validated():
    from ditmos.codegen.render import c_identifier, comment

    assert c_identifier("selector_l0_conv1d") == "selector_l0_conv1d"
    for bad in ("0abc", "a-b", "int", "x" * 64, "a b"):
        with pytest.raises(DitmosError, match="not a valid C identifier"):
            c_identifier(bad)
    assert "*/" not in comment("evil */ name")
