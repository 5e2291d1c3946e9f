"""The op registry is the one place an op is described: every entry is
complete, every kernel it names is declared in ditmos_kernels.h with its
parameter struct and defined by a reference kernel, and the quantiser's
allow-list and the IR's error message are derived from it."""

from __future__ import annotations

import re

import pytest

from ditmos.codegen import ops
from ditmos.codegen.lowering import KERNELS
from ditmos.paths import firmware_dir


def test_every_entry_is_complete_and_names_are_unique():
    kinds = [s.kind for s in ops.REGISTRY]
    names = [n for s in ops.REGISTRY for n in s.tflite]
    assert len(kinds) == len(set(kinds)) and len(names) == len(set(names))
    for s in ops.REGISTRY:
        assert s.schedule in ops.SCHEDULE_CATEGORIES, s.kind
        assert callable(s.parse) and s.words and s.tflite
        assert (s.lower is None) == (s.schedule in ("alias", "concat")), s.kind
        assert ops.by_kind(s.kind) is s and all(ops.by_tflite(n) is s for n in s.tflite)


def test_the_allow_list_and_the_error_come_from_the_registry():
    from ditmos.quantize.tflite_model import ALLOWED_OPS

    assert ALLOWED_OPS == ops.allowed_tflite_ops() == {n for s in ops.REGISTRY for n in s.tflite}
    words = ops.supported_words()
    assert all(s.words in words for s in ops.REGISTRY)


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_every_kernel_is_declared_and_has_a_reference_file(kernel):
    k = KERNELS[kernel]
    header = (firmware_dir() / "include" / "ditmos_kernels.h").read_text()
    assert re.search(rf"}} {k.params_type};", header), k.params_type
    assert re.search(rf"\bvoid {k.name}\(const {k.params_type} \*params,", header), k.name
    assert k.name.startswith("dtm_") and k.params_type.startswith("dtm_")
    for kset in k.sets:  # the cm7-only variants have no reference twin
        src = firmware_dir() / "kernels" / kset / (k.name[len("dtm_") :] + ".c")
        assert src.is_file() or kset == "cm7", src  # cm7 builds fall back to ref files
        if src.is_file():
            assert re.search(rf"\bvoid {k.name}\(", src.read_text()), src
