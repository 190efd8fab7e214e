"""Score a programme's rolling label against its cue sheet, from the daemon's events alone.

What a listener of a live stream sees is the rolling label at each moment, so
that is what is scored: a step function of programme time built from the
events of one stream (:func:`label_timeline`):

* a ``label`` event sets the label from its ``pos`` on (``label: null`` clears it);
* a ``state`` event ``silence`` or ``down`` clears it (the daemon forgets the
  label then and settles anew; ``up`` and ``recovered`` change nothing);
* before the first event there is no label; ``scores`` events and keys this
  module does not know (a ``reason`` may come) are ignored.

Each song (``[start, end)`` of the cue sheet) is then measured against its
truth set (:func:`score_song`), and songs are summed per genre and overall
(:func:`summarise`).  Everything is a pure function of (cue sheet, events), so
it is tested on hand-built event lists without a daemon.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: One step of the rolling label: from ``pos`` (seconds) on, ``label`` (None: no label shown).
Step = tuple[float, str | None]


def label_timeline(events: Iterable[dict[str, Any]], stream: str | None = None) -> list[Step]:
    """The rolling label's steps, in stream order, from the events of ``stream`` (None: every event).

    Events keep their arrival order (the daemon publishes a stream's events
    in stream order); a stable sort by ``pos`` guards against a reordered log.
    """
    steps: list[Step] = []
    for event in events:
        if stream is not None and event.get("stream") != stream:
            continue
        kind = event.get("type")
        if kind == "label":
            steps.append((float(event["pos"]), event.get("label")))
        elif kind == "state" and event.get("state") in ("silence", "down"):
            steps.append((float(event["pos"]), None))
    return sorted(steps, key=lambda step: step[0])


@dataclass(frozen=True)
class SongScore:
    """How the rolling label did on one song.

    ``first_right`` is the delay (seconds from the song's start) to the first
    moment a right label shows, None when it never does; ``wrong_changes``
    counts label changes inside the song to a label outside its truth set
    (a wrong label appearing after none counts too).
    """

    programme: str
    index: int
    genre: str
    truth: tuple[str, ...]
    start: float
    end: float
    right_seconds: float
    unlabelled_seconds: float
    first_right: float | None
    wrong_changes: int

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def labelled_seconds(self) -> float:
        return self.seconds - self.unlabelled_seconds


def score_song(
    steps: Sequence[Step],
    start: float,
    end: float,
    truth: Iterable[str],
    *,
    programme: str = "",
    index: int = 0,
    genre: str = "",
) -> SongScore:
    """Measure the rolling label (``steps`` of :func:`label_timeline`) on ``[start, end)``."""
    truth_set = frozenset(truth)
    label: str | None = None
    for pos, new in steps:  # the label shown just before the song starts
        if pos >= start:
            break
        label = new
    right = unlabelled = 0.0
    first_right = 0.0 if label in truth_set else None
    wrong_changes = 0
    cursor = start
    for pos, new in [s for s in steps if start <= s[0] < end] + [(end, None)]:
        piece = pos - cursor
        if label is None:
            unlabelled += piece
        elif label in truth_set:
            right += piece
        cursor = pos
        if pos >= end:
            break
        if new != label:
            if new is not None and new not in truth_set:
                wrong_changes += 1
            if new in truth_set and first_right is None:
                first_right = pos - start
        label = new
    return SongScore(
        programme,
        index,
        genre or "/".join(sorted(truth_set)),
        tuple(sorted(truth_set)),
        start,
        end,
        right,
        unlabelled,
        first_right,
        wrong_changes,
    )


def score_programme(cue: dict[str, Any], events: Iterable[dict[str, Any]]) -> list[SongScore]:
    """Every song of a cue sheet (:func:`benchmarks.programme_build.render`) scored on the events of the
    stream named like the programme (``cue["name"]``)."""
    steps = label_timeline(events, cue["name"])
    return [
        score_song(
            steps,
            song["start"],
            song["end"],
            song["truth"],
            programme=cue["name"],
            index=song["index"],
            genre=song["genre"],
        )
        for song in cue["songs"]
    ]


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def summarise(songs: Sequence[SongScore]) -> dict[str, Any]:
    """The benchmark's figures over some songs.

    Keys: ``songs``, ``seconds``; ``right_share`` (programme time whose label is in
    the song's truth set), ``unlabelled_share`` (time with no label), ``precision``
    (right time / time a label was shown; None when none was); ``delay_median``,
    ``delay_p90`` (seconds from a song's start to its first right label; a song
    never labelled right counts with its whole length, so these are upper
    bounds where ``never_right`` > 0); ``never_right`` (songs never labelled
    right); ``wrong_changes`` (label changes inside songs to a wrong label) and
    ``wrong_changes_per_song``.
    """
    seconds = math.fsum(s.seconds for s in songs)
    right = math.fsum(s.right_seconds for s in songs)
    unlabelled = math.fsum(s.unlabelled_seconds for s in songs)
    delays = [s.seconds if s.first_right is None else s.first_right for s in songs]
    wrong = sum(s.wrong_changes for s in songs)
    return {
        "songs": len(songs),
        "seconds": round(seconds, 3),
        "right_share": _share(right, seconds),
        "unlabelled_share": _share(unlabelled, seconds),
        "precision": _share(right, seconds - unlabelled),
        "delay_median": float(np.percentile(delays, 50)) if delays else None,
        "delay_p90": float(np.percentile(delays, 90)) if delays else None,
        "never_right": sum(s.first_right is None for s in songs),
        "wrong_changes": wrong,
        "wrong_changes_per_song": _share(wrong, len(songs)),
    }


def report(songs: Sequence[SongScore]) -> dict[str, Any]:
    """:func:`summarise` overall and per genre (genres sorted by name), plus every song's score."""
    genres = sorted({s.genre for s in songs})
    return {
        "overall": summarise(songs),
        "per_genre": {g: summarise([s for s in songs if s.genre == g]) for g in genres},
        "songs": [{**asdict(s), "seconds": round(s.seconds, 3)} for s in songs],
    }
