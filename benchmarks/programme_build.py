"""Radio-like programmes from held-out clips: songs in a row, each genre change a song change.

A live radio programme is what the daemon is for, and a clip benchmark does not
show what a listener sees there: how long the rolling label takes to follow a
song change, and whether it flaps inside a song.  This module builds such
programmes from labelled clips the model never trained on:

* a *song* is 2 or 3 clips of one genre joined with a short equal-power
  crossfade, cut to a length drawn (seeded) from ``song_seconds``; the clips of
  the shared data are 10-30 s, too short to be songs on their own;
* a clip's truth is its candidate set (:func:`genretag.training.label_sets.candidate_set`:
  ``pop;rock`` is one of pop, rock or metal); the clips of a song share one
  candidate set, and its *genre* is that set's name (``metal/pop/rock``);
* consecutive songs have disjoint truth sets, so every song change is a genre
  change that a right label must follow;
* the next song's genre is the least used so far (ties broken at random), so
  genres are balanced; a clip is used at most once per programme, and clips
  used less often (in earlier programmes) are preferred;
* songs join with the same crossfade as clips; a song boundary is the middle
  of that crossfade.

The audio is written as FLAC at the clips' rate, with a JSON cue sheet
(:func:`render` documents its keys).  Nothing here knows the daemon.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from genretag.pipeline.audio import AudioDecodeError, decode
from genretag.training.corpus import artist_group
from genretag.training.label_sets import candidate_set

CUE_VERSION = 1
#: Seconds kept off a clip's stated length when planning: MP3 headers may overstate it slightly.
LENGTH_MARGIN = 0.25
#: The shortest part of a clip a song uses (seconds): shorter cuts would not sound like the clip at all.
MIN_SEGMENT = 5.0
#: Clip combinations tried per song length and tier before giving up on a genre (keeps a big pool cheap).
MAX_TRIES = 5000


@dataclass(frozen=True)
class Clip:
    """One manifest row: an audio file, its labels and who plays it."""

    path: Path
    labels: tuple[str, ...]
    artist: str
    source: str
    split: str
    seconds: float

    @property
    def truth(self) -> frozenset[str]:
        """The genres the clip may be (its candidate set)."""
        return candidate_set(self.labels)


@dataclass(frozen=True)
class Segment:
    """The part of a clip a song plays: ``seconds`` from ``offset`` (seconds into the clip)."""

    clip: Clip
    offset: float
    seconds: float


@dataclass(frozen=True)
class Song:
    """Clips of one candidate set in a row."""

    truth: frozenset[str]
    segments: tuple[Segment, ...]

    @property
    def genre(self) -> str:
        return genre_name(self.truth)


def genre_name(truth: Iterable[str]) -> str:
    """A candidate set's name in reports: its genres sorted, joined by ``/``."""
    return "/".join(sorted(truth))


def clip_seconds(path: Path) -> float:
    """A clip's length from its header (cheap); decoded in full only where the header is unreadable."""
    try:
        return float(sf.info(str(path)).duration)
    except (sf.LibsndfileError, RuntimeError):
        return len(decode(path, 22050)) / 22050


def read_programme_clips(manifest: Path) -> list[Clip]:
    """The clips of one manifest (``path,labels,artist,source,split,...``; paths relative to its folder)."""
    clips = []
    with manifest.open(newline="") as handle:
        for row in csv.DictReader(handle):
            path = (manifest.parent / row["path"]).resolve()
            labels = tuple(label.strip() for label in row["labels"].split(";") if label.strip())
            clips.append(
                Clip(
                    path,
                    labels,
                    row.get("artist", ""),
                    row.get("source", ""),
                    row.get("split", ""),
                    clip_seconds(path),
                )
            )
    return clips


def artists_of(manifest: Path) -> set[str]:
    """The artist groups of a manifest (:func:`~genretag.training.corpus.artist_group`: case-folded, known
    aliases joined): a model trained on it has heard them."""
    with manifest.open(newline="") as handle:
        return {artist_group(row["artist"]) for row in csv.DictReader(handle) if row.get("artist")}


def select_clips(
    clips: Iterable[Clip],
    sources: Sequence[str],
    *,
    exclude_artists: Iterable[str] = (),
    splits: Sequence[str] = (),
) -> list[Clip]:
    """Clips a model did not train on: of the given ``sources``, none by an excluded artist.

    Parameters
    ----------
    sources : manifest ``source`` values to keep (``mer4q``, ``gtzan``, ``emotify``); at least one, since
        a benchmark on training clips measures memory, not tagging.
    exclude_artists : artist names (any case) whose clips are left out, e.g. :func:`artists_of` a
        training manifest: a model knows its artists' sound even on songs it never heard.
    splits : keep only these ``split`` values (empty: all).
    """
    if not sources:
        raise ValueError("name at least one source (the manifest's source column) the model did not train on")
    excluded = {artist_group(a) for a in exclude_artists}
    return [
        c
        for c in clips
        if c.source in sources
        and artist_group(c.artist) not in excluded
        and (not splits or c.split in splits)
        and c.labels
    ]


def genre_pools(clips: Iterable[Clip], min_clips: int) -> dict[frozenset[str], list[Clip]]:
    """Clips grouped by candidate set; sets with fewer than ``min_clips`` clips are left out.

    A rare set (``classical/jazz``: one clip) cannot make balanced songs and
    would only add a row of noise to the per-genre table.
    """
    pools: dict[frozenset[str], list[Clip]] = {}
    for clip in clips:
        if clip.seconds - LENGTH_MARGIN >= MIN_SEGMENT:
            pools.setdefault(clip.truth, []).append(clip)
    return {
        truth: sorted(pool, key=lambda c: str(c.path))
        for truth, pool in pools.items()
        if len(pool) >= max(2, min_clips)
    }


def allocate(lengths: Sequence[float], total: float) -> list[float] | None:
    """Split ``total`` seconds over clips of these lengths as evenly as they allow (water filling).

    None when the clips are too short together, or a part would be shorter than :data:`MIN_SEGMENT`.
    """
    if sum(lengths) < total - 1e-9 or total / len(lengths) < MIN_SEGMENT:
        return None
    parts = [0.0] * len(lengths)
    left, count = total, len(lengths)
    for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
        parts[i] = min(lengths[i], left / count)
        left -= parts[i]
        count -= 1
    return parts if min(parts) >= MIN_SEGMENT else None


def _pick_clips(
    pool: Sequence[Clip],
    length: float,
    outer: float,
    crossfade: float,
    usage: Counter[Path],
    rng: np.random.Generator,
) -> list[Segment] | None:
    """2 (else 3) clips of ``pool`` making a song of ``length`` seconds, least-used clips first.

    The parts must cover the song, its ``k - 1`` inner crossfades and ``outer``
    seconds of the crossfades to its neighbours (half of each).  Clips are
    ranked by use (ties in random order) and combinations tried in that order,
    among the least-used clips first, so a clip is reused only when the unused
    ones cannot make the song.
    """
    ranked = sorted(pool, key=lambda c: (usage[c.path], rng.random()))
    for tier in sorted({usage[c.path] for c in pool}):
        candidates = [c for c in ranked if usage[c.path] <= tier]
        for k in (2, 3):
            need = length + (k - 1) * crossfade + outer
            for chosen in itertools.islice(itertools.combinations(candidates, k), MAX_TRIES):
                parts = allocate([c.seconds - LENGTH_MARGIN for c in chosen], need)
                if parts is not None:
                    return [
                        Segment(c, round((c.seconds - LENGTH_MARGIN - p) / 2, 3), p)
                        for c, p in zip(chosen, parts, strict=True)
                    ]
    return None


def plan_programme(
    pools: dict[frozenset[str], list[Clip]],
    n_songs: int,
    rng: np.random.Generator,
    *,
    song_seconds: tuple[float, float] = (45.0, 75.0),
    crossfade: float = 1.0,
    usage: Counter[Path] | None = None,
    genre_counts: Counter[str] | None = None,
) -> list[Song]:
    """``n_songs`` songs in a row, consecutive ones of disjoint truth sets, genres balanced.

    Parameters
    ----------
    pools : clips per candidate set (:func:`genre_pools`).
    song_seconds : (shortest, longest) song, seconds; each song's length is drawn uniformly.
    crossfade : seconds every two clips overlap (inside a song and between songs).
    usage, genre_counts : clip uses and songs per genre so far, updated in place; pass the same
        counters to every programme of a benchmark to balance genres and spread clips across them.

    Raises
    ------
    ValueError
        No genre can make the next song (too few clips left, or only one genre).
    """
    lo, hi = song_seconds
    if not 0 < lo <= hi or crossfade < 0:
        raise ValueError(
            f"need 0 < shortest <= longest song and crossfade >= 0, got {song_seconds}, {crossfade}"
        )
    usage = Counter() if usage is None else usage
    genre_counts = Counter() if genre_counts is None else genre_counts
    used: set[Path] = set()
    songs: list[Song] = []
    for index in range(n_songs):
        length = float(rng.uniform(lo, hi))
        neighbours = (index > 0) + (index < n_songs - 1)
        previous = songs[-1].truth if songs else frozenset()
        genres = [t for t in pools if not t & previous]
        order = rng.permutation(len(genres))
        genres = sorted((genres[i] for i in order), key=lambda t: genre_counts[genre_name(t)])
        for truth in genres:
            pool = [c for c in pools[truth] if c.path not in used]
            segments = _pick_clips(pool, length, neighbours * crossfade / 2, crossfade, usage, rng)
            if segments is None:
                continue
            songs.append(Song(truth, tuple(segments)))
            genre_counts[genre_name(truth)] += 1
            for seg in segments:
                used.add(seg.clip.path)
                usage[seg.clip.path] += 1
            break
        else:
            raise ValueError(
                f"no genre can make song {index + 1}: too few unused clips "
                f"(genres: {', '.join(genre_name(t) for t in pools) or 'none'})"
            )
    return songs


def _crossfade_curves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power fade-out and fade-in of ``n`` samples (two unrelated songs keep their loudness)."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return np.cos(t * np.pi / 2).astype(np.float32), np.sin(t * np.pi / 2).astype(np.float32)


def render(songs: Sequence[Song], sr: int, crossfade: float, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The programme's audio (float32 mono at ``sr``) and its cue sheet.

    Cue sheet keys: ``v`` (1), ``name`` (also the daemon's stream id), ``sample_rate``, ``seconds``,
    ``crossfade_seconds``, ``songs``: a list of ``{index, start, end, genre, truth, clips}`` with times in
    seconds of programme audio (a boundary is the middle of the crossfade between two songs) and
    ``clips``: ``{path, labels, artist, source, offset, seconds, at}`` (``offset``: seconds into the clip;
    ``at``: where in the programme its part starts).
    """
    xf = int(round(crossfade * sr))
    fade_out, fade_in = _crossfade_curves(xf)
    pieces: list[tuple[int, np.ndarray]] = []  # (start sample, audio)
    cursor = 0
    song_first: list[int] = []
    for song in songs:
        song_first.append(len(pieces))
        for seg in song.segments:
            audio = decode(seg.clip.path, sr)
            start, n = int(round(seg.offset * sr)), int(round(seg.seconds * sr))
            start = max(0, min(start, len(audio) - n))  # a header that overstated the length
            part = audio[start : start + n]
            if len(part) < n:
                raise AudioDecodeError(f"{seg.clip.path}: {len(audio) / sr:.2f} s, shorter than planned")
            pieces.append((cursor - (xf if pieces else 0), part))
            cursor = pieces[-1][0] + n
    total = cursor
    out = np.zeros(total, np.float32)
    for i, (at, part) in enumerate(pieces):
        part = part.copy()
        if i > 0 and xf:
            part[:xf] *= fade_in
        if i < len(pieces) - 1 and xf:
            part[-xf:] *= fade_out
        out[at : at + len(part)] += part
    np.clip(out, -1.0, 1.0, out=out)

    bounds = [0.0] + [(pieces[j][0] + xf / 2) / sr for j in song_first[1:]] + [total / sr]
    cue_songs = []
    piece = 0
    for index, song in enumerate(songs):
        clips = []
        for seg in song.segments:
            at, part = pieces[piece]
            clips.append(
                {
                    "path": str(seg.clip.path),
                    "labels": list(seg.clip.labels),
                    "artist": seg.clip.artist,
                    "source": seg.clip.source,
                    "offset": round(seg.offset, 6),
                    "seconds": round(len(part) / sr, 6),
                    "at": round(at / sr, 6),
                }
            )
            piece += 1
        cue_songs.append(
            {
                "index": index,
                "start": round(bounds[index], 6),
                "end": round(bounds[index + 1], 6),
                "genre": song.genre,
                "truth": sorted(song.truth),
                "clips": clips,
            }
        )
    cue = {
        "v": CUE_VERSION,
        "name": name,
        "sample_rate": sr,
        "seconds": round(total / sr, 6),
        "crossfade_seconds": crossfade,
        "songs": cue_songs,
    }
    return out, cue


def write_programme(folder: Path, name: str, audio: np.ndarray, sr: int, cue: dict[str, Any]) -> Path:
    """Write ``NAME.flac`` (16-bit) and ``NAME.json`` (cue sheet plus ``audio``, the FLAC) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    flac = folder / f"{name}.flac"
    sf.write(str(flac), audio, sr, subtype="PCM_16", format="FLAC")
    (folder / f"{name}.json").write_text(json.dumps({**cue, "audio": str(flac)}, indent=1) + "\n")
    return flac


def programme_minutes(cues: Sequence[dict[str, Any]]) -> float:
    """Total audio of some programmes, minutes (for progress lines)."""
    return math.fsum(c["seconds"] for c in cues) / 60
