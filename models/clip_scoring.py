"""The clip-scoring rule, and scoring a whole audio file with it: the core of ``genretag classify``.

**The rule** (one definition, used by ``classify``, ``evaluate``, ``compare``,
cross-validation, the sklearn baselines' model selection and the tagger
recipe's cross-source figures):

1. *spread*: of a clip's windows (:func:`genretag.pipeline.windows.frame_windows`),
   at most ``max_windows`` (:data:`DEFAULT_MAX_WINDOWS`; 0: all) count, spread
   evenly over the whole clip (:func:`chosen_windows`);
2. *audible*: of those, the windows whose RMS level is below :data:`SILENT_DBFS`
   (lead-in silence, gaps between movements) say nothing about the genre and are
   left out, unless every one of them is that quiet: then all of step 1 count
   (:func:`audible_windows`);
3. the clip's score is the mean of the counted windows' scores.

:func:`clip_score` applies it to one clip, :func:`clip_scores` to many clips'
windows at once (scores computed elsewhere, from cached embeddings say, with
each window's level carried along as :func:`window_levels` gives it).

``classify`` also reports, per file, what the artifact's analysis heads say
(``speech_share``, ``mood``, ``tags``: the same windows, the same rule) and the
file's tempo and key (:mod:`genretag.pipeline.tempo`, :mod:`genretag.pipeline.key`),
read from the decoded audio while it streams past for its length.

A model gives every input a confident-looking label, including audio that
cannot carry one: a clip shorter than one window (0.2 s of a tone) or one
that is silent or nearly so.  Such results carry a flag in
:attr:`ClipResult.warnings` (and in the JSON), with a sentence for people in
:data:`WARNINGS`, so the label is read as the guess it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genretag.models.artifact import GENRE, output_labels
from genretag.models.predictor import Predictor, window_spec
from genretag.pipeline.audio import AudioDecodeError, stream_decode
from genretag.pipeline.key import NO_KEY, KeyEstimate, KeyTracker
from genretag.pipeline.tempo import NO_TEMPO, TempoEstimate, TempoTracker
from genretag.pipeline.windows import (
    WindowSpec,
    frame_count,
    frame_starts,
    frame_windows,
    rms_dbfs,
    spread_indices,
)

DEFAULT_MAX_WINDOWS = 48
SILENT_DBFS = -50.0
#: A window is speech when the speech head gives it at least this P(speech) (``speech_share``).
SPEECH_THRESHOLD = 0.5
#: Seconds of audio the tempo and key of a file are read from: the whole file, or its last this many
#: seconds when longer, so that a two-hour file costs the trackers what ten minutes do.
TEMPO_KEY_CONTEXT_SECONDS = 600.0
SHORTER_THAN_WINDOW = "shorter_than_window"
NEAR_SILENT = "near_silent"
CLIP_RULE = (
    f"mean of at most {DEFAULT_MAX_WINDOWS} spread windows, those below {SILENT_DBFS:g} dBFS "
    "left out unless all are"
)
"""The rule's defaults in words, recorded next to figures made with it."""
WARNINGS = {
    SHORTER_THAN_WINDOW: "shorter than one model window (the window is filled by repeating it): the label "
    "is a guess",
    NEAR_SILENT: f"silent or nearly so (every window below {SILENT_DBFS:g} dBFS): the label is a guess",
}


def window_levels(windows: np.ndarray) -> np.ndarray:
    """Each window's RMS level in dBFS, ``(n_windows,)``: what step 2 of the rule reads."""
    return rms_dbfs(windows)


def chosen_windows(n_windows: int, max_windows: int = DEFAULT_MAX_WINDOWS) -> np.ndarray:
    """Step 1 of the rule: indices of the windows of a clip of ``n_windows`` that count (ascending)."""
    return spread_indices(n_windows, max_windows if max_windows > 0 else n_windows)


def audible_windows(levels_db: np.ndarray) -> np.ndarray:
    """Step 2 of the rule for one clip's chosen windows: bool mask of those at or above
    :data:`SILENT_DBFS`, or all of them when none is."""
    audible = np.asarray(levels_db) >= SILENT_DBFS
    return audible if audible.any() else np.ones_like(audible)


def clip_score(window_scores: np.ndarray, levels_db: np.ndarray) -> np.ndarray:
    """The rule's steps 2 and 3 for one clip whose windows were chosen by step 1: ``(n_labels,)``."""
    return np.asarray(window_scores[audible_windows(levels_db)].mean(axis=0))


def counted_windows(
    clip_index: np.ndarray, levels_db: np.ndarray | None = None, max_windows: int = DEFAULT_MAX_WINDOWS
) -> np.ndarray:
    """Steps 1 and 2 of the rule over the windows of many clips: bool ``(n_windows,)``, True where a
    window counts toward its clip's score.

    ``clip_index`` names each window's clip (ints or ids); a clip's windows may be interleaved with
    other clips' but must be in time order.  ``levels_db`` is each window's :func:`window_levels`;
    None where the levels are unknown, and then every chosen window counts as audible.
    """
    _, inverse, counts = np.unique(np.asarray(clip_index), return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.empty(len(inverse), np.int64)  # rank of each window within its clip
    position[order] = np.arange(len(inverse)) - first[inverse[order]]
    n_of_clip = counts[inverse]
    chosen = np.zeros(len(inverse), bool)
    for n in np.unique(counts):
        keep = np.zeros(n, bool)
        keep[chosen_windows(int(n), max_windows)] = True
        rows = n_of_clip == n
        chosen[rows] = keep[position[rows]]
    if levels_db is None:
        return chosen
    audible = chosen & (np.asarray(levels_db) >= SILENT_DBFS)
    any_audible = np.bincount(inverse, weights=audible, minlength=len(counts)) > 0
    return np.where(any_audible[inverse], audible, chosen)


def mean_by_clip(
    per_window: np.ndarray, clip_index: np.ndarray, n_clips: int, counted: np.ndarray | None = None
) -> np.ndarray:
    """Mean of the ``counted`` (default: all) rows of ``per_window`` for each clip ``0..n_clips-1``,
    float64 ``(n_clips, dim)``; a clip with no such row gets zeros."""
    if counted is not None:
        per_window, clip_index = per_window[counted], clip_index[counted]
    sums = np.zeros((n_clips, per_window.shape[1]))
    np.add.at(sums, clip_index, per_window)
    counts = np.bincount(clip_index, minlength=n_clips)[:, None]
    return sums / np.maximum(counts, 1)


def clip_scores(
    window_scores: np.ndarray,
    clip_index: np.ndarray,
    n_clips: int,
    levels_db: np.ndarray | None = None,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> np.ndarray:
    """The whole rule over the windows of many clips: float64 ``(n_clips, n_labels)``.

    ``clip_index`` is each window's clip, ``0..n_clips-1``; ``levels_db`` and the order of a clip's
    windows as in :func:`counted_windows`.
    """
    return mean_by_clip(
        window_scores, clip_index, n_clips, counted_windows(clip_index, levels_db, max_windows)
    )


@dataclass
class ClipResult:
    """A file's clip-level label plus the per-window scores it came from."""

    path: str
    labels: list[str]
    clip_scores: np.ndarray  # (n_labels,)
    window_starts: np.ndarray  # (n_windows,) seconds
    window_scores: np.ndarray  # (n_windows, n_labels)
    seconds: float = 0.0  # length of the decoded audio
    warnings: list[str] = field(default_factory=list)  # keys of WARNINGS, in that order
    #: the analysis heads (``speech``, ``mood``, ``tags``): name -> (labels, clip scores by the rule)
    heads: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    #: share of the counted windows the speech head calls speech; None without a speech head
    speech_share: float | None = None
    tempo: TempoEstimate = NO_TEMPO
    key: KeyEstimate = NO_KEY

    @property
    def label(self) -> str:
        return self.labels[int(np.argmax(self.clip_scores))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.clip_scores))

    def to_json(self) -> dict[str, object]:
        def named(row: np.ndarray) -> dict[str, float]:
            return {name: round(float(s), 5) for name, s in zip(self.labels, row, strict=True)}

        out: dict[str, object] = {
            "path": self.path,
            "label": self.label,
            "confidence": round(self.confidence, 5),
            "scores": named(self.clip_scores),
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }
        if self.speech_share is not None:
            out["speech_share"] = round(self.speech_share, 3)
        if "mood" in self.heads:
            labels, scores = self.heads["mood"]
            out["mood"] = {
                "label": labels[int(np.argmax(scores))],
                "scores": {name: round(float(s), 3) for name, s in zip(labels, scores, strict=True)},
            }
        if "tags" in self.heads:
            labels, scores = self.heads["tags"]
            out["tags"] = {name: round(float(s), 3) for name, s in zip(labels, scores, strict=True)}
        out["tempo"] = {
            "bpm": None if self.tempo.bpm is None else round(self.tempo.bpm, 1),
            "confidence": round(self.tempo.confidence, 3),
        }
        out["key"] = {
            "tonic": self.key.tonic,
            "mode": self.key.mode,
            "name": self.key.name,
            "confidence": round(self.key.confidence, 3),
        }
        out["windows"] = [
            {"start": round(float(t), 3), "scores": named(row)}
            for t, row in zip(self.window_starts, self.window_scores, strict=True)
        ]
        return out


def classify_file(
    predictor: Predictor, path: str | Path, max_windows: int = DEFAULT_MAX_WINDOWS, batch_size: int = 32
) -> ClipResult:
    """Decode ``path`` at the model's rate and score it by the clip rule (module docstring).

    A long song is covered by at most ``max_windows`` windows spread evenly
    over its whole length (0 means every window), so a 5-minute track costs
    about as much as a 1-minute one while still being judged on all of it.
    Windows quieter than ``SILENT_DBFS`` (lead-in silence, gaps between
    movements) say nothing about the genre and are left out of the clip
    score, unless the whole file is that quiet; then, and for a file shorter
    than one window, the result carries a warning (see the module docstring).

    The file is streamed twice, a block at a time: once to learn its length
    (which the spread needs, and which headers of truncated files misstate),
    once to keep only the chosen windows.  Memory is that of the windows, not
    of the file: a two-hour recording costs what a song does.  The first pass
    also feeds the tempo and key trackers, whose context is the whole file up
    to :data:`TEMPO_KEY_CONTEXT_SECONDS` (its last ones for a longer file).

    With an artifact that has analysis heads, every chosen window is scored by
    all of them in the same run, and each head's clip scores follow the rule
    (steps 2 and 3, the windows genre counts); ``speech_share`` is the share
    of those windows whose P(speech) is at least :data:`SPEECH_THRESHOLD`.

    Raises :class:`genretag.pipeline.audio.AudioDecodeError` for unreadable
    files and for digital silence (every sample zero: there is nothing to judge).
    """
    spec = window_spec(predictor.manifest)
    n_samples, peak = 0, 0.0
    # Read once at the end: updates every 30 s cost less and hold at most 30 s of audio waiting.
    context, update = TEMPO_KEY_CONTEXT_SECONDS, 30.0
    tempo = TempoTracker(spec.sample_rate, context_seconds=context, update_seconds=update)
    key = KeyTracker(spec.sample_rate, context_seconds=context, update_seconds=update)
    for block in stream_decode(path, spec.sample_rate):
        n_samples += block.size
        peak = max(peak, float(np.max(np.abs(block), initial=0.0)))
        tempo.push(block)
        key.push(block)
    if n_samples == 0:
        raise AudioDecodeError(f"{path}: decodes to no audio samples")
    if peak == 0.0:
        raise AudioDecodeError(f"{path}: digital silence (every sample is zero), no genre to judge")
    windows, starts = _chosen_windows(path, spec, n_samples, max_windows)
    batches = [
        predictor.predict_outputs(windows[i : i + batch_size]) for i in range(0, len(windows), batch_size)
    ]
    outputs = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    scores = outputs[GENRE]
    levels = window_levels(windows)
    counted = audible_windows(levels)
    heads = {
        name: (labels, np.asarray(outputs[name][counted].mean(axis=0)))
        for name, labels in output_labels(predictor.manifest).items()
        if name != GENRE
    }
    speech_share = None
    if "speech" in heads:
        speech = outputs["speech"][counted, heads["speech"][0].index("speech")]
        speech_share = float(np.mean(speech >= SPEECH_THRESHOLD))
    warnings = [
        flag
        for flag, raised in (
            (SHORTER_THAN_WINDOW, n_samples < spec.window_samples),
            (NEAR_SILENT, not (levels >= SILENT_DBFS).any()),
        )
        if raised
    ]
    return ClipResult(
        str(path),
        list(predictor.manifest.labels),
        clip_score(scores, levels),
        starts,
        scores,
        n_samples / spec.sample_rate,
        warnings,
        heads,
        speech_share,
        tempo.finish(),
        key.finish(),
    )


def _chosen_windows(
    path: str | Path, spec: WindowSpec, n_samples: int, max_windows: int
) -> tuple[np.ndarray, np.ndarray]:
    """The windows :func:`chosen_windows` picks of those :func:`~genretag.pipeline.windows.frame_windows`
    would cut from the whole signal, collected from a second streaming pass that keeps only the
    samples those windows cover."""
    win, hop = spec.window_samples, spec.hop_samples
    if n_samples < win:  # one tiled window of a short file: holding it all is cheap
        return frame_windows(np.concatenate(list(stream_decode(path, spec.sample_rate))), spec)
    first = frame_starts(n_samples, win, hop)[chosen_windows(frame_count(n_samples, win, hop), max_windows)]
    windows = np.zeros((len(first), win), np.float32)
    offset = 0
    for block in stream_decode(path, spec.sample_rate):
        end = offset + block.size
        for i in np.flatnonzero((first < end) & (first + win > offset)):
            lo, hi = max(first[i], offset), min(first[i] + win, end)
            windows[i, lo - first[i] : hi - first[i]] = block[lo - offset : hi - offset]
        offset = end
    return windows, first / spec.sample_rate
