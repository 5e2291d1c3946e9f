"""Certificates of the int8 model: the bounded computation is the reference's
integer computation (bit for bit on a point), requantisation is monotone (the
property the interval end points rely on), and no sampled input of a
certified window's ball changes the int8 prediction."""

from __future__ import annotations

import numpy as np
import pytest

from ditmos.quantize import qmath


def test_requantisation_is_monotone_in_the_accumulator():
    rng = np.random.default_rng(0)
    acc = np.sort(rng.integers(-(1 << 20), 1 << 20, 20000))
    for real in (0.9, 0.013, 3.1e-4, 2.7e-6):
        m, s = qmath.quantize_multiplier(real)
        out = qmath.multiply_by_quantized_multiplier(acc, m, s)
        assert np.all(np.diff(out) >= 0)
        assert np.max(np.abs(out - acc * (m * 2.0 ** (s - 31)))) <= 1.0  # the bound the decision rule uses


@pytest.fixture(scope="module")
def single_int8(tiny_compare_networks):
    from ditmos.methods import method_run_dir
    from ditmos.quantize import quantize_run

    cnn = method_run_dir(tiny_compare_networks, "weak_equal_macs")
    if not (cnn / "int8" / "manifest.json").is_file():
        quantize_run(tiny_compare_networks, method="weak_equal_macs", calibration_samples=100, quiet=True)
    return cnn


@pytest.mark.slow
def test_int8_bounds_match_the_reference_and_are_sound(single_int8):
    from ditmos.quantize.reference import NetworkReference
    from ditmos.robust.int8_bounds import Int8Network
    from ditmos.training.rundir import load_run_data

    data = load_run_data(single_int8)
    x, y = data.x_test[:24].astype(np.float32), data.y_test[:24]
    net = Int8Network(single_int8 / "int8")
    ref = NetworkReference(single_int8 / "int8")
    xq = ref.quantize_input(x)
    theirs = np.stack([ref.predict_one(xq[i])[2].reshape(-1) for i in range(len(xq))])
    assert np.array_equal(net.logits(xq), theirs)
    right = np.argmax(theirs, 1) == y
    rng = np.random.default_rng(0)
    s = net.in_scale
    certified = 0
    # a 1-epoch tiny model has small margins: radii of a few percent of an input step
    for norm, eps in (("linf", 0.0), ("linf", 0.01 * s), ("l2", 0.03 * s), ("l1", 0.03 * s)):
        cert = net.certified(x, y, eps, norm)
        assert not np.any(cert & ~right)
        if eps == 0:
            assert cert.sum() >= 0.9 * right.sum()
        idx = np.where(cert)[0]
        certified += len(idx) if eps > 0 else 0
        for _ in range(15 if len(idx) else 0):
            d = rng.standard_normal(x[idx].shape)
            flat = d.reshape(len(idx), -1)
            if norm == "linf":
                flat[:] = eps * np.sign(flat)
            elif norm == "l2":
                flat *= eps / np.linalg.norm(flat, axis=1, keepdims=True)
            else:
                keep = np.abs(flat) >= np.sort(np.abs(flat), axis=1)[:, -3:-2]
                flat *= keep
                flat *= eps / np.abs(flat).sum(axis=1, keepdims=True)
            p = np.argmax(net.logits(ref.quantize_input((x[idx] + d).astype(np.float32))), 1)
            assert np.array_equal(p, y[idx]), norm
    assert certified > 0  # the sampling checked some certified windows
