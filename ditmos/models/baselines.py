"""Baseline networks that DiTMoS is compared against (docs/method.md).

Every baseline is a plain Keras 3 functional model built only from layers that
convert to full-int8 TFLite (Conv1D, BatchNormalization, ReLU, MaxPooling1D,
Flatten, Dense, Concatenate, Add, GlobalAveragePooling1D, and Multiply for the
gated mixture).  BatchNormalization always follows a bias-free Conv1D so that
the converter folds it into the convolution.

The cost model used everywhere in the comparison:

* ``macs``: multiply-accumulates of Conv1D and Dense layers per inference
  (``out_len * kernel * in_ch * out_ch`` and ``in * out``); BN, ReLU, pooling
  and element-wise ops are not counted.
* ``params``: deployable parameters after BN folding, i.e. every Conv1D/Dense
  kernel weight plus one bias per output channel.
* ``flash_bytes``: int8 weights plus int32 biases, ``weights + 4 * biases``.

:func:`spec_cost` computes these analytically from a :class:`ConvNetSpec`;
:func:`count_macs` / :func:`count_cost` read them from a built model, so the
budget search never has to build a model and the tests can check both agree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Sequence

from ditmos.errors import DitmosError
from ditmos.macs import conv_macs, dense_macs

__all__ = [
    "ConvNetSpec",
    "Cost",
    "spec_cost",
    "count_macs",
    "count_cost",
    "spec_from_model",
    "spec_from_net",
    "build_convnet",
    "search_budget_spec",
    "build_moe",
    "build_early_exit",
    "early_exit_costs",
    "with_batch_size",
]


# --------------------------------------------------------------------------- #
# Specs and the analytical cost model
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ConvNetSpec:
    """A tiny 1-D CNN: conv blocks (Conv1D -> BN -> ReLU -> MaxPool), then a
    flatten (or global average pool), an optional hidden FC layer and the
    output layer."""

    channels: tuple[int, ...]
    kernels: tuple[int, ...]
    pools: tuple[int, ...]
    fc: int = 64
    padding: str = "same"
    head: str = "flatten"  # or "gap"

    def __post_init__(self):
        n = len(self.channels)
        if n == 0 or len(self.kernels) != n or len(self.pools) != n:
            raise DitmosError(
                f"baseline spec needs one kernel and one pool per conv block, got "
                f"channels={self.channels}, kernels={self.kernels}, pools={self.pools}"
            )
        if min(self.channels) < 1 or min(self.kernels) < 1 or min(self.pools) < 1:
            raise DitmosError(f"baseline spec has a non-positive size: {self}")
        if self.padding not in ("same", "valid"):
            raise DitmosError(f"baseline spec padding must be 'same' or 'valid', got {self.padding!r}")
        if self.head not in ("flatten", "gap"):
            raise DitmosError(f"baseline spec head must be 'flatten' or 'gap', got {self.head!r}")
        if self.fc < 0:
            raise DitmosError(f"baseline spec fc width must be >= 0, got {self.fc}")

    @property
    def depth(self) -> int:
        return len(self.channels)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("channels", "kernels", "pools"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ConvNetSpec":
        return cls(
            channels=tuple(d["channels"]),
            kernels=tuple(d["kernels"]),
            pools=tuple(d["pools"]),
            fc=int(d.get("fc", 64)),
            padding=d.get("padding", "same"),
            head=d.get("head", "flatten"),
        )


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int
    biases: int

    @property
    def flash_bytes(self) -> int:
        return (self.params - self.biases) + 4 * self.biases

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.macs + other.macs, self.params + other.params, self.biases + other.biases)

    def to_dict(self) -> dict:
        return {"macs": int(self.macs), "params": int(self.params), "flash_bytes": int(self.flash_bytes)}


ZERO_COST = Cost(0, 0, 0)


def _conv_out_len(length: int, kernel: int, padding: str) -> int:
    return length if padding == "same" else length - kernel + 1


def _trunk_shapes(spec: ConvNetSpec, input_shape: Sequence[int]):
    """Yield (out_len_before_pool, in_ch, out_ch, kernel, len_after_pool) per block."""
    length, cin = int(input_shape[0]), int(input_shape[1])
    for cout, k, p in zip(spec.channels, spec.kernels, spec.pools):
        lout = _conv_out_len(length, k, spec.padding)
        if lout < 1:
            raise DitmosError(
                f"baseline spec {spec.channels}/{spec.kernels} does not fit an input of "
                f"length {input_shape[0]}: a convolution would have no output"
            )
        lpool = lout // p
        if lpool < 1:
            raise DitmosError(f"baseline spec pools {spec.pools} shrink an input of length {input_shape[0]} to nothing")
        yield lout, cin, cout, k, lpool
        length, cin = lpool, cout


def spec_cost(
    spec: ConvNetSpec, input_shape: Sequence[int], num_outputs: int, *, side: dict[int, int] | None = None
) -> Cost:
    """Analytical MACs / params / biases of :func:`build_convnet` (BN folded).

    ``side`` maps block b (1-based) to extra channels concatenated to block b's
    output before block b+1 (DiTMoS feature aggregation); :func:`build_convnet`
    has none, the DiTMoS classifiers do."""
    side = side or {}
    macs = params = biases = 0
    length, ch = int(input_shape[0]), int(input_shape[1])
    cin = ch
    for i, (lout, _, cout, k, lpool) in enumerate(_trunk_shapes(spec, input_shape), start=1):
        macs += conv_macs(lout, k, cin, cout)
        params += k * cin * cout + cout
        biases += cout
        length, ch = lpool, cout
        cin = cout + side.get(i, 0)
    feat = length * ch if spec.head == "flatten" else ch
    for units in ([spec.fc] if spec.fc else []) + [num_outputs]:
        macs += dense_macs(feat, units)
        params += feat * units + units
        biases += units
        feat = units
    return Cost(macs, params, biases)


def spec_from_net(net, *, padding: str = "valid") -> ConvNetSpec:
    """:class:`ConvNetSpec` of a :class:`ditmos.models.arch.Net` (conv blocks
    with ``valid`` padding, hidden FC widths).  Only one hidden FC layer is
    expressible; a deeper FC stack keeps its first width."""
    return ConvNetSpec(
        channels=tuple(b.filters for b in net.blocks),
        kernels=tuple(b.kernel for b in net.blocks),
        pools=tuple(b.pool for b in net.blocks),
        fc=int(net.fc[0]) if len(net.fc) else 0,
        padding=padding,
    )


# --------------------------------------------------------------------------- #
# Counting on built models
# --------------------------------------------------------------------------- #


def _iter_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Model", "Sequential"):
            yield from _iter_layers(layer)
        else:
            yield layer


def _layer_cost(layer) -> Cost:
    from keras import layers as kl

    if isinstance(layer, (kl.Conv1D, kl.Dense)):
        kernel = layer.kernel
        n_kernel = int(math.prod(kernel.shape))
        out_ch = int(kernel.shape[-1])
        if isinstance(layer, kl.Conv1D):
            positions = int(math.prod(layer.output.shape[1:-1]))
            k, cin = int(kernel.shape[0]), int(math.prod(kernel.shape[1:-1]))
            macs = conv_macs(positions, k, cin, out_ch)
        else:
            positions = int(math.prod(layer.input.shape[1:-1])) if len(layer.input.shape) > 2 else 1
            macs = dense_macs(int(kernel.shape[0]), out_ch, rows=positions)
        # A bias-free conv followed by BN still gets a bias when BN is folded.
        return Cost(macs, n_kernel + out_ch, out_ch)
    return ZERO_COST


def count_cost(model) -> Cost:
    """MACs, deployable params and biases of a built Keras model (nested
    functional models included).  Only Conv1D and Dense layers cost anything;
    every Conv1D/Dense is charged one bias per output channel (BN folding)."""
    total = ZERO_COST
    for layer in _iter_layers(model):
        total = total + _layer_cost(layer)
    return total


def count_macs(model) -> int:
    """Multiply-accumulates per inference of the Conv1D and Dense layers."""
    return count_cost(model).macs


def layer_costs(model) -> dict[str, Cost]:
    return {layer.name: _layer_cost(layer) for layer in _iter_layers(model)}


def spec_from_model(model, *, head_outputs: int | None = None) -> ConvNetSpec:
    """Read a :class:`ConvNetSpec` back from a Keras model made of conv blocks
    and dense layers (e.g. the DiTMoS selector or a classifier).

    Conv1D layers give channels/kernels (in graph order), a MaxPooling1D right
    after a block gives its pool size, the first hidden Dense layer gives ``fc``.
    """
    from keras import layers as kl

    channels, kernels, pools, dense_units = [], [], [], []
    padding = "same"
    gap = False
    for layer in _iter_layers(model):
        if isinstance(layer, kl.Conv1D):
            channels.append(int(layer.filters))
            kernels.append(int(layer.kernel_size[0]))
            pools.append(1)
            padding = layer.padding
        elif isinstance(layer, kl.MaxPooling1D) and pools:
            pools[-1] *= int(layer.pool_size[0])
        elif isinstance(layer, kl.GlobalAveragePooling1D):
            gap = True
        elif isinstance(layer, kl.Dense):
            dense_units.append(int(layer.units))
    if not channels:
        raise DitmosError(f"model '{model.name}' has no Conv1D layer to read a spec from")
    hidden = [u for u in dense_units if head_outputs is None or u != head_outputs]
    fc = hidden[0] if hidden else 0
    return ConvNetSpec(
        tuple(channels), tuple(kernels), tuple(pools), fc=fc, padding=padding, head="gap" if gap else "flatten"
    )


# --------------------------------------------------------------------------- #
# Builders
# --------------------------------------------------------------------------- #


def _conv_block(x, filters: int, kernel: int, pool: int, padding: str, name: str):
    from keras import layers as kl

    x = kl.Conv1D(filters, kernel, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = kl.BatchNormalization(name=f"{name}_bn")(x)
    x = kl.ReLU(name=f"{name}_relu")(x)
    if pool > 1:
        x = kl.MaxPooling1D(pool, name=f"{name}_pool")(x)
    return x


def _trunk(x, spec: ConvNetSpec, prefix: str):
    for i, (c, k, p) in enumerate(zip(spec.channels, spec.kernels, spec.pools), start=1):
        x = _conv_block(x, c, k, p, spec.padding, f"{prefix}b{i}")
    return x


def _head(x, spec: ConvNetSpec, num_outputs: int, prefix: str, out_name: str):
    from keras import layers as kl

    x = (
        kl.Flatten(name=f"{prefix}flatten")(x)
        if spec.head == "flatten"
        else kl.GlobalAveragePooling1D(name=f"{prefix}gap")(x)
    )
    if spec.fc:
        x = kl.Dense(spec.fc, name=f"{prefix}fc")(x)
        x = kl.ReLU(name=f"{prefix}fc_relu")(x)
    return kl.Dense(num_outputs, name=out_name)(x)


def _input(input_shape, batch_size):
    import keras

    return keras.Input(shape=tuple(int(s) for s in input_shape), batch_size=batch_size, name="window")


def build_convnet(
    spec: ConvNetSpec,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    name: str = "convnet",
    batch_size: int | None = None,
):
    """A single tiny CNN: input ``window`` [T, C], output ``logits``."""
    import keras

    list(_trunk_shapes(spec, input_shape))  # validates the fit with a clear error
    inp = _input(input_shape, batch_size)
    out = _head(_trunk(inp, spec, ""), spec, num_classes, "", "logits")
    return keras.Model(inp, out, name=name)


def build_moe(
    gate_spec: ConvNetSpec,
    expert_spec: ConvNetSpec,
    k: int,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    name: str = "soft_moe",
    batch_size: int | None = None,
):
    """Soft-gated mixture of experts: a gating CNN gives softmax weights over K
    expert CNNs that all run on the input; the output is the gate-weighted sum
    of the experts' logits.  Trained end to end."""
    import keras
    from keras import layers as kl

    if k < 2:
        raise DitmosError(f"a mixture of experts needs at least 2 experts, got K={k}")
    list(_trunk_shapes(gate_spec, input_shape))
    list(_trunk_shapes(expert_spec, input_shape))
    inp = _input(input_shape, batch_size)
    gate_logits = _head(_trunk(inp, gate_spec, "gate_"), gate_spec, k, "gate_", "gate_logits")
    gate = kl.Reshape((k, 1), name="gate_col")(kl.Softmax(name="gate")(gate_logits))
    experts = [
        _head(_trunk(inp, expert_spec, f"e{e}_"), expert_spec, num_classes, f"e{e}_", f"e{e}_logits") for e in range(k)
    ]
    stacked = kl.Reshape((k, num_classes), name="experts")(kl.Concatenate(name="experts_concat")(experts))
    weighted = kl.Multiply(name="weighted")([stacked, gate])  # broadcast over classes
    # Mean over the K experts (= gate-weighted sum / K; the scale is learnt).
    out = kl.GlobalAveragePooling1D(name="logits")(weighted)
    return keras.Model(inp, out, name=name)


def build_early_exit(
    spec: ConvNetSpec,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    name: str = "early_exit",
    batch_size: int | None = None,
):
    """Multi-exit CNN: after every conv block but the last an exit head
    (GlobalAveragePooling1D -> Dense classes), after the last block the usual
    flatten/FC head.  Outputs ``exit_1`` .. ``exit_D`` (logits)."""
    import keras
    from keras import layers as kl

    list(_trunk_shapes(spec, input_shape))
    inp = _input(input_shape, batch_size)
    x = inp
    outputs = []
    for i, (c, k, p) in enumerate(zip(spec.channels, spec.kernels, spec.pools), start=1):
        x = _conv_block(x, c, k, p, spec.padding, f"b{i}")
        if i < spec.depth:
            g = kl.GlobalAveragePooling1D(name=f"exit_{i}_gap")(x)
            outputs.append(kl.Dense(num_classes, name=f"exit_{i}")(g))
    outputs.append(_head(x, spec, num_classes, "final_", f"exit_{spec.depth}"))
    return keras.Model(inp, outputs, name=name)


def early_exit_costs(spec: ConvNetSpec, input_shape: Sequence[int], num_classes: int) -> list[Cost]:
    """Cumulative cost of stopping at exit i (1-based list index i-1): the
    backbone up to block i plus every exit head evaluated so far."""
    costs = []
    backbone = ZERO_COST
    heads = ZERO_COST
    blocks = list(_trunk_shapes(spec, input_shape))
    for i, (lout, cin, cout, k, lpool) in enumerate(blocks, start=1):
        backbone = backbone + Cost(lout * k * cin * cout, k * cin * cout + cout, cout)
        if i < len(blocks):
            heads = heads + Cost(cout * num_classes, cout * num_classes + num_classes, num_classes)
            costs.append(backbone + heads)
    final = spec_cost(spec, input_shape, num_classes)
    # final = whole backbone + final head; add the intermediate heads on top.
    costs.append(final + heads)
    return costs


def with_batch_size(model, builder, *args, batch_size: int = 1, **kwargs):
    """Rebuild ``model`` via ``builder(*args, batch_size=..., **kwargs)`` with a
    fixed batch size (for TFLite export) and copy the weights over."""
    fixed = builder(*args, batch_size=batch_size, **kwargs)
    fixed.set_weights(model.get_weights())
    return fixed


# --------------------------------------------------------------------------- #
# Budget search
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class BudgetMatch:
    spec: ConvNetSpec
    cost: Cost
    target: int
    metric: str

    @property
    def ratio(self) -> float:
        value = self.cost.macs if self.metric == "macs" else self.cost.params
        return value / self.target

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            **self.cost.to_dict(),
            "target": int(self.target),
            "metric": self.metric,
            "ratio": round(self.ratio, 4),
        }


def _extend(seq: Sequence[int], depth: int) -> tuple[int, ...]:
    seq = tuple(seq)
    return seq[:depth] if len(seq) >= depth else seq + (seq[-1],) * (depth - len(seq))


def _template_spec(template: ConvNetSpec, depth: int, base: int, fc: int, input_len: int) -> ConvNetSpec | None:
    """The template's block pattern at ``depth`` blocks with channels scaled so
    that block 1 has ``base`` channels (ratios kept)."""
    ref = template.channels[0]
    ratios = [c / ref for c in _extend(template.channels, depth)]
    channels = tuple(max(1, round(base * r)) for r in ratios)
    kernels = _extend(template.kernels, depth)
    pools = _extend(template.pools, depth)
    # Drop pooling that would shrink the sequence to nothing.
    length = input_len
    fixed_pools = []
    for k, p in zip(kernels, pools):
        length = _conv_out_len(length, k, template.padding)
        if length < 1:
            return None
        if length // p < 1:
            p = 1
        length //= p
        fixed_pools.append(p)
    return replace(template, channels=channels, kernels=kernels, pools=tuple(fixed_pools), fc=fc)


def search_budget_spec(
    template: ConvNetSpec,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    target: int,
    metric: str = "macs",
    depths: Iterable[int] = (2, 3, 4),
    fc_choices: Iterable[int] | None = None,
    tolerance: float = 0.10,
    max_channels: int = 512,
) -> list[BudgetMatch]:
    """Single CNNs of the template's family whose ``metric`` (``"macs"`` or
    ``"params"``) is within ``tolerance`` of ``target``.

    For each depth the block-1 channel count and the FC width are searched
    (channel ratios and kernels follow the template); the closest match per
    depth is returned, best match first.  Raises :class:`DitmosError` when no
    depth gets within the tolerance."""
    if metric not in ("macs", "params"):
        raise DitmosError(f"budget metric must be 'macs' or 'params', got {metric!r}")
    if target <= 0:
        raise DitmosError(f"budget target must be positive, got {target}")
    if fc_choices is None:
        base_fc = template.fc or 64
        fc_choices = sorted({max(8, base_fc // 4), max(8, base_fc // 2), base_fc, base_fc * 2})
    best: dict[int, BudgetMatch] = {}
    for depth in depths:
        for fc in fc_choices:
            for base in range(1, max_channels + 1):
                spec = _template_spec(template, depth, base, fc, int(input_shape[0]))
                if spec is None:
                    break
                cost = spec_cost(spec, input_shape, num_classes)
                match = BudgetMatch(spec, cost, target, metric)
                cur = best.get(depth)
                if cur is None or abs(math.log(match.ratio)) < abs(math.log(cur.ratio)):
                    best[depth] = match
                if match.ratio > 1 + tolerance:
                    break
    found = [m for m in best.values() if abs(m.ratio - 1) <= tolerance]
    if not found:
        closest = min(best.values(), key=lambda m: abs(math.log(m.ratio)), default=None)
        raise DitmosError(
            f"no single network of depth {sorted(best)} gets within {tolerance:.0%} of "
            f"{target} {metric} (closest: {closest.ratio:.2f}x)"
            if closest
            else f"no single network fits the input shape {tuple(input_shape)}"
        )
    return sorted(found, key=lambda m: abs(math.log(m.ratio)))
