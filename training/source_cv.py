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

Clip scores follow the clip rule of ``classify`` (:mod:`genretag.models.clip_scoring`): window
probabilities averaged over at most 48 windows spread over the clip, silent ones left out when the
windows' levels are known (:attr:`CorpusWindows.levels_db`; cached embeddings hold no audio).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genretag.models.clip_scoring import counted_windows, mean_by_clip
from genretag.training.backbone_train import LinearHead
from genretag.training.label_sets import is_exact

COVERAGE = 0.7  # share of clips, most confident first, whose precision is reported


@dataclass
class CorpusWindows:
    """Window features of a corpus and, per window, the index of its clip (a clip's windows in time
    order) and its level; per clip its facts."""

    features: np.ndarray  # (n_windows, dim)
    clip_index: np.ndarray  # (n_windows,) row into the per-clip arrays
    candidates: np.ndarray  # (n_clips, n_labels) 0/1
    groups: np.ndarray  # (n_clips,) artist groups
    sources: np.ndarray  # (n_clips,)
    #: (n_windows,) RMS dBFS of each window's audio, for the clip rule's silent-window filter; None:
    #: not measured, every window counts as audible
    levels_db: np.ndarray | None = None

    def windows_of(self, clip_mask: np.ndarray) -> np.ndarray:
        return clip_mask[self.clip_index]


def clip_means(per_window: np.ndarray, clip_index: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean of per-window rows for each clip, ``(n_clips, dim)`` (every window; scores use
    :func:`clip_scores`)."""
    return mean_by_clip(per_window, clip_index, n_clips)


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


def out_of_fold(
    corpus: CorpusWindows, folds: Sequence[np.ndarray], fit: FitFn
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window logits, each from the head fitted without its clip's fold, and per clip the
    genres that head was trained on, ``(n_clips, n_labels)`` bool: those of which its training
    part has an exact clip (a genre seen only inside candidate sets is not learnt)."""
    logits = np.zeros((len(corpus.features), corpus.candidates.shape[1]))
    for test in folds:
        head = fit(corpus, ~test)
        rows = corpus.windows_of(test)
        logits[rows] = head_logits(head, corpus.features[rows])
    return logits, trained_genres(corpus.candidates, folds)


def trained_genres(candidates: np.ndarray, folds: Sequence[np.ndarray]) -> np.ndarray:
    """Per clip, the genres the model of its fold was trained on, ``(n_clips, n_labels)`` bool: those of
    which the fold's training part has an exact clip (see :func:`out_of_fold`)."""
    trained = np.zeros(candidates.shape, bool)
    for test in folds:
        trained[test] = candidates[~test & is_exact(candidates)].any(axis=0)
    return trained


def head_logits(head: LinearHead, x: np.ndarray) -> np.ndarray:
    return ((x - head.mean) / head.scale) @ head.coef.T + head.intercept


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def clip_scores(
    logits: np.ndarray,
    clip_index: np.ndarray,
    n_clips: int,
    temperature: float = 1.0,
    levels_db: np.ndarray | None = None,
) -> np.ndarray:
    """Clip scores from window logits by the clip rule ``classify`` uses
    (:func:`genretag.models.clip_scoring.clip_scores`); ``levels_db`` as :attr:`CorpusWindows.levels_db`."""
    return mean_by_clip(
        softmax(logits, temperature), clip_index, n_clips, counted_windows(clip_index, levels_db)
    )


def fit_temperature(
    logits: np.ndarray, candidates: np.ndarray, clip_index: np.ndarray, levels_db: np.ndarray | None = None
) -> float:
    """The temperature that minimises the clip-level set log-loss of out-of-fold window logits
    (clip scores as :func:`clip_scores`)."""
    from scipy.optimize import minimize_scalar

    n_clips = len(candidates)
    counted = counted_windows(clip_index, levels_db)

    def loss(log_t: float) -> float:
        p = mean_by_clip(softmax(logits, float(np.exp(log_t))), clip_index, n_clips, counted)
        return float(-np.log(np.maximum((p * candidates).sum(axis=1), 1e-12)).mean())

    return float(np.exp(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x))


def precision_at_coverage(scores: np.ndarray, candidates: np.ndarray, coverage: float = COVERAGE) -> float:
    """hit@1 over the ``coverage`` share of clips with the highest top score."""
    hits = candidates[np.arange(len(scores)), scores.argmax(axis=1)] > 0
    keep = max(1, int(round(coverage * len(scores))))
    order = np.argsort(-scores.max(axis=1), kind="stable")
    return float(hits[order[:keep]].mean())


def set_metrics(
    scores: np.ndarray, candidates: np.ndarray, names: Sequence[str], trained: np.ndarray | None = None
) -> dict[str, Any]:
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
