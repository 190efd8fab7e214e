"""The numpy half of the musicnn front end: loudness normalisation and the STFT power spectrum.

An exported model (see :mod:`genretag.models.serving_export`) starts at the
power spectrum: the mel filterbank and the log compression stay in its graph,
with the exact weights it was trained with.  This module computes what comes
before, once per window, however many backbones the model runs on it; in
the Keras graph every backbone computed its own copy.  It imports nothing
but numpy and scipy, so serving pays for no deep-learning framework here.

Every step mirrors a Keras layer, and ``tests/models/test_spectrum.py``
holds them to it:

* :class:`genretag.models.loudness.RmsNormalization`: scale each window to
  ``normalize_db`` dBFS RMS, gaining at most ``max_gain_db``;
* :class:`genretag.models.frontend.LogMelFrontEnd` up to its power spectrum:
  zero-pad ``n_fft // 2`` samples each side, periodic-Hann frames of
  ``n_fft`` samples every ``hop_length``, ``|rfft|^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

#: Under the RMS so that a silent window is not divided by zero (the Keras layer uses the same).
RMS_FLOOR = 1e-12


@dataclass(frozen=True)
class SpectrumFrontEnd:
    """PCM windows ``(n, samples)`` -> float32 power spectra ``(n, frames, n_fft // 2 + 1)``.

    ``normalize_db`` None leaves the level as it is (models trained on raw levels).
    """

    n_fft: int = 512
    hop_length: int = 256
    normalize_db: float | None = -14.0
    max_gain_db: float = 30.0

    def __post_init__(self) -> None:
        if self.n_fft < 2 or self.hop_length < 1:
            raise ValueError(f"n_fft must be >= 2 and hop_length >= 1, got {self.n_fft}, {self.hop_length}")

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length + 1

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected windows of shape (n, samples), got {x.shape}")
        if self.normalize_db is not None:
            rms = np.sqrt(np.mean(np.square(x), axis=1, keepdims=True) + RMS_FLOOR)
            gain = np.minimum(
                np.float32(10.0 ** (self.normalize_db / 20.0)) / rms,
                np.float32(10.0 ** (self.max_gain_db / 20.0)),
            )
            x = x * gain
        half = self.n_fft // 2
        padded = np.pad(x, ((0, 0), (half, half)))
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft, axis=1)[:, :: self.hop_length]
        spectrum = scipy.fft.rfft(frames * periodic_hann(self.n_fft), axis=-1)  # complex64 for float32 input
        return np.square(spectrum.real) + np.square(spectrum.imag)


def periodic_hann(n: int) -> np.ndarray:
    """The ``fftbins=True`` Hann window librosa (and scipy's ``get_window``) use for STFT frames."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)
