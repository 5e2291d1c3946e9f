"""Each int8 kernel, both kernel sets, against TFLM on single-op models.

Models are converted from tiny Keras models (full int8) with randomised
shapes, strides, paddings, channel counts (odd ones included), activations and
calibration ranges (hence scales and zero points); every case runs several
random int8 inputs through TFLM and through the C kernels, zero tolerance.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import pytest

from kernel_lib import KERNEL_SETS, Kernels, build_shared
from kernel_models import (
    TfliteModel,
    activation_range,
    convert,
    quantize_multiplier,
    randomise_weights,
    repack,
    reshape_to_quantize,
    run_tflm,
    set_quant,
    window_geometry,
)

N_INPUTS = 4  # random int8 inputs per model


@pytest.fixture(scope="session")
def kernels(tmp_path_factory) -> dict[str, Kernels]:
    out = tmp_path_factory.mktemp("kernels")
    return {s: Kernels(build_shared(s, out)) for s in KERNEL_SETS}


def _keras():
    import keras

    return keras


def _rand_inputs(model: TfliteModel, rng) -> list[np.ndarray]:
    return [
        rng.integers(-128, 128, size=model.tensor(i).shape, dtype=np.int64).astype(np.int8) for i in model.sg.inputs
    ]


def _input_position(model: TfliteModel, tensor_index: int) -> int:
    """Follow RESHAPE/EXPAND_DIMS (byte copies) back to a subgraph input."""
    inputs = list(model.sg.inputs)
    while tensor_index not in inputs:
        name, op = model.producer(tensor_index)
        if name not in ("RESHAPE", "EXPAND_DIMS", "SQUEEZE"):
            raise AssertionError(f"tensor {tensor_index} comes from {name}")
        tensor_index = op.inputs[0]
    return inputs.index(tensor_index)


def _ranges(rng, n):
    return [(float(rng.uniform(0.3, 4.0)), float(rng.uniform(-2.0, 2.0))) for _ in range(n)]


def _check(kernels, model, rng, compute, packed=None):
    """compute(kernel_set, inputs) -> output; compare with TFLM for N_INPUTS inputs.
    packed(inputs) -> output, if given: the cm7 register-blocked variant too."""
    for _ in range(N_INPUTS):
        xs = _rand_inputs(model, rng)
        want = run_tflm(model, xs)[0]
        for s in KERNEL_SETS:
            got = compute(kernels[s], xs)
            np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=f"kernel set {s}")
        if packed is not None:
            np.testing.assert_array_equal(packed(xs).reshape(want.shape), want, err_msg="cm7 dtm_conv1d_packed_s8")


def _packed_call(kernel, fields, weights, bias, mult, shift):
    """The codegen variant of a dtm_conv1d_s8 / dtm_fully_connected_s8 call (or None with
    the reason it does not qualify)."""
    from ditmos.codegen import variants
    from ditmos.codegen.lowering import Call, ConstArray

    arrays = {
        "weights": ConstArray("int8_t", np.asarray(weights), "weights"),
        "multiplier": ConstArray("int32_t", np.asarray(mult), "multiplier"),
        "shift": ConstArray("int32_t", np.asarray(shift), "shift"),
    }
    if bias is not None:
        arrays["bias"] = ConstArray("int32_t", np.asarray(bias), "bias")
    call = Call(kernel, "", fields, arrays, ["x"], "y", macs=1)
    new, why = variants.choose(call, "cm7")
    return (new, why) if new.kernel == variants.PACKED else (None, why)


# ------------------------------------------------------------------ conv1d

CONV_CASES = [
    # T, part channels, Cout, K, stride, padding, activation, bias
    (16, (3,), 8, 5, 1, "same", "relu", True),
    (21, (3,), 7, 4, 2, "valid", None, True),
    (33, (1,), 5, 15, 1, "same", "relu6", True),
    (17, (5,), 4, 3, 3, "same", None, False),
    (12, (8,), 8, 9, 1, "valid", "relu", True),
    (30, (6,), 9, 6, 2, "same", "relu", True),
    (9, (2,), 3, 9, 1, "same", None, True),
    (25, (13,), 11, 1, 1, "valid", "relu", True),
    (40, (4, 4), 8, 9, 1, "same", "relu", True),
    (19, (3, 5), 6, 3, 2, "same", None, True),
    (23, (7, 1), 5, 4, 1, "valid", "relu6", True),
    (14, (2, 3, 4), 3, 5, 2, "same", "relu", False),
]


@functools.lru_cache(maxsize=None)
def _conv_model(case):
    keras = _keras()
    T, parts, cout, K, stride, padding, act, bias = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    ins = [keras.Input((T, c), batch_size=1) for c in parts]
    x = ins[0] if len(ins) == 1 else keras.layers.Concatenate()(ins)
    y = keras.layers.Conv1D(cout, K, strides=stride, padding=padding, activation=act, use_bias=bias)(x)
    m = keras.Model(ins, y)
    randomise_weights(m, rng)
    return convert(m, [(T, c) for c in parts], rng, _ranges(rng, len(parts)))


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv1d_matches_tflm(kernels, case):
    model = _conv_model(case)
    op = model.find("CONV_2D")
    o = op.builtinOptions
    assert o.strideH == 1 and o.dilationWFactor == 1
    w = model.buffer(op.inputs[1], np.int8)  # [O][1][K][I]
    cout, _, K, cin = w.shape
    bias = model.buffer(op.inputs[2], np.int32) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    s_in, zp_in = model.scale_zp(op.inputs[0])
    s_w, _ = model.quant(op.inputs[1])
    s_out, zp_out = model.scale_zp(op.outputs[0])
    qm = [quantize_multiplier(float(s_in) * float(s_w[c if s_w.size > 1 else 0]) / float(s_out)) for c in range(cout)]
    lo, hi = activation_range(o.fusedActivationFunction, s_out, zp_out)
    T, parts = case[0], case[1]
    out_len, pad = window_geometry(T, K, o.strideW, o.padding)
    # part-major weights (firmware/kernels/README.md)
    bounds = np.cumsum((0,) + parts)
    w3 = w.reshape(cout, K, cin)
    w_pm = np.concatenate([w3[:, :, a:b].reshape(cout, -1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
    concat = model.op_names()[0] == "CONCATENATION"
    order = (
        [_input_position(model, t) for t in model.find("CONCATENATION").inputs]
        if concat
        else [_input_position(model, op.inputs[0])]
    )
    rng = np.random.default_rng(len(CONV_CASES))

    def compute(k, xs):
        xs = [xs[i].reshape(T, -1) for i in order]
        return k.conv1d(
            [(x, -zp_in) for x in xs],
            w_pm,
            bias,
            [m for m, _ in qm],
            [s for _, s in qm],
            kernel_size=K,
            stride=o.strideW,
            pad=pad,
            out_len=out_len,
            output_offset=zp_out,
            act_min=lo,
            act_max=hi,
        )

    fields = dict(
        parts=[dict(channels=c, input_offset=-zp_in) for c in parts],
        in_len=T,
        out_len=out_len,
        out_channels=cout,
        kernel_size=K,
        stride=o.strideW,
        pad=pad,
        output_offset=zp_out,
        act_min=lo,
        act_max=hi,
    )
    call, why = _packed_call("dtm_conv1d_s8", fields, w_pm, bias, [m for m, _ in qm], [s for _, s in qm])
    assert call is not None or "window of" in why, why

    def packed(xs):
        return kernels["cm7"].packed(call, [xs[i].reshape(T, -1) for i in order])

    _check(kernels, model, rng, compute, packed if call is not None else None)


# ------------------------------------------------------------------ depthwise

DW_CASES = [
    (16, 3, 1, 5, 1, "same", "relu"),
    (21, 4, 2, 3, 2, "valid", None),
    (13, 5, 3, 4, 1, "same", "relu6"),
    (30, 8, 1, 9, 3, "same", None),
]


@functools.lru_cache(maxsize=None)
def _dw_model(case):
    keras = _keras()
    T, C, M, K, stride, padding, act = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    x = keras.Input((T, C), batch_size=1)
    y = keras.layers.DepthwiseConv1D(K, strides=stride, padding=padding, depth_multiplier=M, activation=act)(x)
    m = keras.Model(x, y)
    randomise_weights(m, rng)
    return convert(m, [(T, C)], rng, _ranges(rng, 1))


@pytest.mark.parametrize("case", DW_CASES, ids=[str(i) for i in range(len(DW_CASES))])
def test_depthwise_conv1d_matches_tflm(kernels, case):
    model = _dw_model(case)
    op = model.find("DEPTHWISE_CONV_2D")
    o = op.builtinOptions
    w = model.buffer(op.inputs[1], np.int8)  # [1][1][K][C*M]
    K, cout = w.shape[2], w.shape[3]
    bias = model.buffer(op.inputs[2], np.int32)
    s_in, zp_in = model.scale_zp(op.inputs[0])
    s_w, _ = model.quant(op.inputs[1])
    s_out, zp_out = model.scale_zp(op.outputs[0])
    qm = [quantize_multiplier(float(s_in) * float(s_w[c if s_w.size > 1 else 0]) / float(s_out)) for c in range(cout)]
    lo, hi = activation_range(o.fusedActivationFunction, s_out, zp_out)
    T, C = case[0], case[1]
    out_len, pad = window_geometry(T, K, o.strideW, o.padding)

    def compute(k, xs):
        return k.depthwise_conv1d(
            xs[0].reshape(T, C),
            w.reshape(K, cout),
            bias,
            [m for m, _ in qm],
            [s for _, s in qm],
            depth_multiplier=o.depthMultiplier,
            kernel_size=K,
            stride=o.strideW,
            pad=pad,
            out_len=out_len,
            input_offset=-zp_in,
            output_offset=zp_out,
            act_min=lo,
            act_max=hi,
        )

    _check(kernels, model, np.random.default_rng(7), compute)


# ------------------------------------------------------------------ fully connected

FC_CASES = [
    (12, 5, "relu", True),
    (64, 6, None, True),
    (176, 17, "relu", False),
    (33, 64, None, False),
    (7, 3, "relu6", True),
]


@functools.lru_cache(maxsize=None)
def _fc_model(case):
    import tensorflow as tf

    keras = _keras()
    N, O, act, per_channel = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    x = keras.Input((N,), batch_size=1)
    m = keras.Model(x, keras.layers.Dense(O, activation=act)(x))
    randomise_weights(m, rng)
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel
    return convert(m, [(N,)], rng, _ranges(rng, 1), converter=conv)


@pytest.mark.parametrize("case", FC_CASES, ids=[str(i) for i in range(len(FC_CASES))])
def test_fully_connected_matches_tflm(kernels, case):
    model = _fc_model(case)
    op = model.find("FULLY_CONNECTED")
    w = model.buffer(op.inputs[1], np.int8)
    _, zp_w = model.quant(op.inputs[1])
    assert not zp_w.any()
    bias = model.buffer(op.inputs[2], np.int32) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    s_in, zp_in = model.scale_zp(op.inputs[0])
    s_w, _ = model.quant(op.inputs[1])
    assert (s_w.size > 1) == case[3]
    s_out, zp_out = model.scale_zp(op.outputs[0])
    qm = [quantize_multiplier(float(s_in) * float(s) / float(s_out)) for s in s_w]
    lo, hi = activation_range(op.builtinOptions.fusedActivationFunction, s_out, zp_out)

    def compute(k, xs):
        return k.fully_connected(
            xs[0].reshape(1, -1),
            w,
            bias,
            [m for m, _ in qm],
            [s for _, s in qm],
            input_offset=-zp_in,
            output_offset=zp_out,
            act_min=lo,
            act_max=hi,
        )

    fields = dict(
        batches=1,
        in_features=w.shape[1],
        out_features=w.shape[0],
        input_offset=-zp_in,
        per_channel=int(case[3]),
        output_offset=zp_out,
        act_min=lo,
        act_max=hi,
    )
    call, why = _packed_call("dtm_fully_connected_s8", fields, w, bias, [m for m, _ in qm], [s for _, s in qm])
    assert call is not None, why

    def packed(xs):
        return kernels["cm7"].packed(call, [xs[0].reshape(1, -1)])

    _check(kernels, model, np.random.default_rng(8), compute, packed)


# ------------------------------------------------------------------ pooling

POOL_CASES = [
    ("max", 16, 3, 2, 2, "valid"),
    ("max", 15, 5, 3, 2, "same"),
    ("max", 9, 8, 4, 4, "same"),
    ("avg", 16, 3, 2, 2, "valid"),
    ("avg", 15, 5, 3, 2, "same"),
    ("avg", 11, 7, 4, 3, "same"),
]


@functools.lru_cache(maxsize=None)
def _pool_model(case):
    keras = _keras()
    kind, T, C, P, S, padding = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    layer = keras.layers.MaxPooling1D if kind == "max" else keras.layers.AveragePooling1D
    x = keras.Input((T, C), batch_size=1)
    return convert(keras.Model(x, layer(P, S, padding=padding)(x)), [(T, C)], rng, _ranges(rng, 1))


@pytest.mark.parametrize("case", POOL_CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(POOL_CASES)])
def test_pool1d_matches_tflm(kernels, case):
    model = _pool_model(case)
    kind, T, C = case[:3]
    op = model.find("MAX_POOL_2D" if kind == "max" else "AVERAGE_POOL_2D")
    o = op.builtinOptions
    assert model.scale_zp(op.inputs[0]) == model.scale_zp(op.outputs[0])
    s_out, zp_out = model.scale_zp(op.outputs[0])
    lo, hi = activation_range(o.fusedActivationFunction, s_out, zp_out)
    out_len, pad = window_geometry(T, o.filterWidth, o.strideW, o.padding)

    def compute(k, xs):
        return k.pool1d(
            kind,
            xs[0].reshape(T, C),
            pool_size=o.filterWidth,
            stride=o.strideW,
            pad=pad,
            out_len=out_len,
            act_min=lo,
            act_max=hi,
        )

    _check(kernels, model, np.random.default_rng(9), compute)


# ------------------------------------------------------------------ mean, softmax, argmax, add


@functools.lru_cache(maxsize=None)
def _unary_model(kind, T, C, seed):
    import tensorflow as tf

    keras = _keras()
    rng = np.random.default_rng(seed)
    shape = (T, C) if T else (C,)
    x = keras.Input(shape, batch_size=1)
    if kind == "mean":
        y = keras.layers.GlobalAveragePooling1D()(x)
    elif kind == "mean_rescaled":
        y = keras.layers.GlobalAveragePooling1D()(keras.layers.Activation("relu")(x))
    elif kind == "softmax":
        y = keras.layers.Activation("softmax")(x)
    else:
        y = keras.layers.Lambda(lambda v: tf.math.argmax(v, axis=-1, output_type=tf.int32))(x)
    return convert(keras.Model(x, y), [shape], rng, _ranges(rng, 1))


@pytest.mark.parametrize(
    "T,C,same",
    [(16, 3, False), (75, 8, False), (7, 13, False), (128, 4, False), (16, 3, True), (75, 8, True), (5, 7, True)],
)
def test_mean_matches_tflm(kernels, T, C, same):
    model = _unary_model("mean", T, C, T * 100 + C)
    if same:  # TFLM's plain-division path: output quantised like the input
        model = TfliteModel(model.data)
        op = model.find("MEAN")
        set_quant(model, op.outputs[0], *model.scale_zp(op.inputs[0]))
        model = repack(model)
    op = model.find("MEAN")
    s_in, zp_in = model.scale_zp(op.inputs[0])
    s_out, zp_out = model.scale_zp(op.outputs[0])
    assert same == bool(np.float32(s_in) == np.float32(s_out) and zp_in == zp_out)
    m, s = quantize_multiplier(float(s_in) / float(s_out))

    def compute(k, xs):
        return k.mean(xs[0].reshape(T, C), input_zero_point=zp_in, output_zero_point=zp_out, multiplier=m, shift=s)

    _check(kernels, model, np.random.default_rng(10), compute)


@pytest.mark.parametrize("C", [3, 6, 10, 17, 64])
def test_softmax_matches_tflm(kernels, C):
    rows = 64  # one invoke computes 64 independent rows
    model = _unary_model("softmax", rows, C, C)
    op = model.find("SOFTMAX")
    s_in, _ = model.scale_zp(op.inputs[0])
    assert model.scale_zp(op.outputs[0]) == (1.0 / 256, -128)
    beta = float(op.builtinOptions.beta)
    real = min(beta * float(s_in) * (1 << (31 - 5)), (1 << 31) - 1.0)
    mult, left = quantize_multiplier(real)
    diff_min = -int(np.floor(((1 << 5) - 1) * (1 << (31 - 5)) / (1 << left)))

    def compute(k, xs):
        return k.softmax(xs[0].reshape(rows, C), input_multiplier=mult, input_left_shift=left, diff_min=diff_min)

    _check(kernels, model, np.random.default_rng(11), compute)


@pytest.mark.parametrize("C", [2, 6, 17])
def test_argmax_matches_tflm(kernels, C):
    model = _unary_model("argmax", 0, C, C)
    model.find("ARG_MAX")
    rng = np.random.default_rng(12)
    for _ in range(8):
        x = rng.integers(-3, 3, size=(1, C)).astype(np.int8)  # many ties
        want = run_tflm(model, [x])[0]
        for s in KERNEL_SETS:
            np.testing.assert_array_equal(kernels[s].argmax(x).reshape(want.shape), want)


@functools.lru_cache(maxsize=None)
def _add_model(N, act, seed):
    keras = _keras()
    rng = np.random.default_rng(seed)
    a, b = keras.Input((N,), batch_size=1), keras.Input((N,), batch_size=1)
    y = keras.layers.Add()([a, b])
    if act:
        y = keras.layers.Activation(act)(y)
    return convert(keras.Model([a, b], y), [(N,), (N,)], rng, _ranges(rng, 2))


@pytest.mark.parametrize("N,act,seed", [(12, None, 1), (40, "relu", 2), (9, None, 3)])
def test_add_matches_tflm(kernels, N, act, seed):
    model = _add_model(N, act, seed)
    op = model.find("ADD")
    (s1, z1), (s2, z2) = model.scale_zp(op.inputs[0]), model.scale_zp(op.inputs[1])
    s_out, zp_out = model.scale_zp(op.outputs[0])
    twice = 2 * max(float(s1), float(s2))
    m1, sh1 = quantize_multiplier(float(s1) / twice)
    m2, sh2 = quantize_multiplier(float(s2) / twice)
    mo, sho = quantize_multiplier(twice / ((1 << 20) * float(s_out)))
    lo, hi = activation_range(op.builtinOptions.fusedActivationFunction, s_out, zp_out)
    pos = [_input_position(model, t) for t in op.inputs]

    def compute(k, xs):
        return k.add(
            xs[pos[0]].ravel(),
            xs[pos[1]].ravel(),
            left_shift=20,
            input1_offset=-z1,
            input1_multiplier=m1,
            input1_shift=sh1,
            input2_offset=-z2,
            input2_multiplier=m2,
            input2_shift=sh2,
            output_offset=zp_out,
            output_multiplier=mo,
            output_shift=sho,
            act_min=lo,
            act_max=hi,
        )

    _check(kernels, model, np.random.default_rng(13), compute)


# ------------------------------------------------------------------ requantize


@functools.lru_cache(maxsize=None)
def _reshape_model():
    keras = _keras()
    rng = np.random.default_rng(14)
    x = keras.Input((10, 6), batch_size=1)
    return convert(keras.Model(x, keras.layers.Reshape((60,))(x)), [(10, 6)], rng, _ranges(rng, 1))


def test_requantize_matches_tflm(kernels):
    """int8 -> int8 QUANTIZE over random output scales (up and down) and zero points."""
    rng = np.random.default_rng(15)
    for _ in range(24):
        base = TfliteModel(_reshape_model().data)
        s_in, zp_in = base.scale_zp(base.sg.inputs[0])
        s_out = float(np.float32(s_in * rng.choice([rng.uniform(0.05, 1.0), rng.uniform(1.0, 20.0)])))
        zp_out = int(rng.integers(-128, 128))
        model = reshape_to_quantize(base, s_out, zp_out)
        s_out, zp_out = model.scale_zp(model.sg.outputs[0])
        m, s = quantize_multiplier(float(s_in) / float(s_out))

        def compute(k, xs, zp_in=zp_in, zp_out=zp_out, m=m, s=s):
            return k.requantize(xs[0].ravel(), input_zero_point=zp_in, output_zero_point=zp_out, multiplier=m, shift=s)

        _check(kernels, model, rng, compute)
