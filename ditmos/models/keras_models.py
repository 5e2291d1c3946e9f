"""Plain Keras 3 functional models built from trained bank weights.

These are the models users see (``RUN_DIR/models``) and the deployment models
(``RUN_DIR/export``, fixed batch 1).  Layers: Conv1D (no bias, valid),
BatchNormalization, ReLU, MaxPooling1D, Concatenate, Flatten, Dense -- all
with full-int8 TFLite kernels; BN directly follows each conv so the converter
folds it.  Input/output names follow docs/artefacts.md section 2:

* selector: input ``window``; outputs ``route`` and ``feat_<b>`` for every
  shared block b (the block's output after pooling),
* classifier: inputs ``window`` and ``sel_feat_<b>``; output ``logits``;
  block b+1 reads ``Concatenate()([own_b, sel_feat_b])`` (own channels first),
* strong: input ``window``; output ``logits``.
"""

from __future__ import annotations

import numpy as np

from ditmos.models.arch import Architecture, Net, block_lengths


def _keras():
    import keras

    return keras


def _blocks(x, net: Net, prefix: str, eps: float, side_inputs: dict | None = None, feat_names: dict | None = None):
    """Conv blocks; returns (last tensor, list of block outputs)."""
    L = _keras().layers
    outs = []
    for i, b in enumerate(net.blocks):
        n = i + 1
        x = L.Conv1D(b.filters, b.kernel, padding="valid", use_bias=False, name=f"{prefix}b{n}_conv")(x)
        x = L.BatchNormalization(epsilon=eps, name=f"{prefix}b{n}_bn")(x)
        last_name = (feat_names or {}).get(n)
        if b.pool > 1:
            x = L.ReLU(name=f"{prefix}b{n}_relu")(x)
            x = L.MaxPooling1D(b.pool, b.pool, padding="valid", name=last_name or f"{prefix}b{n}_pool")(x)
        else:
            x = L.ReLU(name=last_name or f"{prefix}b{n}_relu")(x)
        outs.append(x)
        if side_inputs and n in side_inputs:
            x = L.Concatenate(axis=-1, name=f"{prefix}agg{n}")([x, side_inputs[n]])
    return x, outs


def _head(x, net: Net, n_out: int, prefix: str, out_name: str):
    L = _keras().layers
    x = L.Flatten(name=f"{prefix}flatten")(x)
    for j, u in enumerate(net.fc):
        x = L.Dense(u, activation="relu", name=f"{prefix}fc{j + 1}")(x)
    return L.Dense(n_out, name=out_name)(x)


def build_selector(arch: Architecture, input_shape, batch_size: int | None = None):
    keras = _keras()
    T, C = input_shape
    inp = keras.Input(shape=(T, C), batch_size=batch_size, name="window")
    feat_names = {b: f"feat_{b}" for b in arch.shared_blocks}
    x, outs = _blocks(inp, arch.selector, "sel_", arch.bn_epsilon, feat_names=feat_names)
    route = _head(x, arch.selector, arch.K, "sel_", "route")
    outputs = {"route": route}
    for b in arch.shared_blocks:
        outputs[f"feat_{b}"] = outs[b - 1]
    return keras.Model(inputs={"window": inp}, outputs=outputs, name="selector")


def build_classifier(arch: Architecture, input_shape, num_classes: int, batch_size: int | None = None, k: int = 0):
    keras = _keras()
    T, C = input_shape
    inp = keras.Input(shape=(T, C), batch_size=batch_size, name="window")
    lens = block_lengths(arch.selector, T)
    inputs = {"window": inp}
    side = {}
    for b in arch.shared_blocks:
        s = keras.Input(
            shape=(lens[b - 1], arch.selector.blocks[b - 1].filters), batch_size=batch_size, name=f"sel_feat_{b}"
        )
        inputs[f"sel_feat_{b}"] = s
        side[b] = s
    x, _ = _blocks(inp, arch.classifier, "", arch.bn_epsilon, side_inputs=side)
    out = _head(x, arch.classifier, num_classes, "", "logits")
    return keras.Model(inputs=inputs, outputs={"logits": out}, name=f"classifier_{k}")


def build_strong(arch: Architecture, input_shape, num_classes: int, batch_size: int | None = None):
    keras = _keras()
    T, C = input_shape
    inp = keras.Input(shape=(T, C), batch_size=batch_size, name="window")
    x, _ = _blocks(inp, arch.strong, "", arch.bn_epsilon)
    out = _head(x, arch.strong, num_classes, "", "logits")
    return keras.Model(inputs={"window": inp}, outputs={"logits": out}, name="strong")


def load_bank_weights(
    model, net: Net, member: list[dict[str, np.ndarray]], prefix: str = "", head_name: str | None = None
) -> None:
    """Copy one bank member's weights (``Bank.member_weights``) into a built model."""
    convs = [w for w in member if w["kind"] == "conv"]
    dense = [w for w in member if w["kind"] == "dense"]
    for i, w in enumerate(convs):
        n = i + 1
        model.get_layer(f"{prefix}b{n}_conv").set_weights([w["kernel"]])
        model.get_layer(f"{prefix}b{n}_bn").set_weights([w["gamma"], w["beta"], w["mean"], w["var"]])
    names = [f"{prefix}fc{j + 1}" for j in range(len(net.fc))] + [head_name]
    for name, w in zip(names, dense):
        model.get_layer(name).set_weights([w["kernel"], w["bias"]])


def selector_from_bank(arch, input_shape, bank, batch_size=None):
    m = build_selector(arch, input_shape, batch_size)
    load_bank_weights(m, arch.selector, bank.member_weights(0), "sel_", "route")
    return m


def classifier_from_bank(arch, input_shape, num_classes, bank, k, batch_size=None):
    m = build_classifier(arch, input_shape, num_classes, batch_size, k)
    load_bank_weights(m, arch.classifier, bank.member_weights(k), "", "logits")
    return m


def strong_from_bank(arch, input_shape, num_classes, bank, batch_size=None):
    m = build_strong(arch, input_shape, num_classes, batch_size)
    load_bank_weights(m, arch.strong, bank.member_weights(0), "", "logits")
    return m


def with_batch(model, batch: int | None):
    """A twin of a Keras functional ``model`` (same weights) whose inputs take
    a batch dimension of ``batch`` (None: any batch size)."""
    keras = _keras()
    config = model.get_config()
    for layer in config.get("layers", []):
        if layer.get("class_name") == "InputLayer":
            cfg = layer["config"]
            for key in ("batch_shape", "batch_input_shape"):
                if cfg.get(key):
                    cfg[key] = [batch] + list(cfg[key][1:])
    twin = keras.Model.from_config(config)
    twin.set_weights(model.get_weights())
    return twin
