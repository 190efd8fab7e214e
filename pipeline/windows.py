"""Slicing signals into fixed-length analysis windows.

Training, ``classify`` and the daemon all cut audio the same way: windows of
``window`` seconds every ``hop`` seconds.  A signal shorter than one window is
tiled (repeat-padded, as musicnn was trained) so short clips still yield one
window instead of silently vanishing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSpec:
    """Window geometry in samples at a given rate."""

    sample_rate: int
    window_seconds: float
    hop_seconds: float

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.window_seconds <= 0 or self.hop_seconds <= 0:
            raise ValueError(
                f"window and hop must be positive, got {self.window_seconds}, {self.hop_seconds}"
            )

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return max(1, int(round(self.hop_seconds * self.sample_rate)))


def tile_to_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Repeat ``samples`` until it is ``length`` long (an empty signal becomes zeros)."""
    if samples.size >= length:
        return samples[:length]
    if samples.size == 0:
        return np.zeros(length, dtype=np.float32)
    reps = -(-length // samples.size)
    return np.tile(samples, reps)[:length]


def frame_windows(samples: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``samples`` into windows.

    Returns
    -------
    windows : float32 array ``(n, window_samples)``; a copy, safe to keep.
    starts : float64 array ``(n,)`` of window start times in seconds.
    """
    win, hop = spec.window_samples, spec.hop_samples
    if samples.size < win:
        return tile_to_length(samples, win)[None, :].astype(np.float32), np.zeros(1)
    n = 1 + (samples.size - win) // hop
    view = np.lib.stride_tricks.sliding_window_view(samples, win)[::hop][:n]
    starts = np.arange(n, dtype=np.float64) * hop / spec.sample_rate
    return np.ascontiguousarray(view, dtype=np.float32), starts


def spread_windows(samples: np.ndarray, spec: WindowSpec, max_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`frame_windows` but at most ``max_windows`` windows spread evenly over the signal.

    Full-length songs have a few hundred windows; classifying a song from an
    even spread over its whole length is nearly as accurate and much cheaper.
    """
    windows, starts = frame_windows(samples, spec)
    if len(windows) <= max_windows:
        return windows, starts
    idx = np.unique(np.linspace(0, len(windows) - 1, max_windows).round().astype(int))
    return windows[idx], starts[idx]


def rms_dbfs(windows: np.ndarray) -> np.ndarray:
    """RMS level of each row of ``windows`` in dB relative to full scale (a 0 dBFS sine reads -3 dB)."""
    power = np.mean(np.square(windows, dtype=np.float64), axis=-1)
    return 10.0 * np.log10(np.maximum(power, 1e-20))
