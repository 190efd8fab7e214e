"""Window- and clip-level metrics for genre taggers.

A clip's score follows the one clip rule (:mod:`genretag.models.clip_scoring`:
at most 48 windows spread over the clip, silent ones left out, the rest
averaged), so these figures measure what ``classify`` does.  ``hit@1`` counts a
prediction as right when the top label is in the clip's label set, so clips
with two labels (``country;pop``) are handled the way they are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genretag.models.clip_scoring import clip_scores


@dataclass
class ScoredWindows:
    """Scores of many windows plus, for each window, its clip, the clip's multi-hot labels and its
    level (a clip's windows in time order)."""

    scores: np.ndarray  # (n_windows, n_labels)
    labels: np.ndarray  # (n_windows, n_labels) multi-hot
    clip_ids: np.ndarray  # (n_windows,)
    levels_db: np.ndarray | None = None  # (n_windows,) RMS dBFS; None: unknown, every window audible

    def by_clip(self) -> ScoredWindows:
        """Clip scores by the clip rule (module docstring), one row per clip (order: first appearance)."""
        ids, first, inverse = np.unique(self.clip_ids, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        pooled = clip_scores(self.scores, inverse, len(ids), self.levels_db)
        order = np.argsort(first)
        return ScoredWindows(pooled[order].astype(np.float32), self.labels[first][order], ids[order])


def hit_at_1(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row 1.0 where the arg-max label is among the true labels."""
    top = scores.argmax(axis=1)
    return labels[np.arange(len(top)), top].astype(np.float64)


def per_label_recall(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each label, the hit@1 rate over the rows that carry it (NaN if none do)."""
    hits = hit_at_1(scores, labels)
    recall = np.full(labels.shape[1], np.nan)
    for j in range(labels.shape[1]):
        rows = labels[:, j] > 0
        if rows.any():
            recall[j] = hits[rows].mean()
    return recall


def macro_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro-F1 of the top-1 prediction; a row counts as correct for any of its labels."""
    top = scores.argmax(axis=1)
    hits = hit_at_1(scores, labels) > 0
    f1s = []
    for j in range(labels.shape[1]):
        truth = labels[:, j] > 0
        if not truth.any():
            continue
        pred = top == j
        tp = np.sum(pred & truth)
        fp = np.sum(pred & ~hits)  # predicting j is only wrong if j is not among the row's labels
        fn = np.sum(truth & ~hits)
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(np.mean(f1s)) if f1s else float("nan")


def macro_roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro one-vs-rest ROC-AUC over labels that have both positives and negatives."""
    from sklearn.metrics import roc_auc_score

    aucs = [
        roc_auc_score(labels[:, j], scores[:, j])
        for j in range(labels.shape[1])
        if 0 < labels[:, j].sum() < len(labels)
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def confusion(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Confusion counts (true first label x predicted label)."""
    n = labels.shape[1]
    matrix = np.zeros((n, n), dtype=np.int64)
    for truth_row, pred in zip(labels, scores.argmax(axis=1), strict=True):
        truth = int(pred) if truth_row[pred] > 0 else int(np.argmax(truth_row))
        matrix[truth, pred] += 1
    return matrix


def summarize(scores: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """hit@1, macro-F1, macro ROC-AUC, per-label recall and their mean over present labels."""
    recall = per_label_recall(scores, labels)
    return {
        "n": int(len(scores)),
        "hit_at_1": float(hit_at_1(scores, labels).mean()) if len(scores) else float("nan"),
        "macro_f1": macro_f1(scores, labels),
        "macro_roc_auc": macro_roc_auc(scores, labels),
        "mean_per_genre_recall": float(np.nanmean(recall)) if np.any(~np.isnan(recall)) else float("nan"),
        "per_genre_recall": {
            name: (None if np.isnan(r) else float(r)) for name, r in zip(names, recall, strict=True)
        },
    }


def evaluate_windows(scored: ScoredWindows, names: Sequence[str]) -> dict[str, Any]:
    """Window-level and clip-level summaries in one dict."""
    clips = scored.by_clip()
    return {
        "window": summarize(scored.scores, scored.labels, names),
        "clip": summarize(clips.scores, clips.labels, names),
    }
