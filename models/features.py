"""Engineered librosa features for the scikit-learn baselines.

A window of raw PCM becomes one fixed-length vector of summary statistics
(mean and standard deviation over frames) of classic timbre, harmony and
rhythm descriptors.  The computation is part of the model: its parameters
live in the artifact manifest (``features``), and :class:`SklearnPredictor`
recomputes them from PCM, so the daemon needs no feature code of its own.

Two properties matter more than raw speed:

- **Batch independence.**  The daemon batches windows of many streams, so a
  window's features must not depend on the other windows in its batch.
  librosa's ``power_to_db(top_db=...)`` clips relative to the maximum of the
  *whole* array and ``chroma_stft`` estimates one tuning for the whole array;
  here the dB floor is applied per window and tuning is fixed at A440.
- **Finite output.**  Silence, noise and clicks must give finite numbers, so
  any NaN or Inf a descriptor produces becomes 0.

The STFT is computed once per batch and every spectral descriptor is derived
from it; all librosa calls run on the whole ``(n, ...)`` batch at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import librosa
import numpy as np

FEATURES_VERSION = 1
"""Bump when :func:`window_features` changes meaning, so old artifacts are refused, not misread."""

_AMIN = 1e-10  # power floor before taking logs (-100 dB)


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of :func:`window_features`; stored in the manifest, so JSON-serialisable.

    Attributes
    ----------
    sample_rate : Hz of the windows (must equal the artifact's sample rate).
    n_mfcc : MFCC coefficients, taken from a log-mel spectrogram of ``n_mels`` bands.
    n_fft, hop_length : STFT frame and hop in samples (2048/512 ~ 93/23 ms at 22,050 Hz).
    n_mels : mel bands feeding the MFCCs and the onset envelope.
    top_db : dB range kept below each window's loudest mel bin (librosa's default).
    n_contrast_bands : octave bands of spectral contrast, starting at ``contrast_fmin`` Hz.
    roll_percent : energy fraction that defines the spectral roll-off frequency.
    version : :data:`FEATURES_VERSION` the artifact was trained with.
    """

    #: The artifact kind and architecture these features belong to (:mod:`genretag.models.manifest_features`):
    #: every scikit-learn baseline, each naming its own architecture.
    KIND: ClassVar[str] = "sklearn"
    ARCHITECTURE: ClassVar[str | None] = None

    sample_rate: int = 22050
    n_mfcc: int = 20
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    top_db: float = 80.0
    n_contrast_bands: int = 6
    contrast_fmin: float = 200.0
    roll_percent: float = 0.85
    version: int = FEATURES_VERSION

    def __post_init__(self) -> None:
        if self.version != FEATURES_VERSION:
            raise ValueError(
                f"features version {self.version} is not supported (this genretag computes "
                f"version {FEATURES_VERSION}); retrain the model"
            )
        for name in ("sample_rate", "n_mfcc", "n_fft", "hop_length", "n_mels", "n_contrast_bands"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
        if not 0.0 < self.roll_percent < 1.0:
            raise ValueError(f"roll_percent must lie in (0, 1), got {self.roll_percent}")
        if self.top_db <= 0:
            raise ValueError(f"top_db must be positive, got {self.top_db}")
        top_band_low = self.contrast_fmin * 2.0 ** (self.n_contrast_bands - 1)
        if not 0.0 < top_band_low < self.sample_rate / 2:
            raise ValueError(
                f"spectral contrast bands from {self.contrast_fmin} Hz over "
                f"{self.n_contrast_bands} octaves exceed the Nyquist frequency of "
                f"{self.sample_rate} Hz; lower contrast_fmin or n_contrast_bands"
            )


def _frame_descriptors(config: FeatureConfig) -> list[tuple[str, int]]:
    """Name and row count of each frame-wise descriptor, in :func:`window_features` order."""
    return [
        ("mfcc", config.n_mfcc),
        ("chroma", 12),
        ("centroid", 1),
        ("bandwidth", 1),
        ("rolloff", 1),
        ("contrast", config.n_contrast_bands + 1),
        ("zcr", 1),
        ("rms", 1),
    ]


def feature_names(config: FeatureConfig) -> list[str]:
    """Column names of :func:`window_features`: ``mfcc03_mean``, ``chroma11_std``, ``tempo``..."""
    names = []
    for stat in ("mean", "std"):
        for desc, rows in _frame_descriptors(config):
            names += [f"{desc}_{stat}"] if rows == 1 else [f"{desc}{i:02d}_{stat}" for i in range(rows)]
    # Delta-MFCC means are ~0 over a window; only their spread carries information.
    names += [f"dmfcc{i:02d}_std" for i in range(config.n_mfcc)]
    names.append("tempo")
    return names


def _log_mel(power: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram in dB with the ``top_db`` floor taken per window, not per batch."""
    mel = librosa.feature.melspectrogram(
        S=power, sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels
    )
    db = 10.0 * np.log10(np.maximum(mel, _AMIN))
    return np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - config.top_db)


def _centroid_bandwidth(magnitude: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Spectral centroid and bandwidth (p=2) in Hz, rows 0 and 1.

    Same definitions as librosa's ``spectral_centroid``/``spectral_bandwidth``,
    computed in one pass: theirs normalise the spectrogram twice through a
    generic routine that took over half of the feature time.
    """
    freqs = librosa.fft_frequencies(sr=config.sample_rate, n_fft=config.n_fft)
    freqs = freqs.astype(np.float32)[:, None]
    total = magnitude.sum(axis=-2, keepdims=True)
    weights = magnitude / np.where(total > 0, total, 1.0)
    centroid = (freqs * weights).sum(axis=-2, keepdims=True)
    bandwidth = np.sqrt((weights * (freqs - centroid) ** 2).sum(axis=-2, keepdims=True))
    return np.concatenate([centroid, bandwidth], axis=-2)


def _contrast(magnitude: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Spectral contrast per window: librosa's dB floor is relative to the whole input array."""
    return np.stack(
        [
            librosa.feature.spectral_contrast(
                S=m,
                sr=config.sample_rate,
                n_fft=config.n_fft,
                n_bands=config.n_contrast_bands,
                fmin=config.contrast_fmin,
            )
            for m in magnitude
        ]
    )


def window_features(windows: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Summary features of each window.

    Parameters
    ----------
    windows : float array ``(n, samples)`` of finite PCM in [-1, 1] at
        ``config.sample_rate``, at least 9 STFT frames long (the delta-MFCC
        width; ~0.2 s at the defaults).
    config : feature parameters.

    Returns
    -------
    float32 array ``(n, len(feature_names(config)))``, finite everywhere.
    """
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 2:
        raise ValueError(f"expected windows of shape (n, samples), got {windows.shape}")
    if windows.shape[0] == 0:
        return np.zeros((0, len(feature_names(config))), dtype=np.float32)
    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length

    magnitude = np.abs(librosa.stft(windows, n_fft=n_fft, hop_length=hop))
    power = magnitude**2
    log_mel = _log_mel(power, config)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc)
    frame_wise = np.concatenate(
        [
            mfcc,
            librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, tuning=0.0),
            _centroid_bandwidth(magnitude, config),
            librosa.feature.spectral_rolloff(
                S=magnitude, sr=sr, n_fft=n_fft, roll_percent=config.roll_percent
            ),
            _contrast(magnitude, config),
            librosa.feature.zero_crossing_rate(windows, frame_length=n_fft, hop_length=hop),
            librosa.feature.rms(S=magnitude, frame_length=n_fft),
        ],
        axis=-2,
    )
    delta_std = librosa.feature.delta(mfcc).std(axis=-1)
    onset_env = librosa.onset.onset_strength(S=log_mel, sr=sr, hop_length=hop)
    tempo = librosa.feature.tempo(onset_envelope=onset_env, sr=sr, hop_length=hop)
    feats = np.concatenate(
        [frame_wise.mean(axis=-1), frame_wise.std(axis=-1), delta_std, tempo.reshape(-1, 1)],
        axis=1,
    )
    return np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
