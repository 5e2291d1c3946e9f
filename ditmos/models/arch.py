"""Architecture as configuration: block specs, presets, width scaling, checks.

Every network in DiTMoS is a stack of conv blocks (Conv1D without bias,
BatchNormalization, ReLU, optional MaxPooling1D, all ``valid``) followed by
Flatten and Dense layers.  Three such networks exist:

* the *strong* model (used only to split the data),
* the *selector* (its head has K outputs: the routing logits),
* the *classifier* (K copies; block b+1 reads ``concat(own_b, selector_b)``
  for every b in ``shared_blocks`` -- heterogeneous feature aggregation).

Blocks are numbered from 1, as in ``feat_<b>`` of docs/artefacts.md.  Only
layers with a full-int8 TFLite lowering are used, and batch normalisation
always directly follows a convolution so the converter folds it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from ditmos.errors import DitmosError
from ditmos.macs import conv_macs, dense_macs


@dataclass(frozen=True)
class Block:
    filters: int
    kernel: int
    pool: int = 2  # 1 = no pooling


@dataclass(frozen=True)
class Net:
    blocks: tuple[Block, ...]
    fc: tuple[int, ...] = (64,)  # hidden Dense widths (ReLU); the head is added per use


@dataclass(frozen=True)
class Architecture:
    family: str
    K: int
    shared_blocks: tuple[int, ...]
    strong: Net
    selector: Net
    classifier: Net
    bn_epsilon: float = 1e-3


# Reference sizes (docs/method.md): kernels 15/9/5, channels 8/8/4, FC 64,
# valid padding and max-pool 2 -- on 151x3 inputs this is exactly the authors'
# 91,752 selector MACs and 131,176 classifier MACs.
_HAR = {
    "family": "har",
    "K": 6,
    "shared_blocks": [1, 2],
    "strong": {
        "blocks": [
            {"filters": 64, "kernel": 15, "pool": 1},
            {"filters": 64, "kernel": 13, "pool": 2},
            {"filters": 32, "kernel": 9, "pool": 1},
            {"filters": 32, "kernel": 9, "pool": 2},
            {"filters": 32, "kernel": 5, "pool": 1},
            {"filters": 16, "kernel": 5, "pool": 2},
        ],
        "fc": [128],
    },
    "selector": {
        "blocks": [
            {"filters": 8, "kernel": 15, "pool": 2},
            {"filters": 8, "kernel": 9, "pool": 2},
            {"filters": 4, "kernel": 5, "pool": 2},
        ],
        "fc": [64],
    },
    "classifier": {
        "blocks": [
            {"filters": 8, "kernel": 15, "pool": 2},
            {"filters": 8, "kernel": 9, "pool": 2},
            {"filters": 4, "kernel": 5, "pool": 2},
        ],
        "fc": [64],
    },
    "bn_epsilon": 1e-3,
}

# MFCC frames are short (fsdd ~40 frames x 13 coefficients): smaller kernels.
_MFCC = {
    "family": "mfcc",
    "K": 6,
    "shared_blocks": [1, 2],
    "strong": {
        "blocks": [
            {"filters": 64, "kernel": 3, "pool": 1},
            {"filters": 64, "kernel": 3, "pool": 2},
            {"filters": 32, "kernel": 3, "pool": 1},
            {"filters": 32, "kernel": 3, "pool": 2},
        ],
        "fc": [128],
    },
    "selector": {
        "blocks": [
            {"filters": 16, "kernel": 5, "pool": 2},
            {"filters": 16, "kernel": 3, "pool": 2},
            {"filters": 8, "kernel": 3, "pool": 1},
        ],
        "fc": [64],
    },
    "classifier": {
        "blocks": [
            {"filters": 16, "kernel": 5, "pool": 2},
            {"filters": 16, "kernel": 3, "pool": 2},
            {"filters": 8, "kernel": 3, "pool": 1},
        ],
        "fc": [64],
    },
    "bn_epsilon": 1e-3,
}

FAMILIES = {"har": _HAR, "mfcc": _MFCC}


def family_for_dataset(spec: str) -> str:
    """Architecture family for a dataset spec (``fsdd``, ``speech_commands:DIR`` -> mfcc)."""
    name = spec.split(":", 1)[0].lower()
    if name.startswith("fsdd") or name.startswith("speech_commands"):
        return "mfcc"
    return "har"


def default_architecture_dict(family: str) -> dict:
    if family not in FAMILIES:
        raise DitmosError(f"unknown architecture family '{family}'; choose one of {sorted(FAMILIES)}")
    return copy.deepcopy(FAMILIES[family])


def _check_keys(d: dict, allowed: set[str], where: str) -> None:
    if not isinstance(d, dict):
        raise DitmosError(f"config '{where}' must be an object, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise DitmosError(f"unknown key(s) {unknown} in config '{where}'; allowed: {sorted(allowed)}")


def _pos_int(v, where: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise DitmosError(f"config '{where}' must be an integer >= {minimum}, got {v!r}")
    return v


def _net_from_dict(d: dict, where: str, width: float, scale_fc: bool = True) -> Net:
    _check_keys(d, {"blocks", "fc"}, where)
    blocks = d.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        raise DitmosError(f"config '{where}.blocks' must be a non-empty list of blocks")
    out = []
    for i, b in enumerate(blocks):
        w = f"{where}.blocks[{i}]"
        _check_keys(b, {"filters", "kernel", "pool"}, w)
        for req in ("filters", "kernel"):
            if req not in b:
                raise DitmosError(f"config '{w}' is missing '{req}'")
        f = _pos_int(b["filters"], f"{w}.filters")
        out.append(
            Block(
                filters=max(1, round(f * width)),
                kernel=_pos_int(b["kernel"], f"{w}.kernel"),
                pool=_pos_int(b.get("pool", 2), f"{w}.pool"),
            )
        )
    fc = d.get("fc", [64])
    if not isinstance(fc, list):
        raise DitmosError(f"config '{where}.fc' must be a list of widths")
    fcs = tuple(max(1, round(_pos_int(u, f"{where}.fc[{j}]") * (width if scale_fc else 1.0))) for j, u in enumerate(fc))
    return Net(blocks=tuple(out), fc=fcs)


def architecture_from_dict(d: dict, width: float = 1.0) -> Architecture:
    """Validate an architecture dict and apply the width multiplier (not to the strong model)."""
    _check_keys(d, {"family", "K", "shared_blocks", "strong", "selector", "classifier", "bn_epsilon"}, "architecture")
    if not (isinstance(width, (int, float)) and 0 < width <= 16):
        raise DitmosError(f"width multiplier must be in (0, 16], got {width!r}")
    K = _pos_int(d.get("K"), "architecture.K", minimum=2)
    sel = _net_from_dict(d["selector"], "architecture.selector", width)
    cls = _net_from_dict(d["classifier"], "architecture.classifier", width)
    strong = _net_from_dict(d["strong"], "architecture.strong", 1.0)
    shared = d.get("shared_blocks", [])
    if not isinstance(shared, list):
        raise DitmosError("config 'architecture.shared_blocks' must be a list of block numbers")
    if len(cls.blocks) != len(sel.blocks):
        raise DitmosError(
            f"architecture.classifier has {len(cls.blocks)} blocks but the selector has "
            f"{len(sel.blocks)}; feature aggregation needs the same number of blocks"
        )
    for b in shared:
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b < len(cls.blocks):
            raise DitmosError(
                f"architecture.shared_blocks entry {b!r} must be a block number in "
                f"1..{len(cls.blocks) - 1} (block b feeds classifier block b+1)"
            )
    if len(set(shared)) != len(shared):
        raise DitmosError(f"architecture.shared_blocks has duplicates: {shared}")
    eps = d.get("bn_epsilon", 1e-3)
    if not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise DitmosError(f"architecture.bn_epsilon must be in (0, 1), got {eps!r}")
    return Architecture(
        family=str(d.get("family", "custom")),
        K=K,
        shared_blocks=tuple(sorted(shared)),
        strong=strong,
        selector=sel,
        classifier=cls,
        bn_epsilon=float(eps),
    )


def block_lengths(net: Net, T: int) -> list[int]:
    """Output length of every block (valid conv, floor pooling) for input length T."""
    lens = []
    t = T
    for b in net.blocks:
        t = t - b.kernel + 1
        if t < 1:
            lens.append(t)
            return lens
        t = t // b.pool
        lens.append(t)
    return lens


def check_fits(arch: Architecture, input_shape: tuple[int, int]) -> None:
    """Raise DitmosError unless every network fits an input of ``input_shape`` = (T, C)."""
    T, _ = input_shape
    for name, net in (("strong", arch.strong), ("selector", arch.selector), ("classifier", arch.classifier)):
        t = T
        for i, b in enumerate(net.blocks):
            if t - b.kernel + 1 < 1:
                raise DitmosError(
                    f"architecture.{name} block {i + 1} (kernel {b.kernel}) does not fit: its "
                    f"input is only {t} steps long (dataset windows are {T} steps); use a "
                    f"smaller kernel/pool or fewer blocks"
                )
            t = t - b.kernel + 1
            if t // b.pool < 1:
                raise DitmosError(
                    f"architecture.{name} block {i + 1} pool {b.pool} does not fit its "
                    f"{t}-step input (dataset windows are {T} steps)"
                )
            t //= b.pool
    sl = block_lengths(arch.selector, T)
    cl = block_lengths(arch.classifier, T)
    for b in arch.shared_blocks:
        if sl[b - 1] != cl[b - 1]:
            raise DitmosError(
                f"selector block {b} outputs {sl[b - 1]} steps but classifier block {b} "
                f"outputs {cl[b - 1]}; shared blocks need equal lengths (same kernel and pool)"
            )


def architecture_to_dict(arch: Architecture) -> dict:
    def net(n: Net) -> dict:
        return {
            "blocks": [{"filters": b.filters, "kernel": b.kernel, "pool": b.pool} for b in n.blocks],
            "fc": list(n.fc),
        }

    return {
        "family": arch.family,
        "K": arch.K,
        "shared_blocks": list(arch.shared_blocks),
        "strong": net(arch.strong),
        "selector": net(arch.selector),
        "classifier": net(arch.classifier),
        "bn_epsilon": arch.bn_epsilon,
    }


# ---------------------------------------------------------------- costs


def _net_cost(net: Net, T: int, C: int, n_out: int, side: dict[int, int] | None = None):
    """Deployed costs of one network (BN folded into a per-filter conv bias).

    ``side`` maps block b -> extra channels concatenated before block b+1.
    Returns dict(weights, biases, params, macs, flash_bytes) where flash bytes
    count int8 weights and int32 biases.
    """
    side = side or {}
    weights = biases = macs = 0
    t, c = T, C
    for i, b in enumerate(net.blocks):
        t_out = t - b.kernel + 1
        weights += b.kernel * c * b.filters
        biases += b.filters
        macs += conv_macs(t_out, b.kernel, c, b.filters)
        t = t_out // b.pool
        c = b.filters + side.get(i + 1, 0)
    d = t * (net.blocks[-1].filters)
    for u in list(net.fc) + [n_out]:
        weights += d * u
        biases += u
        macs += dense_macs(d, u)
        d = u
    return {
        "weights": weights,
        "biases": biases,
        "params": weights + biases,
        "macs": macs,
        "flash_bytes": weights + 4 * biases,
    }


def costs(arch: Architecture, input_shape: tuple[int, int], num_classes: int) -> dict:
    """Deployed parameter counts, int8 flash bytes and MACs per inference."""
    T, C = input_shape
    sel = _net_cost(arch.selector, T, C, arch.K)
    side = {b: arch.selector.blocks[b - 1].filters for b in arch.shared_blocks}
    cls = _net_cost(arch.classifier, T, C, num_classes, side)
    strong = _net_cost(arch.strong, T, C, num_classes)
    total = {k: sel[k] + arch.K * cls[k] for k in ("weights", "biases", "params", "flash_bytes")}
    total["macs"] = sel["macs"] + cls["macs"]  # per inference: selector + one classifier
    return {"selector": sel, "classifier": cls, "strong": strong, "ditmos": total}
