"""Running a predictor over whole clips, window by window, in batches.

Every window is scored (the window-level figures need them all) and carries its
level, so :meth:`ScoredWindows.by_clip` applies the clip rule of ``classify``
(:mod:`genretag.models.clip_scoring`) to them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from genretag.models.clip_scoring import window_levels
from genretag.models.predictor import Predictor, window_spec
from genretag.pipeline.audio import resample
from genretag.pipeline.windows import frame_windows
from genretag.training.metrics import ScoredWindows


def score_clips(
    predictor: Predictor,
    clips: Iterable[tuple[str, np.ndarray, np.ndarray, int]],
    batch_size: int = 64,
) -> ScoredWindows:
    """Score every window of every clip and measure its level.

    ``clips`` yields ``(clip_id, pcm float32, multi-hot labels, sample_rate)``;
    audio at another rate than the model's is resampled first.
    """
    spec = window_spec(predictor.manifest)
    scores, labels, ids, levels = [], [], [], []
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            scores.append(predictor.predict(np.concatenate(pending)))
            pending.clear()

    for clip_id, pcm, clip_labels, sr in clips:
        windows, _ = frame_windows(resample(pcm, sr, spec.sample_rate), spec)
        labels.append(np.repeat(clip_labels[None, :], len(windows), axis=0))
        ids.extend([clip_id] * len(windows))
        levels.append(window_levels(windows))
        for start in range(0, len(windows), batch_size):
            pending.append(windows[start : start + batch_size])
            if sum(len(p) for p in pending) >= batch_size:
                flush()
    flush()
    n_labels = len(predictor.manifest.labels)
    return ScoredWindows(
        np.concatenate(scores) if scores else np.zeros((0, n_labels), np.float32),
        np.concatenate(labels) if labels else np.zeros((0, n_labels), np.float32),
        np.asarray(ids),
        np.concatenate(levels) if levels else np.zeros(0),
    )
