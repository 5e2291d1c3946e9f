"""`ditmos build --pick best`: every deployable method of the comparison is
built, measured and the most accurate on validation that fits the limits is
deployed; the others say why they were rejected."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from ditmos.boards.cli import build
from ditmos.boards.pick import pick_best
from ditmos.errors import DitmosError
from ditmos.methods import method_run_dir


@pytest.fixture(scope="module")
def picked_run(tiny_compare_networks, tmp_path_factory):
    """A copy of the comparison fixture with DiTMoS, the equal-MACs CNN and the
    early-exit CNN quantised (each quantised only when not already)."""
    from ditmos.quantize import quantize_run

    run = tmp_path_factory.mktemp("pick") / "run"
    shutil.copytree(tiny_compare_networks, run)
    for m in ("ditmos", "weak_equal_macs", "early_exit"):
        if not (method_run_dir(run, m) / "int8" / "manifest.json").is_file():
            quantize_run(run, method=m, calibration_samples=100, quiet=True)
    return run


def test_limits_that_exclude_the_best_pick_the_next_and_impossible_ones_fail(picked_run, tmp_path):
    cands, best = pick_best("host", picked_run)
    by = {c.method: c for c in cands}
    assert set(by) == {"ditmos", "weak_equal_macs", "early_exit"}
    assert all(c.flash and c.ram for c in cands) and not any(c.rejected for c in cands)
    assert best.val_accuracy == max(c.val_accuracy for c in cands)

    others = [c for c in cands if c is not best]
    key = "flash" if any(c.flash < best.flash for c in others) else "ram"
    limit = getattr(best, key) - 1
    fit = [c for c in others if getattr(c, key) <= limit]
    assert fit, "no candidate smaller than the best in flash or RAM"
    expected = max(fit, key=lambda c: c.val_accuracy)
    r = CliRunner().invoke(
        build,
        [
            "--board",
            "host",
            "--run",
            str(picked_run),
            "--pick",
            "best",
            f"--max-{key}",
            str(limit),
            "--out",
            str(tmp_path / "pick"),
        ],
    )
    assert r.exit_code == 0, r.output
    lines = {ln.split()[0]: ln for ln in r.output.splitlines() if ln.split()}
    assert lines[expected.method].endswith("picked")
    assert f"rejected: {key if key == 'flash' else 'RAM'} {getattr(best, key)} B > {limit} B" in lines[best.method]
    got = json.loads((tmp_path / "pick" / "manifest.json").read_text())
    assert got["int8_dir"] == str((method_run_dir(picked_run, expected.method) / "int8").resolve())
    # the figures compared are the deployed image's own
    assert (got["memory"]["flash"]["total"], got["memory"]["ram"]["total"]) == (expected.flash, expected.ram)

    r = CliRunner().invoke(
        build,
        [
            "--board",
            "host",
            "--run",
            str(picked_run),
            "--pick",
            "best",
            "--max-ram",
            "1",
            "--out",
            str(tmp_path / "none"),
        ],
    )
    assert r.exit_code != 0 and isinstance(r.exception, DitmosError)
    assert str(r.exception) == ("no method of the comparison fits the limits (--max-ram 1); nothing was built")
    assert r.output.count("rejected: RAM") == 3 and "picked" not in r.output
    assert not (tmp_path / "none").exists()


def test_bad_combinations_are_one_line_errors(picked_run):
    # the host board has no clock: a latency limit needs a measured evaluation
    with pytest.raises(DitmosError, match="no method of the comparison fits") as err:
        pick_best("host", picked_run, max_latency_ms=1000)
    assert all(
        c.rejected == ["latency unknown on host (no clock and no measured evaluation: give --eval)"] and c.flash is None
        for c in err.value.candidates
    )
    run = CliRunner()
    r = run.invoke(build, ["--board", "host", "--run", str(picked_run), "--pick", "best", "--method", "early_exit"])
    assert r.exit_code != 0 and "either --pick or --method" in str(r.exception)
    r = run.invoke(build, ["--board", "host", "--run", str(picked_run), "--max-ram", "10"])
    assert r.exit_code != 0 and "--max-ram: only with --pick best" in str(r.exception)
    lone = method_run_dir(picked_run, "early_exit")
    with pytest.raises(DitmosError, match="has no comparison"):
        pick_best("host", lone)
