"""Model selection that predicts other sources: leave-one-source-out and artist-grouped folds.

Artist-grouped K-fold CV on a corpus of two sources gave 0.79 hit@1 for the
old default while music from other sources scored 0.68: its folds share the
recording chains, loudness habits and label conventions of the training
sources.  Holding out a whole *source* (GTZAN, Magnatune, AllMusic) is the
closest thing here to the music a user will play, so recipes are chosen on
the leave-one-source-out (LOSO) figures; artist-grouped folds are reported
next to them.

Scoring uses candidate sets (:mod:`genretag.training.label_sets`): a clip is
a hit when its top genre is any of its candidates.  Per-genre recall and
ROC-AUC use exact clips (one candidate) as positives and clips whose set
excludes the genre as negatives; a pop-or-rock clip is evidence for neither
pop nor rock alone.  A genre that a fold's training part never saw (metal and
disco exist in GTZAN only) still counts: its clips are misses, as they would
be on the radio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genretag.training.backbone_train import LinearHead
from genretag.training.label_sets import is_exact

COVERAGE = 0.7  # share of clips, most confident first, whose precision is reported


@dataclass
class CorpusWindows:
    """Window features of a corpus and, per window, the index of its clip; per clip its facts."""

    features: np.ndarray  # (n_windows, dim)
    clip_index: np.ndarray  # (n_windows,) row into the per-clip arrays
    candidates: np.ndarray  # (n_clips, n_labels) 0/1
    groups: np.ndarray  # (n_clips,) artist groups
    sources: np.ndarray  # (n_clips,)

    def windows_of(self, clip_mask: np.ndarray) -> np.ndarray:
        return clip_mask[self.clip_index]


def clip_means(per_window: np.ndarray, clip_index: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean of per-window rows for each clip, ``(n_clips, dim)``."""
    sums = np.zeros((n_clips, per_window.shape[1]))
    np.add.at(sums, clip_index, per_window)
    counts = np.bincount(clip_index, minlength=n_clips)[:, None]
    return sums / np.maximum(counts, 1)


def source_folds(sources: np.ndarray) -> list[np.ndarray]:
    """One boolean test mask per source (leave-one-source-out)."""
    return [sources == s for s in np.unique(sources)]


def artist_folds(candidates: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Artist-disjoint folds, stratified by each clip's first candidate."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    strata = candidates.argmax(axis=1)
    masks = []
    for _, test in splitter.split(np.zeros(len(groups)), strata, groups):
        mask = np.zeros(len(groups), bool)
        mask[test] = True
        masks.append(mask)
    return masks


FitFn = Callable[[CorpusWindows, np.ndarray], LinearHead]
"""Fits a head on the windows of the clips selected by a boolean clip mask."""


def out_of_fold(corpus: CorpusWindows, folds: Sequence[np.ndarray],
                fit: FitFn) -> tuple[np.ndarray, np.ndarray]:
    """Per-window logits, each from the head fitted without its clip's fold, and per clip the
    genres that head was trained on, ``(n_clips, n_labels)`` bool: those of which its training
    part has an exact clip (a genre seen only inside candidate sets is not learnt)."""
    logits = np.zeros((len(corpus.features), corpus.candidates.shape[1]))
    trained = np.zeros(corpus.candidates.shape, bool)
    for test in folds:
        head = fit(corpus, ~test)
        rows = corpus.windows_of(test)
        logits[rows] = head_logits(head, corpus.features[rows])
        train = ~test & is_exact(corpus.candidates)
        trained[test] = corpus.candidates[train].any(axis=0)
    return logits, trained


def head_logits(head: LinearHead, x: np.ndarray) -> np.ndarray:
    return ((x - head.mean) / head.scale) @ head.coef.T + head.intercept


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def clip_scores(logits: np.ndarray, clip_index: np.ndarray, n_clips: int,
                temperature: float = 1.0) -> np.ndarray:
    """A clip's score: the mean of its windows' probabilities (the rule ``classify`` uses)."""
    return clip_means(softmax(logits, temperature), clip_index, n_clips)


def fit_temperature(logits: np.ndarray, candidates: np.ndarray, clip_index: np.ndarray) -> float:
    """The temperature that minimises the clip-level set log-loss of out-of-fold window logits."""
    from scipy.optimize import minimize_scalar

    n_clips = len(candidates)

    def loss(log_t: float) -> float:
        p = clip_scores(logits, clip_index, n_clips, float(np.exp(log_t)))
        return float(-np.log(np.maximum((p * candidates).sum(axis=1), 1e-12)).mean())

    return float(np.exp(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x))


def precision_at_coverage(scores: np.ndarray, candidates: np.ndarray, coverage: float = COVERAGE) -> float:
    """hit@1 over the ``coverage`` share of clips with the highest top score."""
    hits = candidates[np.arange(len(scores)), scores.argmax(axis=1)] > 0
    keep = max(1, int(round(coverage * len(scores))))
    order = np.argsort(-scores.max(axis=1), kind="stable")
    return float(hits[order[:keep]].mean())


def set_metrics(scores: np.ndarray, candidates: np.ndarray, names: Sequence[str],
                trained: np.ndarray | None = None) -> dict[str, Any]:
    """hit@1, top-2, macro ROC-AUC, per-genre recall and precision at 70 % coverage, on candidate sets.

    ``trained`` (per clip, the genres its model was trained on; default all) keeps a genre out of
    recall and ROC-AUC on the clips whose model never saw it, and a clip none of whose candidates
    its model saw out of every figure: leaving a source out must not score the model on genres
    only that source has, which the shipped model, trained on every source, knows.
    """
    from sklearn.metrics import roc_auc_score

    if trained is not None:
        scorable = (candidates * trained).any(axis=1)
        scores, candidates, trained = scores[scorable], candidates[scorable], trained[scorable]
    else:
        trained = np.ones(candidates.shape, bool)
    top = scores.argmax(axis=1)
    hits = candidates[np.arange(len(scores)), top] > 0
    top2 = np.argsort(-scores, axis=1)[:, :2]
    exact = is_exact(candidates)
    recall, aucs = {}, []
    for j, name in enumerate(names):
        pos = exact & (candidates[:, j] > 0) & trained[:, j]
        neg = (candidates[:, j] == 0) & trained[:, j]
        recall[name] = float(hits[pos].mean()) if pos.any() else None
        if pos.any() and neg.any():
            rows = pos | neg
            aucs.append(roc_auc_score(pos[rows], scores[rows, j]))
    measured = [r for r in recall.values() if r is not None]
    return {
        "clips": int(len(scores)),
        "hit_at_1": float(hits.mean()),
        "top_2": float((candidates[np.arange(len(scores))[:, None], top2] > 0).any(axis=1).mean()),
        "macro_roc_auc": float(np.mean(aucs)) if aucs else None,
        "mean_per_genre_recall": float(np.mean(measured)) if measured else None,
        f"precision_at_{int(COVERAGE * 100)}": precision_at_coverage(scores, candidates),
        "per_genre_recall": recall,
    }
