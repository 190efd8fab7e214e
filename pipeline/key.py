"""Rolling key of a stream: a harmonic pitch-class profile over a long context, matched to key profiles.

The chroma is built from spectral peaks rather than from every STFT bin:
only local maxima of a fine spectrum (about 3 Hz bins) count, each at its
interpolated frequency, so drums and noise, which spread energy over all
bins, add little, while tones, sharp peaks, add a lot.  Each peak also votes,
more weakly, for the fundamentals of which it could be the 2nd to 4th
harmonic (HPCP, Gomez 2006): a note's 3rd harmonic, a fifth above it, would
otherwise pull the profile towards the dominant.  Peaks are kept at a tenth
of a semitone; at each update the tuning of the context (the mean cents
offset of its peaks from A440) is read from them and the profile folded to 12
pitch classes around it, so a detuned record does not smear across two
pitch classes.  Frames (0.37 s, no overlap: key is a long-run statistic, and
overlap cost twice as much for nothing measurable) are normalised to their
maximum before they are summed over ``context_seconds``, so loud passages do
not outvote quiet ones, and the sum is correlated with 24 key profiles.
The default profile is Faraldo et al.'s 'edma', the mean chroma of a corpus
of recordings rather than note counts of scores (Temperley) or listeners'
ratings (Krumhansl): its contrasts are those a chroma of real audio shows
(``benchmarks/RESULTS.md``: 0.55 MIREX on the GTZAN clips, against 0.50
with Krumhansl's, 0.47 with Temperley's and 0.45 for librosa's recipe).

The confidence (0..1) is the winner's relative lead over the runner-up,
``(r1 - r2) / r1`` of the correlations: near 0 when two keys (often
relatives or fifths) fit as well.  Silence, noise without peaks and too
little audio give no key and confidence 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from genretag.pipeline.stft import RollingEstimate, StreamingStft

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES = ("major", "minor")

#: Major and minor key profiles, tonic first (C major / C minor).
PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # Krumhansl & Kessler (1982): listeners' probe-tone ratings.
    "krumhansl": (
        (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
        (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
    ),
    # Temperley (2001, Kostka-Payne corpus): note frequencies in tonal music.
    "temperley": (
        (5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
        (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0),
    ),
    # Sha'ath (2011, KeyFinder): Krumhansl's, adjusted on recordings.
    "shaath": (
        (6.6, 2.0, 3.5, 2.3, 4.6, 4.0, 2.5, 5.2, 2.4, 3.7, 2.3, 3.4),
        (6.5, 2.7, 3.5, 5.4, 2.6, 3.5, 2.5, 5.2, 4.0, 2.7, 4.3, 3.2),
    ),
    # Faraldo, Gomez, Jorda & Herrera (2016) 'edma': mean chroma of an electronic dance music corpus.
    "edma": (
        (1.0, 0.2875, 0.5020, 0.4048, 0.6050, 0.5614, 0.3205, 0.7966, 0.3159, 0.4506, 0.4202, 0.3889),
        (1.0, 0.3096, 0.4415, 0.5827, 0.3262, 0.4948, 0.2889, 0.7804, 0.4328, 0.2903, 0.5331, 0.3217),
    ),
}


@dataclass(frozen=True)
class KeyEstimate:
    """``tonic`` None means no estimate (silence, noise, too little audio); ``confidence`` is then 0."""

    tonic: str | None
    mode: str | None
    confidence: float
    #: seconds of audio the estimate looked at
    seconds: float

    @property
    def name(self) -> str | None:
        """``"A minor"``, or None without an estimate."""
        return None if self.tonic is None else f"{self.tonic} {self.mode}"


NO_KEY = KeyEstimate(None, None, 0.0, 0.0)


@cache  # one read-only copy for every stream's tracker: building it took a third of a tracker's start
def key_templates(profile: str = "edma") -> np.ndarray:
    """The 24 key profiles ``(24, 12)``: C..B major, then C..B minor, each centred and unit length."""
    if profile not in PROFILES:
        raise ValueError(f"unknown key profile {profile!r}; known: {', '.join(PROFILES)}")
    rows = [np.roll(np.asarray(base, np.float64), tonic) for base in PROFILES[profile] for tonic in range(12)]
    templates = np.stack(rows)
    templates -= templates.mean(axis=1, keepdims=True)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    templates.setflags(write=False)
    return templates


def key_correlations(chroma: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Pearson correlation of a 12-bin chroma with each of the 24 templates (zeros for a flat chroma)."""
    centred = np.asarray(chroma, np.float64) - np.mean(chroma)
    norm = np.linalg.norm(centred)
    return templates @ centred / norm if norm > 1e-12 else np.zeros(len(templates))


def pick_key(correlations: np.ndarray, seconds: float) -> KeyEstimate:
    """The best-correlated key, with its relative lead over the runner-up as confidence."""
    best = int(np.argmax(correlations))
    ordered = np.sort(correlations)
    top, runner_up = float(ordered[-1]), float(ordered[-2])
    if not top > 1e-6:
        return KeyEstimate(None, None, 0.0, seconds)
    confidence = float(np.clip((top - runner_up) / top, 0.0, 1.0))
    return KeyEstimate(PITCH_CLASSES[best % 12], MODES[best // 12], confidence, seconds)


#: pitch bins per semitone of the fine chroma that the tuning is read from
FINE = 10


class PeakChroma:
    """Harmonic pitch-class profile of spectral peaks at 10 bins a semitone, frame by frame.

    The fine profile keeps the tuning: :func:`fold_chroma` reads it from the
    summed context and folds to 12 pitch classes around it, so each frame is
    computed once, independently of the others, whatever the block sizes.
    """

    def __init__(
        self,
        sr: int,
        fmin: float = 50.0,
        fmax: float = 5000.0,
        max_peaks: int = 40,
        harmonics: int = 4,
        harmonic_decay: float = 0.6,
        floor_db: float = 60.0,
        overlap: float = 0.0,
    ) -> None:
        if sr <= 0:
            raise ValueError(f"sample rate must be positive, got {sr}")
        n_fft = 1 << int(np.ceil(np.log2(sr / 3.0)))  # bins of 3 Hz or finer: low semitones resolve
        self.stft = StreamingStft(n_fft, max(1, int(round(n_fft * (1.0 - overlap)))))
        self.frame_rate = sr / self.stft.hop
        self.bin_hz = sr / n_fft
        self.lo = max(1, int(fmin / self.bin_hz))
        self.hi = min(n_fft // 2 - 1, int(fmax / self.bin_hz))
        self.max_peaks = max_peaks
        self.floor = 10.0 ** (-floor_db / 20.0)
        self.harmonic_weights = harmonic_decay ** np.arange(harmonics)
        self.harmonic_semitones = 12.0 * np.log2(np.arange(1, harmonics + 1))

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Fine chroma ``(frames, 12 * FINE)`` of the frames ``samples`` completes, each scaled to max 1."""
        spectra = self.stft.push(samples)
        n = len(spectra)
        if not n:
            return np.zeros((0, 12 * FINE))
        band = spectra[:, self.lo - 1 : self.hi + 2].astype(np.float64)
        centre = band[:, 1:-1]
        top = band.max(axis=1, keepdims=True)
        peaks = np.where(
            (centre > band[:, :-2]) & (centre >= band[:, 2:]) & (centre > self.floor * top) & (top > 1e-9),
            centre,
            0.0,
        )
        rows, where = np.nonzero(peaks)
        weight = peaks[rows, where]
        if self.max_peaks:  # only the strongest peaks of each frame: a rank within the frame by sorting
            order = np.lexsort((-weight, rows))
            rows, where, weight = rows[order], where[order], weight[order]
            rank = np.arange(rows.size) - np.searchsorted(rows, rows)
            keep = rank < self.max_peaks
            rows, where, weight = rows[keep], where[keep], weight[keep]
        a, b, c = (np.log(band[rows, where + j] + 1e-12) for j in range(3))
        shift = 0.5 * (a - c) / np.minimum(a - 2 * b + c, -1e-12)  # parabolic interpolation of log magnitude
        freq = (self.lo + where + np.clip(shift, -0.5, 0.5)) * self.bin_hz
        semitones = 12.0 * np.log2(freq / 440.0) + 9.0  # semitones above the C below A4
        flat = np.zeros(n * 12 * FINE)
        for h_weight, h_semitones in zip(self.harmonic_weights, self.harmonic_semitones, strict=True):
            position = (semitones - h_semitones) * FINE
            low = np.floor(position)
            upper = position - low  # split between the two nearest fine bins
            for offset, share in ((0, 1.0 - upper), (1, upper)):
                index = rows * 12 * FINE + (low.astype(int) + offset) % (12 * FINE)
                flat += np.bincount(index, h_weight * weight * share, minlength=flat.size)
        fine = flat.reshape(n, 12 * FINE)
        frame_max = fine.max(axis=1, keepdims=True)
        return np.divide(fine, frame_max, out=np.zeros_like(fine), where=frame_max > 0)


def tuning_cents(fine: np.ndarray) -> float:
    """Tuning of a fine chroma: the circular mean of its bins' offsets from equal temperament, in cents."""
    phasor = np.sum(fine * np.exp(2j * np.pi * np.arange(fine.size) / FINE))
    return float(np.angle(phasor) / (2 * np.pi) * 100.0) if abs(phasor) > 1e-12 else 0.0


def fold_chroma(fine: np.ndarray, cents: float) -> np.ndarray:
    """12 pitch classes from a fine chroma, each gathering the bins within 2/3 semitone (tuned, cos^2)."""
    positions = np.arange(fine.size) / FINE - cents / 100.0  # in tuned semitones above C
    distance = (positions[None, :] - np.arange(12)[:, None] + 6.0) % 12.0 - 6.0
    weights = np.cos(np.pi / 2 * np.clip(distance / (2.0 / 3.0), -1.0, 1.0)) ** 2
    return weights @ fine


class KeyTracker(RollingEstimate[KeyEstimate]):
    """Rolling key of one stream: :meth:`push` successive mono blocks, read :attr:`estimate`.

    The estimate is remade from the chroma of the last ``context_seconds``
    every ``update_seconds`` of audio, once ``min_seconds`` have arrived
    (:class:`~genretag.pipeline.stft.RollingEstimate`).
    """

    def __init__(
        self,
        sr: int,
        context_seconds: float = 30.0,
        update_seconds: float = 2.0,
        min_seconds: float = 3.0,
        profile: str = "edma",
    ) -> None:
        self.templates = key_templates(profile)
        self.chroma = PeakChroma(sr)
        frame = (12 * FINE,)
        super().__init__(self.chroma, frame, np.float32, NO_KEY, context_seconds, update_seconds, min_seconds)
        #: the tuning of the context at the last update, cents from A440 equal temperament
        self.tuning_cents = 0.0

    def _estimate(self, context: np.ndarray, seconds: float) -> KeyEstimate:
        fine = context.sum(axis=0)
        self.tuning_cents = tuning_cents(fine)
        chroma = fold_chroma(fine, self.tuning_cents)
        return pick_key(key_correlations(chroma, self.templates), seconds)


def estimate_key(samples: np.ndarray, sr: int, **options: float | str) -> KeyEstimate:
    """Key of a whole signal: a :class:`KeyTracker` fed it in one block, finished."""
    tracker = KeyTracker(sr, **options)  # type: ignore[arg-type]
    tracker.push(samples)
    return tracker.finish()
