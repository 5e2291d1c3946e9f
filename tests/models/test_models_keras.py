"""The vectorised bank computes exactly what the exported Keras models compute."""

import numpy as np
import pytest

from ditmos.models import keras_models as km
from ditmos.models.arch import architecture_from_dict, default_architecture_dict

ALLOWED = {"InputLayer", "Conv1D", "BatchNormalization", "ReLU", "MaxPooling1D", "Flatten", "Dense", "Concatenate"}


@pytest.fixture(scope="module")
def banks():
    import tensorflow as tf

    from ditmos.models.bank import Bank

    arch = architecture_from_dict(default_architecture_dict("har"), width=0.5)
    T, C, ncls = 64, 3, 5
    sel = Bank(arch.selector, C, arch.K, 1, seed=1).build(T)
    side = {b: arch.selector.blocks[b - 1].filters for b in arch.shared_blocks}
    cls = Bank(arch.classifier, C, ncls, arch.K, seed=2, side_channels=side).build(T)
    x = np.random.default_rng(0).normal(size=(16, T, C)).astype(np.float32)
    # move BN statistics away from their initial values
    for _ in range(3):
        _, sb = sel(tf.constant(x), training=True, return_blocks=True)
        cls(tf.constant(x), training=True, side={b: sb[b - 1] for b in arch.shared_blocks})
    return arch, (T, C), ncls, sel, cls, x


def test_bank_members_equal_separate_keras_models(banks):
    arch, shape, ncls, sel, cls, x = banks
    r, sb = sel(x, training=False, return_blocks=True)
    lg = cls(x, training=False, side={b: sb[b - 1] for b in arch.shared_blocks}).numpy()
    ks = km.selector_from_bank(arch, shape, sel)
    o = ks({"window": x})
    np.testing.assert_allclose(o["route"].numpy(), r.numpy()[:, 0], atol=1e-5)
    for k in range(arch.K):
        kc = km.classifier_from_bank(arch, shape, ncls, cls, k)
        feeds = {"window": x, **{f"sel_feat_{b}": o[f"feat_{b}"].numpy() for b in arch.shared_blocks}}
        np.testing.assert_allclose(kc(feeds)["logits"].numpy(), lg[:, k], atol=1e-5)


def test_export_models_have_contract_names_and_fixed_batch(banks):
    arch, shape, ncls, sel, cls, _ = banks
    ks = km.selector_from_bank(arch, shape, sel, batch_size=1)
    assert [t.name for t in ks.inputs] == ["window"]
    assert tuple(ks.inputs[0].shape) == (1,) + shape
    outs = {k: tuple(v.shape) for k, v in ks.output.items()}
    assert outs == {"route": (1, arch.K), "feat_1": (1, 25, 4), "feat_2": (1, 8, 4)}
    kc = km.classifier_from_bank(arch, shape, ncls, cls, 2, batch_size=1)
    assert sorted(t.name for t in kc.inputs) == ["sel_feat_1", "sel_feat_2", "window"]
    assert {k: tuple(v.shape) for k, v in kc.output.items()} == {"logits": (1, ncls)}
    for m in (ks, kc):
        assert {type(layer).__name__ for layer in m.layers} <= ALLOWED
        # every BatchNormalization directly follows a Conv1D (foldable)
        for layer in m.layers:
            if type(layer).__name__ == "BatchNormalization":
                src = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
                assert type(src).__name__ == "Conv1D"
