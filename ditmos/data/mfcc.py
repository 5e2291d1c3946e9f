"""A numpy MFCC front end with every parameter fixed and documented.

The firmware reproduces exactly this chain, so each step is spelled out
(defaults in :class:`MfccConfig`):

1. Input: ``sample_rate`` (16 kHz) mono audio as float in [-1, 1) (int16 / 32768),
   exactly ``clip_samples`` (16000 = 1 s): shorter clips are zero-padded at the
   end, longer ones cut at the end.
2. Frames: ``frame_length`` = 480 samples (30 ms), ``hop_length`` = 320
   (20 ms), no padding: ``1 + (16000 - 480) // 320 = 49`` frames; frame ``t``
   starts at sample ``t * hop_length``.
3. Window: periodic Hamming ``w[n] = 0.54 - 0.46 cos(2 pi n / N)``,
   ``N = frame_length``, ``n = 0..N-1``.  No pre-emphasis, no mean removal.
4. Power spectrum: real FFT of ``n_fft`` = 512 points (frame zero-padded),
   ``P[k] = |X[k]|^2``, ``k = 0..256``.
5. Mel filterbank: ``n_mels`` = 40 triangles, HTK mel scale
   ``mel(f) = 2595 log10(1 + f / 700)``; ``n_mels + 2`` edges equally spaced in
   mel between ``f_min`` = 20 Hz and ``f_max`` = 7600 Hz; filter ``m`` rises
   linearly from edge ``m`` to 1 at edge ``m+1`` and falls to 0 at edge ``m+2``,
   evaluated at the bin frequencies ``k * sample_rate / n_fft`` (peak 1, no
   area normalisation).
6. Log: ``E_m = ln(sum_k fb[m, k] P[k] + log_floor)``, ``log_floor`` = 1e-6.
7. DCT-II, orthonormal: ``c_i = s_i sum_m E_m cos(pi i (m + 0.5) / n_mels)``,
   ``s_0 = sqrt(1 / n_mels)``, ``s_i = sqrt(2 / n_mels)``; keep ``n_coeffs`` = 13
   (``c_0`` included, no liftering).

Output: float32 ``[frames, n_coeffs]`` per clip (``[49, 13]`` by default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MfccConfig:
    sample_rate: int = 16000
    clip_samples: int = 16000
    frame_length: int = 480
    hop_length: int = 320
    n_fft: int = 512
    n_mels: int = 40
    f_min: float = 20.0
    f_max: float = 7600.0
    n_coeffs: int = 13
    log_floor: float = 1e-6

    @property
    def num_frames(self) -> int:
        return 1 + (self.clip_samples - self.frame_length) // self.hop_length

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "num_frames": self.num_frames,
            "window": "hamming (periodic)",
            "mel_scale": "htk",
            "dct": "type II, orthonormal",
        }


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def hamming_window(n: int) -> np.ndarray:
    """Periodic Hamming window of length ``n`` (float64)."""
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(n) / n)


def mel_filterbank(cfg: MfccConfig = MfccConfig()) -> np.ndarray:
    """``[n_mels, n_fft // 2 + 1]`` triangular weights (float64), see step 5."""
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2))
    freqs = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate / cfg.n_fft
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lo) / (mid - lo)
    falling = (hi - freqs) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling))


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` orthonormal DCT-II matrix (rows = coefficients)."""
    i = np.arange(n_out)[:, None]
    m = np.arange(n_in)[None, :]
    scale = np.where(i == 0, np.sqrt(1.0 / n_in), np.sqrt(2.0 / n_in))
    return scale * np.cos(np.pi * i * (m + 0.5) / n_in)


def fit_clip(audio: np.ndarray, cfg: MfccConfig = MfccConfig()) -> np.ndarray:
    """Zero-pad at the end or cut at the end to ``clip_samples`` (step 1)."""
    audio = np.asarray(audio, dtype=np.float64)
    if len(audio) >= cfg.clip_samples:
        return audio[: cfg.clip_samples]
    return np.pad(audio, (0, cfg.clip_samples - len(audio)))


def mfcc(clips: np.ndarray, cfg: MfccConfig = MfccConfig()) -> np.ndarray:
    """MFCC of clips ``[clip_samples]`` or ``[B, clip_samples]`` -> ``[(B,) frames, n_coeffs]`` float32."""
    clips = np.asarray(clips, dtype=np.float64)
    single = clips.ndim == 1
    if single:
        clips = clips[None]
    if clips.ndim != 2 or clips.shape[1] != cfg.clip_samples:
        raise ValueError(f"mfcc expects clips of {cfg.clip_samples} samples, got shape {clips.shape}")
    frames = np.lib.stride_tricks.sliding_window_view(clips, cfg.frame_length, axis=1)
    frames = frames[:, :: cfg.hop_length][:, : cfg.num_frames] * hamming_window(cfg.frame_length)
    power = np.abs(np.fft.rfft(frames, n=cfg.n_fft, axis=-1)) ** 2
    log_mel = np.log(power @ mel_filterbank(cfg).T + cfg.log_floor)
    out = (log_mel @ dct_matrix(cfg.n_mels, cfg.n_coeffs).T).astype(np.float32)
    return out[0] if single else out
