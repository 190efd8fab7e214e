"""Rolling tempo of a stream: onset strength over a long context, periodicity, a prior on the beat rate.

A 3 s genre window holds six beats at 120 BPM, too few to tell a tempo from
its double or half, so the tracker keeps the onset strength (spectral flux of
log band energies, 100 frames a second) of the last ``context_seconds`` and
re-estimates every ``update_seconds``.  The salience of a tempo is the onset
autocorrelation at its beat period plus half that at two beat periods (the
beat recurs every second beat, the eighth-note pulse of busy hi-hats gains
less), and a log-Gaussian prior around ``prior_bpm`` settles what ambiguity
is left.  This is the periodicity half of a beat tracker without the beat
placement, so it costs a fraction of one and can run on every stream.

The confidence (0..1) says how much the winning tempo stands out: the share
of salience by which it beats the best rival outside +-8 % of it, times how
periodic the onsets are at that lag (normalised autocorrelation).  Silence,
noise and too little audio give no tempo and confidence 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.fft
import scipy.sparse

from genretag.pipeline.stft import RollingEstimate, StreamingStft

#: onset-strength frames per second, whatever the sample rate
FRAME_RATE = 100.0


@dataclass(frozen=True)
class TempoEstimate:
    """``bpm`` None means no estimate (silence, noise, too little audio); ``confidence`` is then 0."""

    bpm: float | None
    confidence: float
    #: seconds of audio the estimate looked at
    seconds: float


NO_TEMPO = TempoEstimate(None, 0.0, 0.0)


def _next_pow2(n: float) -> int:
    return 1 << max(1, int(np.ceil(np.log2(max(n, 2.0)))))


@cache  # shared by every stream's tracker (read-only): building it took a third of a tracker's start
def onset_bands(sr: int, n_fft: int) -> scipy.sparse.csr_matrix:
    """:func:`band_matrix` as the sparse ``(bands, bins)`` matrix :class:`OnsetStrength` applies."""
    return scipy.sparse.csr_matrix(band_matrix(sr, n_fft).T)


def band_matrix(
    sr: int, n_fft: int, n_bands: int = 24, fmin: float = 30.0, fmax: float = 11025.0
) -> np.ndarray:
    """Triangular filters ``(n_fft // 2 + 1, n_bands)`` evenly spaced in log frequency from fmin to fmax."""
    fmax = min(fmax, sr / 2.0)
    edges = np.geomspace(fmin, fmax, n_bands + 2)
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None, :] - lower) / (centre - lower)
    fall = (upper - freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rise, fall))
    # Low bands narrower than a bin would be empty: give each at least its nearest bin.
    for b in np.flatnonzero(weights.sum(axis=1) == 0):
        weights[b, int(np.argmin(np.abs(freqs - centre[b, 0])))] = 1.0
    return (weights / weights.sum(axis=1, keepdims=True)).T.astype(np.float32)


class OnsetStrength:
    """Streaming spectral flux: the half-wave rectified rise of log band magnitudes, one value per frame."""

    def __init__(self, sr: int, compression: float = 1000.0) -> None:
        if sr <= 0:
            raise ValueError(f"sample rate must be positive, got {sr}")
        hop = max(1, round(sr / FRAME_RATE))
        self.frame_rate = sr / hop
        self.stft = StreamingStft(_next_pow2(0.04 * sr), hop)  # 46 ms at 22.05 kHz: 23 ms blurs the bass
        # Sparse: a dense (frames, bins) @ (bins, bands) goes to a threaded BLAS, whose
        # spinning threads cost 3x the work itself on small blocks of a busy machine.
        self.bands = onset_bands(sr, self.stft.n_fft)
        self.compression = compression
        self._previous: np.ndarray | None = None

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Onset strength of the frames ``samples`` completes (float32, possibly empty)."""
        spectra = self.stft.push(samples)
        if not len(spectra):
            return np.zeros(0, np.float32)
        level = np.log1p(self.compression * (self.bands @ spectra.T).T)
        previous = level[:1] if self._previous is None else self._previous
        self._previous = level[-1:]
        rise = np.diff(np.concatenate([previous, level]), axis=0)
        return np.maximum(rise, 0.0).mean(axis=1).astype(np.float32)


@cache  # shared by every stream's tracker, read-only
def _tempo_candidates(
    bpm_range: tuple[float, float], prior_bpm: float, prior_octaves: float
) -> tuple[np.ndarray, np.ndarray]:
    """The tempo grid and its log prior."""
    bpms = bpm_grid(*bpm_range)
    prior = log_gaussian_prior(bpms, prior_bpm, prior_octaves)
    bpms.setflags(write=False)
    prior.setflags(write=False)
    return bpms, prior


def bpm_grid(low: float = 30.0, high: float = 300.0, per_octave: int = 120) -> np.ndarray:
    """Candidate tempi, evenly spaced in log tempo (0.6 % apart by default)."""
    return np.geomspace(low, high, int(round(per_octave * np.log2(high / low))) + 1)


def tempo_salience(
    onset: np.ndarray, frame_rate: float, bpms: np.ndarray, bar_weight: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Salience of each candidate tempo, and the normalised autocorrelation at its beat period.

    The salience is the onset autocorrelation at the beat period plus ``bar_weight``
    times that at two beat periods: a beat also recurs every second beat, while
    the eighth-note pulse that wins plain autocorrelation on busy hi-hats does
    not gain from it as much.  (A Fourier tempogram, which peaks at multiples of
    the beat rate, doubled the tempo on 40 % of the GTZAN clips in
    ``benchmarks/tempo_key.py``; the product with it did too.)
    """
    x = np.asarray(onset, dtype=np.float64)
    x = x - x.mean()
    n = x.size
    lags = 60.0 * frame_rate / bpms
    longest = min(n, int(np.ceil(2.0 * lags.max())) + 2)
    size = _next_pow2(n + longest)  # enough zero padding that no lag up to ``longest`` wraps around
    acf = scipy.fft.irfft(np.square(np.abs(scipy.fft.rfft(x, size))), size)[:longest]
    if not acf[0] > 1e-12:
        return np.zeros_like(bpms), np.zeros_like(bpms)
    acf = acf / acf[0] * n / (n - np.arange(longest))  # unbiased: long lags are not penalised
    periodicity = np.interp(lags, np.arange(longest), acf, right=0.0)
    bars = np.interp(2.0 * lags, np.arange(longest), acf, right=0.0)
    return np.maximum(periodicity + bar_weight * bars, 0.0), periodicity


def log_gaussian_prior(bpms: np.ndarray, centre: float = 120.0, octaves: float = 1.0) -> np.ndarray:
    """Weight of each tempo: a Gaussian in log2 tempo around ``centre``, ``octaves`` wide (std)."""
    return np.exp(-0.5 * np.square(np.log2(bpms / centre) / octaves))


def pick_tempo(
    salience: np.ndarray, periodicity: np.ndarray, bpms: np.ndarray, prior: np.ndarray, seconds: float
) -> TempoEstimate:
    """The most salient tempo after the prior, with its confidence."""
    weighted = salience * prior
    best = int(np.argmax(weighted))
    top = float(weighted[best])
    if not np.isfinite(top) or top <= 1e-9:
        return TempoEstimate(None, 0.0, seconds)
    bpm = float(bpms[best])  # the grid is 0.6 % fine; Accuracy1 allows 4 %
    rivals = np.abs(np.log(bpms / bpms[best])) > np.log(1.08)
    rival = float(weighted[rivals].max()) if rivals.any() else 0.0
    confidence = (1.0 - rival / top) * float(np.clip(periodicity[best], 0.0, 1.0))
    return TempoEstimate(bpm, float(np.clip(confidence, 0.0, 1.0)), seconds)


class TempoTracker(RollingEstimate[TempoEstimate]):
    """Rolling tempo of one stream: :meth:`push` successive mono blocks, read :attr:`estimate`.

    The estimate is remade from the last ``context_seconds`` of onset strength
    every ``update_seconds`` of audio, once ``min_seconds`` have arrived
    (:class:`~genretag.pipeline.stft.RollingEstimate`).
    """

    def __init__(
        self,
        sr: int,
        context_seconds: float = 30.0,
        update_seconds: float = 2.0,
        min_seconds: float = 5.0,
        prior_bpm: float = 120.0,
        prior_octaves: float = 1.0,
        bpm_range: tuple[float, float] = (30.0, 300.0),
    ) -> None:
        self.onset = OnsetStrength(sr)
        super().__init__(self.onset, (), np.float32, NO_TEMPO, context_seconds, update_seconds, min_seconds)
        self.bpms, self.prior = _tempo_candidates(bpm_range, prior_bpm, prior_octaves)

    def _estimate(self, context: np.ndarray, seconds: float) -> TempoEstimate:
        salience, periodicity = tempo_salience(context, self.frame_rate, self.bpms)
        return pick_tempo(salience, periodicity, self.bpms, self.prior, seconds)


def estimate_tempo(samples: np.ndarray, sr: int, **options: float) -> TempoEstimate:
    """Tempo of a whole signal: a :class:`TempoTracker` fed it in one block, finished."""
    tracker = TempoTracker(sr, **options)  # type: ignore[arg-type]
    tracker.push(samples)
    return tracker.finish()
