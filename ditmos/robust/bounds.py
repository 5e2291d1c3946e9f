"""Interval bound propagation (IBP) through ditmos's chain CNNs, in TensorFlow.

The bounds are differentiable TF ops, so the same code certifies a model
(``ditmos robust verify``) and trains it (``ditmos train --robust ibp|cure``).

Supported layers (the single CNN baselines of :mod:`ditmos.models.baselines`
and any Keras model that is a plain chain of them): ``Conv1D`` (``valid`` or
``same`` padding, with or without bias), ``Dense``, ``BatchNormalization``
(inference statistics, or batch statistics of a reference stream while
training), ``ReLU`` (also with ``max_value``, e.g. ReLU6, and leaky slopes),
monotone ``Activation`` layers, ``MaxPooling1D``, ``AveragePooling1D``,
``GlobalAveragePooling1D``, ``Flatten``, ``Reshape``, ``Dropout``.  A model
with branches (Concatenate, Add, Multiply) is refused with a clear error.

Input sets (``norm``):

``linf``  the box ``[x - eps, x + eps]`` propagated layer by layer.
``l2``, ``l1``
          the ball ``||d||_p <= eps`` is handled exactly at the first affine
          layer: a unit ``w . (x + d) + b`` lies within ``w . x + b`` +- ``eps *
          ||w||_q`` (q the dual norm: ``||w||_2`` for l_2, ``max|w|`` for l_1; for
          a convolution, ``w`` is the unit's whole kernel slice, which also
          covers zero-padded border positions); from there on the set is a box.
``box``   an explicit box ``[centre - eps, centre + eps]`` (eps may be a
          per-window or per-coordinate tensor), used by SABR-style training.

The certificate compares margins, not logit boxes: with ``h`` in the box
before the last Dense layer ``z = W h + b``, the lower bound of ``z_y - z_j``
is computed from the row ``W[:, y] - W[:, j]`` directly (final-layer
elision), which is never looser and usually much tighter than
``lb(z_y) - ub(z_j)``.  A window is certified for a norm when every margin's
lower bound is positive.  All arithmetic is float32; the float certificate
holds up to the rounding of that arithmetic (bounds are not outward-rounded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ditmos.errors import DitmosError

SETS = ("linf", "l2", "l1", "box")


def _tf():
    import tensorflow as tf

    return tf


# --------------------------------------------------------------------------- #
# The model as a chain of operations
# --------------------------------------------------------------------------- #


@dataclass
class Op:
    kind: str  # conv, dense, bn, act, maxpool, avgpool, gap, flatten, reshape, identity
    layer: object


def _act_kind(fn) -> str:
    name = getattr(fn, "__name__", str(fn))
    return name


_MONOTONE = {"relu", "relu6", "sigmoid", "tanh", "elu", "selu", "softplus", "leaky_relu", "hard_sigmoid", "gelu"}


def chain(model) -> list[Op]:
    """The layers of ``model`` as a list of :class:`Op` (input to logits).

    Raises a :class:`DitmosError` for a layer the bounds do not handle or a
    model that is not a single chain."""
    from keras import layers as kl

    ops: list[Op] = []
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise DitmosError(f"model '{model.name}': bounds need one input and one output")
    for layer in model.layers:
        if isinstance(layer, kl.InputLayer):
            continue
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Model", "Sequential"):
            ops.extend(chain(layer))
            continue
        if isinstance(layer, kl.Conv1D):
            if layer.padding not in ("valid", "same"):
                raise DitmosError(f"layer '{layer.name}': Conv1D padding {layer.padding!r} is not supported")
            if layer.groups != 1:
                raise DitmosError(f"layer '{layer.name}': grouped Conv1D is not supported")
            ops.append(Op("conv", layer))
            if _act_kind(layer.activation) != "linear":
                ops.append(Op("act_of", layer))
        elif isinstance(layer, kl.Dense):
            ops.append(Op("dense", layer))
            if _act_kind(layer.activation) != "linear":
                ops.append(Op("act_of", layer))
        elif isinstance(layer, kl.BatchNormalization):
            ops.append(Op("bn", layer))
        elif isinstance(layer, (kl.ReLU, kl.LeakyReLU)):
            ops.append(Op("act", layer))
        elif isinstance(layer, kl.Activation):
            if _act_kind(layer.activation) not in _MONOTONE | {"linear"}:
                raise DitmosError(
                    f"layer '{layer.name}': activation {_act_kind(layer.activation)!r} is not monotone; "
                    "bounds need monotone activations"
                )
            ops.append(Op("act", layer))
        elif isinstance(layer, kl.MaxPooling1D):
            ops.append(Op("maxpool", layer))
        elif isinstance(layer, kl.AveragePooling1D):
            ops.append(Op("avgpool", layer))
        elif isinstance(layer, kl.GlobalAveragePooling1D):
            ops.append(Op("gap", layer))
        elif isinstance(layer, (kl.Flatten, kl.Reshape)):
            ops.append(Op("reshape", layer))
        elif isinstance(layer, kl.Dropout):
            ops.append(Op("reshape", layer))  # the identity at inference
        else:
            raise DitmosError(
                f"layer '{layer.name}' ({layer.__class__.__name__}) is not supported by the interval "
                "bounds (chain CNNs of Conv1D/Dense/BatchNormalization/ReLU/pooling/Flatten only)"
            )
    for i, op in enumerate(ops[:-1]):
        if op.layer is not ops[i + 1].layer and _inbound(ops[i + 1].layer) not in (None, op.layer):
            raise DitmosError(f"model '{model.name}' is not a single chain of layers (at '{ops[i + 1].layer.name}')")
    if not ops or ops[-1].kind != "dense":
        raise DitmosError(f"model '{model.name}': bounds need a final linear Dense layer (the logits)")
    return ops


def _inbound(layer):
    """The layer feeding ``layer`` in its first node (None when unknown)."""
    try:
        node = layer._inbound_nodes[0]
        parents = [t._keras_history[0] for t in node.input_tensors]
    except (AttributeError, IndexError):
        return None
    if len(parents) != 1:
        return "many"
    from keras import layers as kl

    return None if isinstance(parents[0], kl.InputLayer) else parents[0]


# --------------------------------------------------------------------------- #
# Propagation
# --------------------------------------------------------------------------- #


def _conv(x, kernel, layer):
    tf = _tf()
    return tf.nn.conv1d(
        x,
        kernel,
        stride=int(layer.strides[0]),
        padding=layer.padding.upper(),
        dilations=int(layer.dilation_rate[0]),
    )


def _affine(op: Op, x, *, absolute: bool = False):
    """The linear part of an affine op applied to ``x`` (``|W|`` with ``absolute``)."""
    tf = _tf()
    k = op.layer.kernel
    k = tf.abs(k) if absolute else k
    if op.kind == "conv":
        return _conv(x, k, op.layer)
    return tf.tensordot(x, k, axes=[[x.shape.rank - 1], [0]])


def _bias(op: Op):
    return op.layer.bias if op.layer.use_bias else None


def _dual_norm(op: Op, norm: str):
    """Per output unit: the dual norm of its weights (``||w||_2`` or ``max|w|``)."""
    tf = _tf()
    k = op.layer.kernel
    flat = tf.reshape(k, [-1, k.shape[-1]])
    return tf.norm(flat, axis=0) if norm == "l2" else tf.reduce_max(tf.abs(flat), axis=0)


def _bn_affine(layer, ref=None):
    """``scale, shift`` of a BatchNormalization layer: inference statistics,
    or (``ref`` given) the batch statistics of ``ref``."""
    tf = _tf()
    if ref is None:
        mean, var = layer.moving_mean, layer.moving_variance
    else:
        axes = list(range(ref.shape.rank - 1))
        mean, var = tf.nn.moments(ref, axes=axes)
    scale = tf.math.rsqrt(var + layer.epsilon)
    if layer.scale:
        scale = scale * layer.gamma
    shift = -mean * scale
    if layer.center:
        shift = shift + layer.beta
    return scale, shift


def _pool(x, layer, kind: str):
    tf = _tf()
    size, stride = int(layer.pool_size[0]), int(layer.strides[0])
    pad = layer.padding.upper()
    if kind == "maxpool":
        return tf.nn.max_pool1d(x, size, stride, pad)
    if pad == "SAME":
        raise DitmosError(f"layer '{layer.name}': AveragePooling1D with 'same' padding is not supported")
    return tf.nn.avg_pool1d(x, size, stride, pad)


def _reshape(x, layer):
    tf = _tf()
    shape = [tf.shape(x)[0]] + [int(s) if s is not None else -1 for s in layer.output.shape[1:]]
    return tf.reshape(x, shape)


def _act(layer, x):
    return layer.activation(x) if hasattr(layer, "activation") and not _is_relu_layer(layer) else layer(x)


def _is_relu_layer(layer):
    from keras import layers as kl

    return isinstance(layer, (kl.ReLU, kl.LeakyReLU))


def _apply_point(op: Op, x, training: bool):
    """The op on a point (the reference stream)."""
    if op.kind == "act_of":
        return op.layer.activation(x)
    if op.kind in ("conv", "dense"):
        y = _affine(op, x)
        b = _bias(op)
        return y if b is None else y + b
    if op.kind == "bn":
        return op.layer(x, training=training)
    if op.kind == "act":
        return _act(op.layer, x)
    if op.kind in ("maxpool", "avgpool"):
        return _pool(x, op.layer, op.kind)
    if op.kind == "gap":
        return _tf().reduce_mean(x, axis=1)
    if op.kind == "reshape":
        return _reshape(x, op.layer)
    raise ValueError(op.kind)


@dataclass
class PreLogitBounds:
    """The box ``[lo, hi]`` of the input of the final Dense layer, the layer,
    and the logits of the reference stream (when one was propagated)."""

    lo: object
    hi: object
    last: Op
    ref_logits: object = None


def propagate(model, centre, eps, norm: str = "linf", *, ref=None, training: bool = False, ops=None):
    """Bounds of the pre-logit activations for every window of ``centre``.

    ``centre``: ``[B, T, C]``; ``eps``: a scalar, a ``[B]`` tensor, or for
    ``norm="box"`` also a tensor broadcastable to ``centre``.  ``ref``: an
    optional batch of points run through the same layers; with ``training``
    its batch statistics normalise the BatchNormalization layers (whose
    moving statistics are updated as in a normal training step), otherwise
    the inference statistics are used everywhere.  Returns a
    :class:`PreLogitBounds`."""
    tf = _tf()
    if norm not in SETS:
        raise DitmosError(f"unknown input set {norm!r}; choose one of {', '.join(SETS)}")
    ops = ops if ops is not None else chain(model)
    centre = tf.convert_to_tensor(centre, tf.float32)
    eps = tf.convert_to_tensor(eps, tf.float32)
    if eps.shape.rank == 1:
        eps = tf.reshape(eps, [-1] + [1] * (centre.shape.rank - 1))
    first = True
    if norm in ("linf", "box"):
        mu, r, lo, hi = centre, tf.broadcast_to(eps, tf.shape(centre)), None, None
    else:
        mu, r, lo, hi = centre, None, None, None
    for op in ops[:-1]:
        if op.kind in ("conv", "dense"):
            if mu is None:
                mu, r = (lo + hi) / 2, (hi - lo) / 2
            m2 = _affine(op, mu)
            if r is None:  # an l_2 / l_1 ball at the first affine layer
                rad = _dual_norm(op, norm)
                r2 = eps * tf.ones_like(m2) * rad
            else:
                r2 = _affine(op, r, absolute=True)
            b = _bias(op)
            mu, r = (m2 if b is None else m2 + b), r2
            lo = hi = None
        elif op.kind == "bn":
            if mu is None:
                mu, r = (lo + hi) / 2, (hi - lo) / 2
            if r is None:  # a ball before any affine layer: its enclosing box
                r = tf.broadcast_to(eps, tf.shape(mu))
            scale, shift = _bn_affine(op.layer, ref if training else None)
            mu, r = mu * scale + shift, r * tf.abs(scale)
            lo = hi = None
        elif op.kind in ("gap", "avgpool", "reshape"):
            if mu is not None:
                if r is None:
                    r = tf.broadcast_to(eps, tf.shape(mu))
                mu, r = _apply_point(op, mu, False), _apply_point(op, r, False)
            else:
                lo, hi = _apply_point(op, lo, False), _apply_point(op, hi, False)
        else:  # monotone element-wise activations and max pooling
            if lo is None:
                if r is None:
                    r = tf.broadcast_to(eps, tf.shape(mu))
                lo, hi = mu - r, mu + r
            lo, hi = _apply_point(op, lo, False), _apply_point(op, hi, False)
            mu = r = None
        if ref is not None:
            ref = _apply_point(op, ref, training)
        first = False
    del first
    if lo is None:
        if r is None:
            r = tf.broadcast_to(eps, tf.shape(mu))
        lo, hi = mu - r, mu + r
    last = ops[-1]
    ref_logits = None if ref is None else _apply_point(last, ref, False)
    return PreLogitBounds(lo, hi, last, ref_logits)


def margin_lower_bounds(b: PreLogitBounds, y):
    """``[B, K]`` lower bounds of ``z_y - z_j`` over the input set (0 at j = y),
    from the box before the last layer and the label-difference rows of its
    weights."""
    tf = _tf()
    W = b.last.layer.kernel  # [F, K]
    y = tf.cast(y, tf.int32)
    wy = tf.transpose(tf.gather(W, y, axis=1))  # [B, F]
    wd = wy[:, :, None] - W[None]  # [B, F, K]
    mu, r = (b.lo + b.hi) / 2, (b.hi - b.lo) / 2
    lb = tf.einsum("bf,bfk->bk", mu, wd) - tf.einsum("bf,bfk->bk", r, tf.abs(wd))
    if b.last.layer.use_bias:
        bias = b.last.layer.bias
        lb = lb + tf.gather(bias, y)[:, None] - bias[None]
    k = tf.shape(W)[1]
    return tf.where(tf.one_hot(y, k) > 0, tf.zeros_like(lb), lb)


def worst_case_logits(lb):
    """Logits whose cross-entropy with the true label is the IBP loss:
    ``-lb`` (0 for the true class)."""
    return -lb


def logit_bounds(b: PreLogitBounds):
    """``(lo, hi)`` boxes of the logits themselves (no elision)."""
    W = b.last.layer.kernel
    tf = _tf()
    mu, r = (b.lo + b.hi) / 2, (b.hi - b.lo) / 2
    m = tf.matmul(mu, W)
    rr = tf.matmul(r, tf.abs(W))
    if b.last.layer.use_bias:
        m = m + b.last.layer.bias
    return m - rr, m + rr


# --------------------------------------------------------------------------- #
# Certification (numpy in, numpy out)
# --------------------------------------------------------------------------- #


def certify(model, x, y, radii: dict[str, float], *, batch: int = 500) -> dict[str, np.ndarray]:
    """Per window and norm: True when every margin's lower bound is positive
    over the norm's ball (float32 IBP with final-layer elision).  Keys: the
    norms of ``radii``, ``union`` (certified for all of them) and ``clean``
    (the unperturbed prediction is right)."""
    tf = _tf()
    ops = chain(model)
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    fns = {}
    for n in radii:
        if n not in ("linf", "l2", "l1"):
            raise DitmosError(f"unknown norm {n!r}; expected linf, l2 or l1")

        def fn(a, b, n=n):
            return margin_lower_bounds(propagate(model, a, float(radii[n]), n, ops=ops), b)

        fns[n] = tf.function(fn, reduce_retracing=True, autograph=False)
    out = {n: [] for n in radii}
    clean = []
    for i in range(0, len(x), batch):
        xb, yb = tf.constant(x[i : i + batch]), tf.constant(y[i : i + batch].astype(np.int32))
        clean.append(np.argmax(np.asarray(model(xb, training=False)), 1) == y[i : i + batch])
        for n, fn in fns.items():
            lb = np.asarray(fn(xb, yb))
            k = lb.shape[1]
            others = np.ones_like(lb, bool)
            others[np.arange(len(lb)), y[i : i + batch]] = False
            out[n].append(np.all(np.where(others, lb > 0, True), axis=1) if k > 1 else np.ones(len(lb), bool))
    res = {n: np.concatenate(v) for n, v in out.items()}
    res["clean"] = np.concatenate(clean) if clean else np.zeros(0, bool)
    u = res["clean"].copy()
    for n in radii:
        u &= res[n]
    res["union"] = u
    return res
