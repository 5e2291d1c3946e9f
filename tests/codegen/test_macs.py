"""One MAC count everywhere: the architecture table, the baselines' analytical
cost, the cost read off a built Keras model, the quantiser's count on the
.tflite and the code generator's count per program must all agree."""

from __future__ import annotations

from pathlib import Path

from ditmos.codegen import generate
from ditmos.models.arch import architecture_from_dict, costs, default_architecture_dict
from ditmos.models.baselines import count_cost, spec_cost, spec_from_net
from ditmos.quantize.tflite_model import read_tflite

GOLDEN_INT8 = Path(__file__).parent / "golden" / "int8"


def test_architecture_baselines_and_keras_count_the_same_macs():
    from ditmos.models.keras_models import build_classifier, build_selector

    arch = architecture_from_dict(default_architecture_dict("har"), width=0.5)
    shape, classes = (64, 3), 5
    c = costs(arch, shape, classes)
    side = {b: arch.selector.blocks[b - 1].filters for b in arch.shared_blocks}
    assert spec_cost(spec_from_net(arch.selector), shape, arch.K).macs == c["selector"]["macs"]
    assert spec_cost(spec_from_net(arch.classifier), shape, classes, side=side).macs == c["classifier"]["macs"]
    assert count_cost(build_selector(arch, shape)).macs == c["selector"]["macs"]
    assert count_cost(build_classifier(arch, shape, classes)).macs == c["classifier"]["macs"]


def test_quantiser_and_code_generator_count_the_same_macs(tmp_path):
    import json

    manifest = json.loads((GOLDEN_INT8 / "manifest.json").read_text())
    cg = generate(GOLDEN_INT8, tmp_path, kernels="ref")
    for name, sub in manifest["submodels"].items():
        tflite = read_tflite((GOLDEN_INT8 / sub["file"]).read_bytes(), what=name).macs
        assert tflite == manifest["macs"][name] == cg["macs"][name] > 0, name
