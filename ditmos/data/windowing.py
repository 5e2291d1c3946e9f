"""Sliding windows over one continuous recording."""

from __future__ import annotations

import numpy as np


def num_windows(length: int, window: int, hop: int) -> int:
    """How many full windows of ``window`` samples, ``hop`` apart, fit in ``length``."""
    return 0 if length < window else 1 + (length - window) // hop


def sliding_windows(signal: np.ndarray, window: int, hop: int) -> np.ndarray:
    """``signal [L, C]`` -> ``[num_windows, window, C]`` (a copy); partial windows are not made.

    Window ``i`` covers samples ``i*hop .. i*hop+window-1``.
    """
    n = num_windows(len(signal), window, hop)
    if n == 0:
        return np.empty((0, window) + signal.shape[1:], dtype=signal.dtype)
    view = np.lib.stride_tricks.sliding_window_view(signal, window, axis=0)[::hop][:n]
    # sliding_window_view puts the window axis last: [n, C, window] -> [n, window, C]
    return np.ascontiguousarray(np.moveaxis(view, -1, 1))


def uncovered_tail(length: int, window: int, hop: int) -> int:
    """Samples at the end of a recording that no window covers."""
    n = num_windows(length, window, hop)
    return length if n == 0 else length - ((n - 1) * hop + window)
