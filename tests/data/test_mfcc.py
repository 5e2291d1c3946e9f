"""The numpy MFCC front end against an independent scipy computation and known properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.signal

from ditmos.data.mfcc import MfccConfig, dct_matrix, fit_clip, hamming_window, mel_filterbank, mfcc

CFG = MfccConfig()


def reference_mfcc(clip: np.ndarray) -> np.ndarray:
    """Written from the documented parameters with scipy, frame by frame, filter by filter."""
    window = scipy.signal.get_window("hamming", 480)  # periodic
    rate, nfft = 16000, 512
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = [inv(m) for m in np.linspace(mel(20.0), mel(7600.0), 42)]
    out = []
    for t in range(49):
        frame = clip[t * 320 : t * 320 + 480] * window
        spec = np.abs(scipy.fft.rfft(frame, n=nfft)) ** 2
        energies = []
        for m in range(40):
            lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
            e = 0.0
            for k in range(nfft // 2 + 1):
                f = k * rate / nfft
                if lo < f < hi:
                    w = (f - lo) / (mid - lo) if f <= mid else (hi - f) / (hi - mid)
                    e += w * spec[k]
            energies.append(np.log(e + 1e-6))
        out.append(scipy.fft.dct(np.array(energies), type=2, norm="ortho")[:13])
    return np.array(out)


def test_matches_independent_computation():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    clip = 0.3 * np.sin(2 * np.pi * 440 * t) * np.hanning(16000) + 0.01 * rng.standard_normal(16000)
    ours = mfcc(clip)
    assert ours.shape == (49, 13) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_mfcc(clip), rtol=1e-4, atol=1e-3)


def test_batch_equals_single():
    rng = np.random.default_rng(1)
    clips = 0.1 * rng.standard_normal((3, 16000))
    batch = mfcc(clips)
    for i in range(3):
        np.testing.assert_array_equal(batch[i], mfcc(clips[i]))


def test_building_blocks():
    np.testing.assert_allclose(hamming_window(480), scipy.signal.get_window("hamming", 480), atol=1e-15)
    np.testing.assert_allclose(dct_matrix(40, 40), scipy.fft.dct(np.eye(40), type=2, norm="ortho", axis=0), atol=1e-12)
    d = dct_matrix(40, 13)
    np.testing.assert_allclose(d @ d.T, np.eye(13), atol=1e-12)  # orthonormal rows
    fb = mel_filterbank(CFG)
    assert fb.shape == (40, 257) and fb.min() >= 0 and fb.max() <= 1
    peaks = np.argmax(fb, axis=1)
    assert np.all(np.diff(peaks) >= 0) and np.all(fb.sum(axis=1) > 0)
    freqs = np.arange(257) * 16000 / 512
    assert np.all(fb[:, (freqs < 20) | (freqs > 7600)] == 0)


def test_constant_log_energy_only_has_c0():
    # white noise has a flat spectrum: the DCT of a flat log-mel vector is all c0
    d = dct_matrix(40, 13)
    c = d @ np.full(40, 2.5)
    assert c[0] == pytest.approx(2.5 * np.sqrt(40)) and np.abs(c[1:]).max() < 1e-12


def test_tone_lands_in_the_right_band():
    t = np.arange(16000) / 16000
    clip = 0.5 * np.sin(2 * np.pi * 1000 * t)
    frames = np.lib.stride_tricks.sliding_window_view(clip, 480)[::320][:49] * hamming_window(480)
    power = np.abs(np.fft.rfft(frames, n=512)) ** 2
    band = np.argmax(power @ mel_filterbank(CFG).T, axis=1)
    edges_hz = 700 * (
        10 ** (np.linspace(2595 * np.log10(1 + 20 / 700), 2595 * np.log10(1 + 7600 / 700), 42) / 2595) - 1
    )
    assert np.all(edges_hz[band] < 1000) and np.all(edges_hz[band + 2] > 1000)


def test_fit_clip_and_bad_length():
    assert fit_clip(np.ones(100)).shape == (16000,) and fit_clip(np.ones(100))[100:].max() == 0
    assert fit_clip(np.arange(20000.0))[-1] == 15999
    with pytest.raises(ValueError, match="16000 samples"):
        mfcc(np.zeros(15999))
    assert CFG.to_dict()["num_frames"] == 49
