"""Scoring a whole audio file with a predictor: the core of ``genretag classify``.

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

from genretag.models.predictor import Predictor, window_spec
from genretag.pipeline.audio import AudioDecodeError, stream_decode
from genretag.pipeline.windows import WindowSpec, rms_dbfs, spread_windows

DEFAULT_MAX_WINDOWS = 48
SILENT_DBFS = -50.0
SHORTER_THAN_WINDOW = "shorter_than_window"
NEAR_SILENT = "near_silent"
WARNINGS = {
    SHORTER_THAN_WINDOW: "shorter than one model window (the window is filled by repeating it): the label "
                         "is a guess",
    NEAR_SILENT: f"silent or nearly so (every window below {SILENT_DBFS:g} dBFS): the label is a guess",
}


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

    @property
    def label(self) -> str:
        return self.labels[int(np.argmax(self.clip_scores))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.clip_scores))

    def to_json(self) -> dict[str, object]:
        def named(row: np.ndarray) -> dict[str, float]:
            return {name: round(float(s), 5) for name, s in zip(self.labels, row, strict=True)}

        return {
            "path": self.path,
            "label": self.label,
            "confidence": round(self.confidence, 5),
            "scores": named(self.clip_scores),
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
            "windows": [
                {"start": round(float(t), 3), "scores": named(row)}
                for t, row in zip(self.window_starts, self.window_scores, strict=True)
            ],
        }


def classify_file(predictor: Predictor, path: str | Path, max_windows: int = DEFAULT_MAX_WINDOWS,
                  batch_size: int = 32) -> ClipResult:
    """Decode ``path`` at the model's rate and average the scores of its windows.

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
    of the file: a two-hour recording costs what a song does.

    Raises :class:`genretag.pipeline.audio.AudioDecodeError` for unreadable
    files and for digital silence (every sample zero: there is nothing to judge).
    """
    spec = window_spec(predictor.manifest)
    n_samples, peak = 0, 0.0
    for block in stream_decode(path, spec.sample_rate):
        n_samples += block.size
        peak = max(peak, float(np.max(np.abs(block), initial=0.0)))
    if n_samples == 0:
        raise AudioDecodeError(f"{path}: decodes to no audio samples")
    if peak == 0.0:
        raise AudioDecodeError(f"{path}: digital silence (every sample is zero), no genre to judge")
    windows, starts = _chosen_windows(path, spec, n_samples, max_windows if max_windows > 0 else 1 << 30)
    scores = np.concatenate([
        predictor.predict(windows[i:i + batch_size]) for i in range(0, len(windows), batch_size)
    ])
    audible = rms_dbfs(windows) >= SILENT_DBFS
    clip_scores = scores[audible].mean(axis=0) if audible.any() else scores.mean(axis=0)
    warnings = [flag for flag, raised in ((SHORTER_THAN_WINDOW, n_samples < spec.window_samples),
                                          (NEAR_SILENT, not audible.any())) if raised]
    return ClipResult(str(path), list(predictor.manifest.labels), clip_scores, starts, scores,
                      n_samples / spec.sample_rate, warnings)


def _chosen_windows(path: str | Path, spec: WindowSpec, n_samples: int,
                    max_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """The windows :func:`spread_windows` would pick from the whole signal, collected from a
    second streaming pass that keeps only the samples those windows cover."""
    win = spec.window_samples
    if n_samples < win:  # one tiled window of a short file: holding it all is cheap
        return spread_windows(np.concatenate(list(stream_decode(path, spec.sample_rate))), spec, 1)
    n_windows = 1 + (n_samples - win) // spec.hop_samples
    picks = np.arange(n_windows)
    if n_windows > max_windows:
        picks = np.unique(np.linspace(0, n_windows - 1, max_windows).round().astype(int))
    first = picks * spec.hop_samples
    windows = np.zeros((len(picks), win), np.float32)
    offset = 0
    for block in stream_decode(path, spec.sample_rate):
        end = offset + block.size
        for i in np.flatnonzero((first < end) & (first + win > offset)):
            lo, hi = max(first[i], offset), min(first[i] + win, end)
            windows[i, lo - first[i]:hi - first[i]] = block[lo - offset:hi - offset]
        offset = end
    return windows, first / spec.sample_rate
