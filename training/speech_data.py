"""Speech/music training data: talk, music and talk over music beds, in group-disjoint folds.

The speech collection (``../shared/data/speech``) is small: 58 talk clips
(GTZAN music/speech radio talk, six free-spoken-digit speakers), 40 music
clips and three radio-style examples.  It is widened here, all in memory:

* every talk clip (a random 15 s excerpt of it) is mixed over a music bed at each of :data:`BED_LEVELS_DB`
  (bed level relative to the talk's active level, :func:`active_rms`); the
  beds come from both music collections (``music/`` and ``mer4q/``);
* talk, music and mixes are augmented (:data:`AUGMENTS`): added pink noise,
  a telephone/AM band (300-3400 Hz), a 5-7 kHz low-pass.  Music gets the
  same augments as talk, so that a narrow band does not mean "speech".

Splits are group-disjoint (:func:`assign_folds`): every group -- a talk
recording's name stem or a digit speaker (the speech manifest's ``group``),
a music clip's artist (the collections' ``artist``, joined across them by
:func:`genretag.training.corpus.artist_group`) -- is dealt to one of ``k``
folds, and a mix takes its bed only from artists of its talk's fold, so a
held-out fold shares neither voices, recordings nor artists with training.
Everything is drawn from seeded generators keyed by clip id, so the same
call gives the same audio (and hits the same embedding cache) every time.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genretag.pipeline.audio import decode
from genretag.training.corpus import read_corpus

RATE = 16000
#: music bed levels relative to the talk's active level, dB
BED_LEVELS_DB = (0.0, -6.0, -12.0, -18.0)
AUGMENTS = ("none", "noise", "telephone", "lowpass")
MUSIC = 0
SPEECH = 1
CLASSES = ("music", "speech")


@dataclass
class SpeechItem:
    """One clip of the speech/music set, at 16 kHz."""

    clip_id: str
    group: str  # the split unit (for a mix: its talk's group; its bed's artist sits in the same fold)
    fold: int
    label: int  # MUSIC or SPEECH (talk over music is SPEECH)
    condition: str  # "speech", "music", "mix-6", ... ; see :func:`condition_of`
    augment: str
    source: str
    pcm: np.ndarray = field(repr=False)
    bed_group: str = ""  # a mix's bed artist
    genres: tuple[str, ...] = ()  # a music collection clip's labels


def condition_of(label: int, bed_db: float | None) -> str:
    return f"mix{bed_db:+.0f}" if bed_db is not None else CLASSES[label]


# --- levels and mixing ----------------------------------------------------------------------------


def active_rms(x: np.ndarray, sr: int = RATE, frame_seconds: float = 0.05, floor_db: float = 40.0) -> float:
    """RMS over the active part of ``x``: 50 ms frames within ``floor_db`` of the loudest frame.

    Pauses between words do not lower the level of talk, so a bed set to
    -6 dB sits 6 dB under the voice as a listener hears it (a simple
    stand-in for ITU-T P.56 active speech level).  0.0 for digital silence.
    """
    n = max(1, int(frame_seconds * sr))
    frames = x[: len(x) // n * n].reshape(-1, n) if len(x) >= n else x[None]
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    if power.max() <= 0:
        return 0.0
    active = power[power >= power.max() * 10 ** (-floor_db / 10)]
    return float(np.sqrt(active.mean()))


def level_db(x: np.ndarray) -> float:
    """:func:`active_rms` in dB."""
    return float(20 * np.log10(max(active_rms(x), 1e-12)))


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``x``: a random excerpt, or ``x`` repeated when it is shorter."""
    if len(x) < n:
        x = np.tile(x, int(np.ceil(n / len(x))) + 1)
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start : start + n]


def mix_at(speech: np.ndarray, bed: np.ndarray, bed_db: float) -> np.ndarray:
    """``speech`` plus ``bed`` scaled to ``bed_db`` relative to the speech's active level
    (:func:`active_rms`), both as long as ``speech``; peak-limited to 0.99 by one overall gain."""
    if len(bed) != len(speech):
        raise ValueError("bed and speech must have the same length")
    s, b = active_rms(speech), active_rms(bed)
    if s <= 0 or b <= 0:
        raise ValueError("speech and bed must not be silent")
    out = speech.astype(np.float64) + bed * (s / b * 10 ** (bed_db / 20))
    return _peak_limit(out)


def _peak_limit(x: np.ndarray, peak: float = 0.99) -> np.ndarray:
    top = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (peak / top) if top > peak else x).astype(np.float32)


# --- augmentation ---------------------------------------------------------------------------------


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise (white noise shaped in the frequency domain)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def augment(x: np.ndarray, kind: str, rng: np.random.Generator, sr: int = RATE) -> np.ndarray:
    """One of :data:`AUGMENTS`: ``noise`` adds pink noise 15-30 dB under the active level;
    ``telephone`` band-passes 300-3400 Hz (4th order Butterworth), then adds noise 25-35 dB down;
    ``lowpass`` cuts at 5-7 kHz (6th order Butterworth)."""
    from scipy.signal import butter, sosfilt

    if kind == "none":
        return x.astype(np.float32)
    if kind == "noise":
        snr = rng.uniform(15, 30)
        return _peak_limit(x + pink_noise(len(x), rng) * active_rms(x, sr) * 10 ** (-snr / 20))
    if kind == "telephone":
        y = sosfilt(butter(4, (300, 3400), "bandpass", fs=sr, output="sos"), x)
        snr = rng.uniform(25, 35)
        return _peak_limit(y + pink_noise(len(y), rng) * active_rms(y, sr) * 10 ** (-snr / 20))
    if kind == "lowpass":
        cut = rng.uniform(5000, 7000)
        return _peak_limit(sosfilt(butter(6, cut, "lowpass", fs=sr, output="sos"), x))
    raise ValueError(f"unknown augment {kind!r}; expected one of {AUGMENTS}")


# --- groups and folds -----------------------------------------------------------------------------


def rng_for(seed: int, *key: object) -> np.random.Generator:
    """A generator seeded by ``seed`` and ``key`` (stable across runs and Python processes)."""
    digest = hashlib.sha256(repr((seed, *key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def assign_folds(groups_by_kind: dict[str, Iterable[str]], k: int, seed: int = 0) -> dict[str, int]:
    """Deal every group to one of ``k`` folds: within each kind (e.g. "talk", "digits", "artist"),
    the groups are shuffled and dealt round-robin, so each fold gets its share of every kind.
    A group named under two kinds keeps the first fold it was dealt."""
    folds: dict[str, int] = {}
    for kind, groups in groups_by_kind.items():
        names = sorted(set(groups) - set(folds))
        order = rng_for(seed, "folds", kind).permutation(len(names))
        offset = int(rng_for(seed, "offset", kind).integers(k))
        for i, j in enumerate(order):
            folds[names[j]] = (i + offset) % k
    return folds


# --- the set --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechRow:
    path: Path
    label: str  # "speech", "music" or "speech+music"
    group: str
    source: str
    segments: str


def read_speech_manifest(manifest: Path) -> list[SpeechRow]:
    with manifest.open(newline="", encoding="utf-8") as f:
        return [
            SpeechRow(manifest.parent / r["path"], r["class"], r["group"], r["source"], r.get("segments", ""))
            for r in csv.DictReader(f)
        ]


@dataclass(frozen=True)
class SetOptions:
    """How the set is widened; the defaults are the benchmark's."""

    folds: int = 5
    seed: int = 0
    bed_levels_db: tuple[float, ...] = BED_LEVELS_DB
    #: share of the music collections' clips that get one augmented copy (all of the speech set's
    #: own talk and music clips get one)
    music_augment_share: float = 1 / 32
    #: a talk clip longer than this is mixed as excerpts this long, one per bed level (seconds)
    mix_seconds: float = 15.0
    #: augments drawn for mixes and augmented copies (mixes draw "none" too)
    augments: tuple[str, ...] = AUGMENTS
    max_music_clips: int | None = None  # for quick runs: only this many clips of the music collections


def build_set(
    speech_manifest: Path, music_manifests: Sequence[Path], options: SetOptions = SetOptions()
) -> list[SpeechItem]:
    """Every item of the set: talk and music of the speech collection (each also once augmented),
    the music collections' clips (a share of them also augmented), and each talk clip over a bed at
    every level of ``options.bed_levels_db`` (augment drawn from all of ``options.augments``).
    The radio-style examples (``speech+music`` with segments) are left out; see
    :func:`read_radio_examples`."""
    rows = [r for r in read_speech_manifest(speech_manifest) if r.label in ("speech", "music")]
    corpus = read_corpus(music_manifests)
    if options.max_music_clips is not None:
        pick = rng_for(options.seed, "subset").permutation(len(corpus))[: options.max_music_clips]
        corpus = [corpus[i] for i in sorted(pick)]
    folds = assign_folds(
        {
            "talk": [r.group for r in rows if r.label == "speech" and r.source != "fsdd"],
            "digits": [r.group for r in rows if r.source == "fsdd"],
            "speech-set music": [r.group for r in rows if r.label == "music"],
            "artist": [c.group for c in corpus],
        },
        options.folds,
        options.seed,
    )
    seed = options.seed
    altered = [a for a in options.augments if a != "none"]
    items: list[SpeechItem] = []

    def add(
        clip_id: str,
        group: str,
        label: int,
        source: str,
        pcm: np.ndarray,
        bed_db: float | None = None,
        aug: str = "none",
        bed_group: str = "",
        genres: tuple[str, ...] = (),
    ) -> None:
        items.append(
            SpeechItem(
                clip_id,
                group,
                folds[group],
                label,
                condition_of(label, bed_db),
                aug,
                source,
                pcm,
                bed_group,
                genres,
            )
        )

    music_pcm = {}
    for c in corpus:
        pcm = decode(c.path, RATE)
        music_pcm[c.clip_id] = pcm
        add(c.clip_id, c.group, MUSIC, c.source, pcm, genres=c.labels)  # the genre head's cache id and audio
        if rng_for(seed, "music-aug?", c.clip_id).random() < options.music_augment_share:
            rng = rng_for(seed, "music-aug", c.clip_id)
            kind = altered[int(rng.integers(len(altered)))]
            add(f"{c.clip_id}#{kind}", c.group, MUSIC, c.source, augment(pcm, kind, rng), aug=kind)
    beds_by_fold: dict[int, list[int]] = {}
    for i, c in enumerate(corpus):
        beds_by_fold.setdefault(folds[c.group], []).append(i)

    for r in rows:
        clip_id = f"speech/{r.path.name}"
        pcm = decode(r.path, RATE)
        label = SPEECH if r.label == "speech" else MUSIC
        add(clip_id, r.group, label, r.source, pcm)
        rng = rng_for(seed, "aug", clip_id)
        kind = altered[int(rng.integers(len(altered)))]
        add(f"{clip_id}#{kind}", r.group, label, r.source, augment(pcm, kind, rng), aug=kind)
        if label != SPEECH:
            continue
        for bed_db in options.bed_levels_db:
            rng = rng_for(seed, "mix", clip_id, bed_db)
            talk = fit_length(pcm, min(len(pcm), int(options.mix_seconds * RATE)), rng)
            pool = beds_by_fold.get(folds[r.group], [])
            if not pool:
                continue
            bed_clip = corpus[pool[int(rng.integers(len(pool)))]]
            bed = fit_length(music_pcm[bed_clip.clip_id], len(talk), rng)
            kind = options.augments[int(rng.integers(len(options.augments)))]
            mixed = augment(mix_at(talk, bed, bed_db), kind, rng)
            add(
                f"{clip_id}@{bed_db:+.0f}dB:{bed_clip.clip_id}#{kind}",
                r.group,
                SPEECH,
                r.source,
                mixed,
                bed_db,
                kind,
                bed_clip.group,
            )
    return items


@dataclass
class RadioExample:
    """A radio-style example with its annotated parts (``[start, end, class]``, overlapping)."""

    clip_id: str
    pcm: np.ndarray = field(repr=False)
    segments: list[tuple[float, float, str]]

    def window_labels(self, starts: np.ndarray, window_seconds: float) -> np.ndarray:
        """SPEECH for a window that holds at least half a window of talk, else MUSIC."""
        out = np.full(len(starts), MUSIC)
        for i, t in enumerate(starts):
            talk = sum(
                max(0.0, min(e, t + window_seconds) - max(s, t)) for s, e, c in self.segments if c == "speech"
            )
            out[i] = SPEECH if talk >= window_seconds / 2 else MUSIC
        return out


def read_radio_examples(speech_manifest: Path) -> list[RadioExample]:
    import ast

    return [
        RadioExample(
            f"speech/{r.path.name}",
            decode(r.path, RATE),
            [(float(s), float(e), str(c)) for s, e, c in ast.literal_eval(r.segments)],
        )
        for r in read_speech_manifest(speech_manifest)
        if r.segments.strip()
    ]
