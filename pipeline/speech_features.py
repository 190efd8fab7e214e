"""Hand-made speech/music features of a window (numpy and scipy only: servable without librosa).

The classic cues (Scheirer & Slaney 1997; Lu, Zhang & Jiang 2002; Panagiotakis & Tziritas 2005):
talk alternates syllables and pauses about four times a second, so its energy is modulated
near 4 Hz, many of its frames are quieter than the window's mean, and its zero-crossing rate
and spectral centroid jump between voiced and unvoiced sounds; music is steadier, denser and
more tonal.  :func:`window_features` computes, over 32 ms frames every 10 ms of each window:

* low-energy frame ratio (frames under half the mean RMS), frame level spread (std, 90-10 %);
* zero-crossing rate mean and std, high-ZCR frame ratio (over 1.5x the mean);
* spectral centroid, 85 % roll-off and flatness: mean and std;
* spectral flux of unit-norm spectra: mean and std;
* modulation energy of 20 band envelopes at 0.5-2, 2-6 (the 4 Hz syllable rate) and 6-12 Hz,
  each as a share of 0.5-20 Hz;
* 13 cepstral coefficients of the log band energies: mean and std.

All are invariant to the window's gain (levels are taken relative to the window's own).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 160
N_BANDS = 20
N_CEPS = 13
MOD_BANDS_HZ = ((0.5, 2.0), (2.0, 6.0), (6.0, 12.0))
#: bumped whenever a feature's computation changes (part of training caches' keys)
FEATURES_VERSION = 2

FEATURE_NAMES: tuple[str, ...] = (
    "low_energy_ratio",
    "level_std_db",
    "level_range_db",
    "zcr_mean",
    "zcr_std",
    "high_zcr_ratio",
    "centroid_mean",
    "centroid_std",
    "rolloff_mean",
    "rolloff_std",
    "flatness_mean",
    "flatness_std",
    "flux_mean",
    "flux_std",
    "mod_0.5-2Hz",
    "mod_2-6Hz",
    "mod_6-12Hz",
    *(f"cep{i}_mean" for i in range(N_CEPS)),
    *(f"cep{i}_std" for i in range(N_CEPS)),
)


def _band_matrix(sr: int, n_fft: int, n_bands: int) -> np.ndarray:
    """``(n_bins, n_bands)`` triangular bands evenly spaced on the mel scale, 60 Hz to Nyquist."""
    mel = np.linspace(2595 * np.log10(1 + 60 / 700), 2595 * np.log10(1 + sr / 2 / 700), n_bands + 2)
    edges = 700 * (10 ** (mel / 2595) - 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    up = (freqs[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    down = (edges[None, 2:] - freqs[:, None]) / (edges[2:] - edges[1:-1])
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


_BANDS = _band_matrix(SAMPLE_RATE, N_FFT, N_BANDS)
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def window_features(windows: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """``(n_windows, len(FEATURE_NAMES))`` float32 features of ``(n_windows, samples)`` PCM at ``sr``
    (16 kHz: the band layout assumes it).  Silent windows give finite values (zeros mostly)."""
    if sr != SAMPLE_RATE:
        raise ValueError(f"speech features expect {SAMPLE_RATE} Hz windows, got {sr}")
    windows = np.nan_to_num(np.asarray(windows, np.float32))
    if windows.ndim != 2 or windows.shape[1] < N_FFT:
        raise ValueError(f"expected (n_windows, >= {N_FFT} samples), got {windows.shape}")
    n_frames = 1 + (windows.shape[1] - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    out = np.empty((len(windows), len(FEATURE_NAMES)), np.float32)
    for w, x in enumerate(windows):
        frames = x[idx]  # (frames, N_FFT)
        out[w] = _features(frames, sr)
    return out


def _features(frames: np.ndarray, sr: int) -> np.ndarray:
    rms = np.sqrt(np.mean(frames**2, axis=1))
    floor = max(float(rms.max()) * 1e-4, 1e-10)  # 80 dB under the loudest frame: digital silence
    level = 20 * np.log10(np.maximum(rms, floor))
    low_energy = np.mean(rms < 0.5 * rms.mean())
    signs = np.signbit(frames)
    zcr = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)
    high_zcr = np.mean(zcr > 1.5 * zcr.mean()) if zcr.mean() > 0 else 0.0

    mag = np.abs(scipy.fft.rfft(frames * _WINDOW, axis=1)).astype(np.float32)
    eps = max(float(np.mean(mag**2)) * 1e-8, 1e-20)  # relative: keeps the features gain-invariant
    power = mag**2 + eps
    freqs = np.fft.rfftfreq(N_FFT, 1 / sr).astype(np.float32)
    total = power.sum(axis=1)
    centroid = (power @ freqs) / total / (sr / 2)
    rolloff = np.argmax(np.cumsum(power, axis=1) >= 0.85 * total[:, None], axis=1) / power.shape[1]
    flatness = np.exp(np.mean(np.log(power), axis=1)) / power.mean(axis=1)
    unit = mag / (np.linalg.norm(mag, axis=1, keepdims=True) + np.sqrt(eps))
    flux = np.linalg.norm(np.diff(unit, axis=0), axis=1)

    bands = power @ _BANDS + eps  # (frames, bands)
    log_bands = np.log10(bands)
    log_bands -= log_bands.mean()  # gain invariance
    ceps = scipy.fft.dct(log_bands, type=2, norm="ortho", axis=1)[:, :N_CEPS]

    env = np.sqrt(bands)
    env = env / (env.mean(axis=0, keepdims=True) + np.sqrt(eps)) - 1.0
    n = len(env)
    spec = np.abs(scipy.fft.rfft(env * np.hanning(n)[:, None], axis=0)) ** 2
    mod_f = np.fft.rfftfreq(n, HOP / sr)
    whole = spec[(mod_f >= 0.5) & (mod_f <= 20)].sum() + eps
    mods = [spec[(mod_f >= lo) & (mod_f < hi)].sum() / whole for lo, hi in MOD_BANDS_HZ]

    return np.array(
        [
            low_energy,
            level.std(),
            np.percentile(level, 90) - np.percentile(level, 10),
            zcr.mean(),
            zcr.std(),
            high_zcr,
            centroid.mean(),
            centroid.std(),
            rolloff.mean(),
            rolloff.std(),
            flatness.mean(),
            flatness.std(),
            flux.mean(),
            flux.std(),
            *mods,
            *ceps.mean(axis=0),
            *ceps.std(axis=0),
        ],
        np.float32,
    )
