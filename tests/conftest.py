"""Session-wide fixtures shared by every stage's tests.

Training is the expensive part, so a real but tiny DiTMoS run (hapt subset) is
trained once per test session and quantised once; tests that need a trained
model, an int8 directory or a host reference use these fixtures instead of
training their own.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# As ditmos/__init__.py does, also for a test that imports TensorFlow before ditmos.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real, very short DiTMoS training run on a hapt subset (run directory)."""
    from ditmos.training.testing import tiny_run as make_tiny_run

    return Path(make_tiny_run(tmp_path_factory.mktemp("tiny_run")))


@pytest.fixture(scope="session")
def tiny_int8(tiny_run) -> Path:
    """The tiny run quantised to full int8 (``RUN_DIR/int8``)."""
    from ditmos.quantize import quantize_run

    return Path(quantize_run(tiny_run, calibration_samples=200, quiet=True))


@pytest.fixture(scope="session")
def host_model_build(tiny_int8, tmp_path_factory) -> Path:
    """The host-board firmware of the tiny run's int8 model (a build directory)."""
    from ditmos.boards.build import build_firmware

    return Path(build_firmware("host", tiny_int8, tmp_path_factory.mktemp("tiny_host")))


@pytest.fixture(scope="session")
def tiny_run_fsdd(tmp_path_factory) -> Path:
    """The same tiny DiTMoS run on an fsdd subset (MFCC frames, ``mfcc`` family)."""
    from ditmos.training.testing import tiny_run as make_tiny_run

    return Path(make_tiny_run(tmp_path_factory.mktemp("tiny_run_fsdd"), dataset="fsdd"))


@pytest.fixture(scope="session")
def tiny_int8_fsdd(tiny_run_fsdd) -> Path:
    """The tiny fsdd run quantised to full int8 (``RUN_DIR/int8``)."""
    from ditmos.quantize import quantize_run

    return Path(quantize_run(tiny_run_fsdd, calibration_samples=200, quiet=True))


@pytest.fixture(scope="session")
def tiny_compare(tiny_run, tmp_path_factory) -> Path:
    """What `ditmos train --out RUN --compare --widths 0.5,1` makes, kept small
    for CI (read-only for its users): a copy of the tiny run, one more DiTMoS
    width, the ablation without aggregation, and of the trained baselines the
    equal-MACs and equal-params CNNs (one epoch, one depth); the strong model
    and the ensemble come with the run."""
    import shutil

    from ditmos.training.compare import run_compare
    from ditmos.training.sweep import make_executor

    run = tmp_path_factory.mktemp("cmp") / "run"
    shutil.copytree(tiny_run, run)
    out = run_compare(
        run,
        widths=(0.5, 1.0),
        quiet=True,
        ablation_names=("no_aggregation",),
        executor=make_executor(no_ray=True),
        baseline_overrides={
            "epochs": 1,
            "depths": [2],
            "only": ["weak_equal_macs", "equal_params", "strong", "ensemble_average"],
        },
    )
    assert out == run / "compare"
    return run


@pytest.fixture(scope="session")
def tiny_compare_networks(tiny_run, tmp_path_factory) -> Path:
    """A copy of the tiny run with a comparison at its own width holding the
    single CNNs' deployable kind: the equal-MACs CNN and the early-exit CNN,
    one epoch each (their trained networks saved as network runs)."""
    import shutil

    from ditmos.training.compare import run_compare
    from ditmos.training.sweep import make_executor

    run = tmp_path_factory.mktemp("cmp_networks") / "run"
    shutil.copytree(tiny_run, run)
    run_compare(
        run,
        widths=(1.0,),
        quiet=True,
        ablation_names=(),
        executor=make_executor(1),
        baseline_overrides={"epochs": 1, "depths": [2], "only": ["weak_equal_macs", "early_exit"]},
    )
    return run


@pytest.fixture(scope="session")
def tiny_early_exit(tiny_compare_networks, tmp_path_factory) -> Path:
    """The early-exit CNN's network run, quantised, copied, with each
    intermediate exit's int8 threshold moved to the median confidence of the
    test windows so that every path is taken (what the device must follow bit
    for bit; one epoch of training picks no useful threshold of its own)."""
    import json
    import shutil

    import numpy as np

    from ditmos.methods import method_run_dir
    from ditmos.quantize import quantize_run
    from ditmos.quantize.reference import NetworkReference
    from ditmos.training.rundir import load_run_data

    quantize_run(tiny_compare_networks, method="early_exit", calibration_samples=100, quiet=True)
    src = method_run_dir(tiny_compare_networks, "early_exit")
    run = tmp_path_factory.mktemp("early_exit") / "run"
    shutil.copytree(src, run)
    ref = NetworkReference(run / "int8")
    x_q = ref.quantize_input(load_run_data(run).x_test)
    outs = ref.run_all(x_q)
    manifest = json.loads((run / "int8" / "manifest.json").read_text())
    for ex in manifest["exits"]:
        conf = outs[ex["confidence"]].max(axis=1).astype(int)
        # the threshold splitting the windows most evenly (some exit, some go on)
        cands = np.unique(conf)[1:] if len(np.unique(conf)) > 1 else np.unique(conf)
        ex["threshold_q"] = int(min(cands, key=lambda u: abs(np.mean(conf >= u) - 0.5)))
    (run / "int8" / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run
