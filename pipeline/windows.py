"""Slicing signals into fixed-length analysis windows.

Training, ``classify`` and the daemon all cut audio the same way: windows of
``window`` seconds every ``hop`` seconds.  A signal shorter than one window is
tiled (repeat-padded, as musicnn was trained) so short clips still yield one
window instead of silently vanishing.

The geometry is written once, here: :func:`frame_count` (how many windows),
:func:`frame_starts` (where they start) and :func:`spread_indices` (which of
them an even spread keeps).  :func:`frame_windows`, ``classify``'s streaming
reader, the daemon's ring buffer and the tf.data evaluation reader all cut by
these three.
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


def frame_count(n_samples: int, window_samples: int, hop_samples: int, *, tile_short: bool = True) -> int:
    """Number of windows cut from ``n_samples`` samples: one starting every ``hop_samples`` while a
    whole window of ``window_samples`` fits.

    A signal shorter than one window gives one (tiled) window when ``tile_short``, as a whole clip
    does, and none otherwise, as a stream that has not yet filled its first window does.
    """
    if n_samples < window_samples:
        return 1 if tile_short else 0
    return 1 + (n_samples - window_samples) // hop_samples


def frame_starts(n_samples: int, window_samples: int, hop_samples: int) -> np.ndarray:
    """Start sample of every window of :func:`frame_count` (int64 ``(n,)``): ``0, hop, 2 hop, ...``."""
    return np.arange(frame_count(n_samples, window_samples, hop_samples), dtype=np.int64) * hop_samples


def spread_indices(n_windows: int, max_windows: int) -> np.ndarray:
    """Indices (int64, ascending) of at most ``max_windows`` of ``n_windows`` windows, spread evenly
    from the first to the last; all of them when there are no more than ``max_windows``."""
    if n_windows <= max_windows:
        return np.arange(n_windows, dtype=np.int64)
    return np.unique(np.linspace(0, n_windows - 1, max_windows).round().astype(np.int64))


def cut_windows(samples: np.ndarray, window_samples: int, hop_samples: int) -> np.ndarray:
    """The windows of :func:`frame_starts` as a float32 ``(n, window_samples)`` copy (a short signal
    tiled to one window)."""
    if samples.size < window_samples:
        return tile_to_length(samples, window_samples)[None, :].astype(np.float32)
    n = frame_count(samples.size, window_samples, hop_samples)
    view = np.lib.stride_tricks.sliding_window_view(samples, window_samples)[::hop_samples][:n]
    return np.ascontiguousarray(view, dtype=np.float32)


def frame_windows(samples: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``samples`` into windows.

    Returns
    -------
    windows : float32 array ``(n, window_samples)``; a copy, safe to keep.
    starts : float64 array ``(n,)`` of window start times in seconds.
    """
    win, hop = spec.window_samples, spec.hop_samples
    return cut_windows(samples, win, hop), frame_starts(samples.size, win, hop) / spec.sample_rate


def spread_windows(samples: np.ndarray, spec: WindowSpec, max_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`frame_windows` but at most ``max_windows`` windows spread evenly over the signal.

    Full-length songs have a few hundred windows; classifying a song from an
    even spread over its whole length is nearly as accurate and much cheaper.
    """
    windows, starts = frame_windows(samples, spec)
    idx = spread_indices(len(windows), max_windows)
    return windows[idx], starts[idx]


def rms_dbfs(windows: np.ndarray) -> np.ndarray:
    """RMS level of each row of ``windows`` in dB relative to full scale (a 0 dBFS sine reads -3 dB)."""
    power = np.mean(np.square(windows, dtype=np.float64), axis=-1)
    return 10.0 * np.log10(np.maximum(power, 1e-20))
