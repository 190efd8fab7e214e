"""The features-only baseline of the mood head: classic clip-level audio features (librosa).

One row per clip, of statistics over the clip's frames: MFCC (20) mean and standard deviation, spectral
contrast (7 bands) mean and std, chroma (12) mean and std, spectral centroid, bandwidth, roll-off,
flatness and zero-crossing rate mean and std, RMS level mean, std and 10/90th percentiles in dB,
onset-strength mean and std, and the global tempo (BPM) with the strength of its autocorrelation peak.
That is the usual MIR recipe of mood classification before learnt embeddings; the mood head must beat it
with the same folds and the same classifier (:func:`genretag.training.mood.mood_cv` on clip rows).
"""

from __future__ import annotations

import numpy as np

N_FFT = 1024
HOP = 512
N_MFCC = 20


def feature_names() -> list[str]:
    """Column names of :func:`clip_features`' row."""
    names = [f"mfcc{i}_{s}" for s in ("mean", "std") for i in range(N_MFCC)]
    names += [f"contrast{i}_{s}" for s in ("mean", "std") for i in range(7)]
    names += [f"chroma{i}_{s}" for s in ("mean", "std") for i in range(12)]
    names += [
        f"{f}_{s}" for f in ("centroid", "bandwidth", "rolloff", "flatness", "zcr") for s in ("mean", "std")
    ]
    names += [
        "rms_db_mean",
        "rms_db_std",
        "rms_db_p10",
        "rms_db_p90",
        "onset_mean",
        "onset_std",
        "tempo_bpm",
        "tempo_strength",
    ]
    return names


def clip_features(pcm: np.ndarray, sr: int) -> np.ndarray:
    """One clip's feature row (:func:`feature_names` order), float64, from mono PCM at ``sr`` Hz."""
    import librosa

    y = np.asarray(pcm, np.float32)
    if len(y) < N_FFT:
        y = np.pad(y, (0, N_FFT - len(y)))
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=64)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
    magnitude = np.sqrt(power)
    contrast = librosa.feature.spectral_contrast(S=magnitude, sr=sr, n_fft=N_FFT, fmin=100.0, n_bands=6)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=N_FFT)
    spectral = [
        librosa.feature.spectral_centroid(S=magnitude, sr=sr),
        librosa.feature.spectral_bandwidth(S=magnitude, sr=sr),
        librosa.feature.spectral_rolloff(S=magnitude, sr=sr),
        librosa.feature.spectral_flatness(S=magnitude),
        librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP),
    ]
    rms_db = librosa.amplitude_to_db(librosa.feature.rms(S=magnitude, frame_length=N_FFT)[0], ref=1.0)
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=sr, hop_length=HOP)
    tempo = float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=HOP)[0])
    ac = librosa.autocorrelate(onset - onset.mean())
    lag = int(round(60.0 * sr / HOP / max(tempo, 1e-3)))
    strength = float(ac[lag] / ac[0]) if 0 < lag < len(ac) and ac[0] > 0 else 0.0

    def stats(m: np.ndarray) -> list[float]:
        return [*m.mean(axis=1), *m.std(axis=1)]

    row = stats(mfcc) + stats(contrast) + stats(chroma)
    for s in spectral:
        row += [float(s.mean()), float(s.std())]
    row += [
        float(rms_db.mean()),
        float(rms_db.std()),
        *np.percentile(rms_db, [10, 90]),
        float(onset.mean()),
        float(onset.std()),
        tempo,
        strength,
    ]
    return np.asarray(row, np.float64)
