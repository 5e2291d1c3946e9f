"""Bad input is rejected with a DitmosError that names what is wrong."""

from __future__ import annotations

import json
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from ditmos.errors import DitmosError
from quantize_tflite_build import unary_int8_model
from quantize_toy_export import make_data, write_export


def _fake_run(tmp_path, K=2, skip=()):
    """A run directory skeleton (no training) with a toy export."""
    run = tmp_path / "run"
    run.mkdir()
    for name, text in {
        "config.json": "{}",
        "normalization.json": json.dumps({"mean": [0, 0, 0], "std": [1, 1, 1]}),
    }.items():
        if name not in skip:
            (run / name).write_text(text)
    if "splits.npz" not in skip:
        np.savez(run / "splits.npz", train=np.arange(3), val=np.arange(0), test=np.arange(0))
    if "export" not in skip:
        write_export(run / "export", K=K, fit=False)
    return run


@pytest.mark.parametrize(
    "missing, message",
    [
        ("normalization.json", r"incomplete run directory, missing normalization\.json"),
        ("splits.npz", r"incomplete run directory, missing splits\.npz"),
        ("export", r"export: missing; the run directory is incomplete"),
    ],
)
def test_incomplete_run_dir_names_the_missing_file(tmp_path, missing, message):
    from ditmos.quantize import quantize_run

    run = _fake_run(tmp_path, skip=(missing,))
    with pytest.raises(DitmosError, match=message):
        quantize_run(run, quiet=True)
    assert not (run / "int8").exists()


def test_missing_classifier_model_is_named(tmp_path):
    from ditmos.quantize import quantize_run

    run = _fake_run(tmp_path, K=2)
    (run / "export" / "classifier_1.keras").unlink()
    with pytest.raises(DitmosError, match=r"incomplete run directory, missing classifier_1\.keras"):
        quantize_run(run, quiet=True)


def test_export_json_without_key(tmp_path):
    from ditmos.quantize import quantize_run

    run = _fake_run(tmp_path)
    info = json.loads((run / "export" / "export.json").read_text())
    del info["shared_blocks"]
    (run / "export" / "export.json").write_text(json.dumps(info))
    with pytest.raises(DitmosError, match=r"export\.json: missing key\(s\) shared_blocks"):
        quantize_run(run, quiet=True)


def test_cli_prints_one_line(tmp_path, capsys):
    from ditmos.cli import main

    run = _fake_run(tmp_path, skip=("normalization.json",))
    assert main(["quantize", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing normalization.json" in err


def test_model_with_an_op_the_firmware_lacks(tmp_path):
    """A tanh in a classifier converts to TANH, which the firmware cannot run."""
    from ditmos.quantize.run import load_export, quantize_models

    export = write_export(tmp_path / "export", K=1, head_activation="tanh", fit=False)
    x, _ = make_data(20)
    with pytest.raises(DitmosError, match=r"classifier_0 .*operator #\d+ TANH is not supported"):
        quantize_models(load_export(export), tmp_path / "int8", x, {"mean": [0] * 3, "std": [1] * 3})
    assert not (tmp_path / "int8").exists()


def test_op_check_on_a_hand_built_model():
    from ditmos.quantize.tflite_model import check_firmware_ops, read_tflite

    model = read_tflite(unary_int8_model(schema.BuiltinOperator.LOGISTIC, 4), what="m.tflite")
    with pytest.raises(DitmosError, match="m: operator #0 LOGISTIC is not supported"):
        check_firmware_ops(model, what="m")
    ok = read_tflite(unary_int8_model(schema.BuiltinOperator.QUANTIZE, 4))
    check_firmware_ops(ok, what="ok")
    with pytest.raises(DitmosError, match="not a valid .tflite"):
        read_tflite(b"not a flatbuffer at all", what="junk.tflite")


def test_nan_in_calibration_set(tmp_path):
    from ditmos.quantize.run import load_export, quantize_models

    export = write_export(tmp_path / "export", K=1, fit=False)
    x, _ = make_data(20)
    x[7, 3, 1] = np.nan
    with pytest.raises(
        DitmosError,
        match=r"calibration set .*NaN or infinity in 1 of 20 samples "
        r"\(first at sample 7\)",
    ):
        quantize_models(load_export(export), tmp_path / "int8", x, {"mean": [0] * 3, "std": [1] * 3})


def test_reference_needs_a_manifest(tmp_path):
    from ditmos.quantize.reference import ComposedReference

    with pytest.raises(DitmosError, match="no manifest.json"):
        ComposedReference(tmp_path)
