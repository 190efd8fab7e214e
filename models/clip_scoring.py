"""Scoring a whole audio file with a predictor: the core of ``genretag classify``."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from genretag.models.predictor import Predictor, window_spec
from genretag.pipeline.audio import decode
from genretag.pipeline.windows import rms_dbfs, spread_windows

DEFAULT_MAX_WINDOWS = 48
SILENT_DBFS = -50.0


def default_model_dir() -> Path:
    """The artifact bundled with the package, used whenever ``--model`` is not given."""
    return Path(str(files("genretag.models") / "default"))


@dataclass
class ClipResult:
    """A file's clip-level label plus the per-window scores it came from."""

    path: str
    labels: list[str]
    clip_scores: np.ndarray  # (n_labels,)
    window_starts: np.ndarray  # (n_windows,) seconds
    window_scores: np.ndarray  # (n_windows, n_labels)

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
    score, unless the whole file is that quiet.
    Raises :class:`genretag.pipeline.audio.AudioDecodeError` for unreadable files.
    """
    spec = window_spec(predictor.manifest)
    samples = decode(path, spec.sample_rate)
    windows, starts = spread_windows(samples, spec, max_windows if max_windows > 0 else 1 << 30)
    scores = np.concatenate([
        predictor.predict(windows[i:i + batch_size]) for i in range(0, len(windows), batch_size)
    ])
    audible = rms_dbfs(windows) >= SILENT_DBFS
    clip_scores = scores[audible].mean(axis=0) if audible.any() else scores.mean(axis=0)
    return ClipResult(str(path), list(predictor.manifest.labels), clip_scores, starts, scores)
