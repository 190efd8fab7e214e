"""A mood-quadrant head on the genre head's window features (issue 16 point 2).

The four Russell quadrants of the 4Q music-emotion data set (``mer4q/manifest.csv``, column
``mood_quadrant``): Q1 happy (positive valence, high arousal), Q2 tense (negative, high), Q3 sad
(negative, low), Q4 calm (positive, low).

The head is what the genre head is: a class-balanced softmax regression
(:func:`genretag.training.set_head.fit_set_head` with one candidate per clip) on each window's
frozen-backbone features, so at serving time it is one more ``Dense`` on the embedding the genre
head already computes, and its per-window scores can be smoothed like genre.  Clip scores follow
the clip rule of ``classify`` (:func:`genretag.training.source_cv.clip_scores`).

Figures (:func:`mood_cv`) are out-of-fold clip predictions over artist-grouped folds stratified by
quadrant (:func:`genretag.training.source_cv.artist_folds`); ``C`` is either given or chosen inside
each outer fold by an inner artist-grouped CV on that fold's training part (nested CV), so the
figures never saw the clips they score.  Clip-level variants (window features pooled per clip,
mean or mean and standard deviation, one row per clip) and any clip-level feature table (the
librosa baseline of :mod:`genretag.training.mood_baseline`) go through the same folds and the same
fit.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genretag.models.clip_scoring import counted_windows, mean_by_clip, window_levels
from genretag.models.musicnn_input import WINDOW_SAMPLES
from genretag.pipeline.audio import decode
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.backbone_train import (
    BACKBONE_RATE,
    Clip,
    HeadConfig,
    LinearHead,
    backbone_window_levels,
    clip_cache_path,
    embed_clips,
)
from genretag.training.corpus import CorpusClip, read_collection
from genretag.training.layouts import LayoutError
from genretag.training.set_head import fit_set_head
from genretag.training.source_cv import artist_folds, clip_scores, head_logits

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
MOODS = ("happy", "tense", "sad", "calm")
#: the inverse L2 strengths the inner CV chooses from (the genre head ships with 0.0003)
C_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01)
#: the same for clip-level heads (one row per clip instead of ~19 windows: the same C regularises ~19 times
#: as strongly, and the librosa baseline's 96 features want weaker regularisation)
CLIP_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
POOLINGS = ("window", "mean", "mean_std")


def read_mood_manifest(manifest: Path) -> tuple[list[CorpusClip], np.ndarray]:
    """The clips of a manifest with a ``mood_quadrant`` column and each one's quadrant index (0..3,
    :data:`QUADRANTS` order); clips with an empty quadrant are left out."""
    clips = {c.clip_id: c for c in read_collection(manifest)}
    collection = manifest.parent.name
    kept, quadrants = [], []
    with manifest.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "mood_quadrant" not in (reader.fieldnames or []):
            raise LayoutError(f"{manifest}: needs a 'mood_quadrant' column")
        for line, row in enumerate(reader, start=2):
            q = row["mood_quadrant"].strip()
            if not q:
                continue
            if q not in QUADRANTS:
                raise LayoutError(f"{manifest}:{line}: mood_quadrant {q!r} is none of {', '.join(QUADRANTS)}")
            kept.append(clips[f"{collection}/{row['path'].strip()}"])
            quadrants.append(QUADRANTS.index(q))
    return kept, np.asarray(quadrants, np.int64)


@dataclass
class MoodCorpus:
    """Window features of the mood clips, every backbone layer, and the clips' facts."""

    features: dict[str, np.ndarray]  # "<variant>/<layer>" -> (n_windows, dim)
    clip_index: np.ndarray  # (n_windows,) row into the per-clip arrays, a clip's windows in time order
    levels_db: np.ndarray  # (n_windows,) RMS dBFS of each window (the clip rule's silence filter)
    quadrants: np.ndarray  # (n_clips,) 0..3
    groups: np.ndarray  # (n_clips,) artist groups
    clips: list[CorpusClip]

    def select(self, variants: Sequence[str], layers: Sequence[str]) -> np.ndarray:
        """``(n_windows, dim)``: the named layers of the named backbones side by side."""
        return np.concatenate([self.features[f"{v}/{layer}"] for v in variants for layer in layers], axis=1)


def embed_mood_corpus(
    clips: Sequence[CorpusClip],
    quadrants: np.ndarray,
    config: HeadConfig,
    cache_dir: Path | None = None,
    decoded: Callable[[CorpusClip, np.ndarray], None] | None = None,
) -> MoodCorpus:
    """Every window's backbone features (all layers; cached per clip as the genre recipe caches them: the
    same ``config.variants``, ``hop_seconds`` and ``normalize_db`` hit the same cache) and level.

    ``decoded`` is called with each clip and its 16 kHz PCM (to compute other features on the way).
    """
    pcm_clips = []
    for c in clips:
        pcm = decode(c.path, BACKBONE_RATE)
        if decoded is not None:
            decoded(c, pcm)
        pcm_clips.append(Clip(c.clip_id, c.group, np.zeros(0, np.float32), pcm))
    emb = embed_clips(pcm_clips, config.variants, config.hop_seconds, config.normalize_db, cache_dir)
    index = {c.clip_id: i for i, c in enumerate(clips)}
    return MoodCorpus(
        emb.features,
        np.array([index[i] for i in emb.clip_ids]),
        backbone_window_levels(pcm_clips, config.hop_seconds),
        np.asarray(quadrants),
        np.array([c.group for c in clips]),
        list(clips),
    )


def cached_mood_corpus(
    clips: Sequence[CorpusClip], quadrants: np.ndarray, config: HeadConfig, cache_dir: Path
) -> MoodCorpus | None:
    """:func:`embed_mood_corpus` from the embedding cache alone, without loading the backbones (no Keras
    import): None when a clip is not cached."""
    spec = WindowSpec(BACKBONE_RATE, WINDOW_SAMPLES / BACKBONE_RATE, config.hop_seconds)
    per_clip: list[dict[str, np.ndarray]] = []
    levels = []
    for c in clips:
        pcm = decode(c.path, BACKBONE_RATE)
        path = clip_cache_path(
            cache_dir,
            Clip(c.clip_id, c.group, np.zeros(0, np.float32), pcm),
            config.variants,
            config.hop_seconds,
            config.normalize_db,
        )
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as stored:
            per_clip.append({k: stored[k] for k in stored.files})
        levels.append(window_levels(frame_windows(pcm, spec)[0]))
    counts = [len(next(iter(f.values()))) for f in per_clip]
    return MoodCorpus(
        {k: np.concatenate([f[k] for f in per_clip]) for k in per_clip[0]},
        np.repeat(np.arange(len(clips)), counts),
        np.concatenate(levels),
        np.asarray(quadrants),
        np.array([c.group for c in clips]),
        list(clips),
    )


def one_hot(quadrants: np.ndarray) -> np.ndarray:
    return np.eye(len(QUADRANTS))[np.asarray(quadrants)]


def fit_mood_head(
    corpus_features: np.ndarray, quadrants: np.ndarray, clip_index: np.ndarray, C: float
) -> LinearHead:
    """A class-balanced softmax regression from window features to the four quadrants.

    Parameters
    ----------
    corpus_features : ``(n_windows, dim)`` window features (or one row per clip for a clip-level head).
    quadrants : ``(n_clips,)`` each clip's quadrant, 0..3 (:data:`QUADRANTS` order).
    clip_index : ``(n_windows,)`` each window's clip, a row of ``quadrants``; every clip weighs one in
        total however many windows it has, and every quadrant weighs the same.
    C : inverse L2 strength on standardised features, as in scikit-learn.
    """
    clip_index = np.asarray(clip_index)
    return fit_set_head(corpus_features, one_hot(quadrants)[clip_index], clip_index, C)


def pool_clips(
    features: np.ndarray,
    clip_index: np.ndarray,
    n_clips: int,
    pooling: str,
    levels_db: np.ndarray | None = None,
) -> np.ndarray:
    """Clip rows from window rows over the windows the clip rule counts: ``"mean"`` ``(n_clips, dim)`` or
    ``"mean_std"`` ``(n_clips, 2 dim)``."""
    counted = counted_windows(clip_index, levels_db)
    mean = mean_by_clip(features, clip_index, n_clips, counted)
    if pooling == "mean":
        return mean
    if pooling == "mean_std":
        square = mean_by_clip(features.astype(np.float64) ** 2, clip_index, n_clips, counted)
        return np.concatenate([mean, np.sqrt(np.maximum(square - mean**2, 0.0))], axis=1)
    raise ValueError(f"pooling {pooling!r}: one of {', '.join(POOLINGS)}")


def _oof_probabilities(
    x: np.ndarray,
    row_clip: np.ndarray,
    quadrants: np.ndarray,
    folds: Sequence[np.ndarray],
    C: float,
    levels_db: np.ndarray | None,
) -> np.ndarray:
    """Out-of-fold clip probabilities ``(n_clips, 4)`` of heads fitted at ``C`` (clip rule over rows)."""
    n_clips = len(quadrants)
    logits = np.zeros((len(x), len(QUADRANTS)))
    for test in folds:
        train_rows, test_rows = ~test[row_clip], test[row_clip]
        head = fit_mood_head(x[train_rows], quadrants, row_clip[train_rows], C)
        logits[test_rows] = head_logits(head, x[test_rows])
    return clip_scores(logits, row_clip, n_clips, levels_db=levels_db)


def macro_f1(truth: np.ndarray, predicted: np.ndarray, n_classes: int = len(QUADRANTS)) -> float:
    f1 = []
    for k in range(n_classes):
        tp = float(((predicted == k) & (truth == k)).sum())
        denominator = float((predicted == k).sum() + (truth == k).sum())
        f1.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(f1))


def mood_metrics(probabilities: np.ndarray, quadrants: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro F1, per-quadrant recall, confusion matrix (rows truth, columns predicted),
    mean log-loss, and the chance levels (uniform and majority) of ``quadrants``."""
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((len(QUADRANTS), len(QUADRANTS)), np.int64)
    np.add.at(confusion, (quadrants, predicted), 1)
    per_class = confusion.sum(axis=1)
    return {
        "clips": int(len(quadrants)),
        "accuracy": float((predicted == quadrants).mean()),
        "macro_f1": macro_f1(quadrants, predicted),
        "balanced_accuracy": float(np.mean(np.diag(confusion)[per_class > 0] / per_class[per_class > 0])),
        "per_quadrant_recall": {
            f"{q} {m}": float(confusion[i, i] / per_class[i]) if per_class[i] else None
            for i, (q, m) in enumerate(zip(QUADRANTS, MOODS, strict=True))
        },
        "log_loss": float(
            -np.log(np.maximum(probabilities[np.arange(len(quadrants)), quadrants], 1e-12)).mean()
        ),
        "confusion": confusion.tolist(),
        "chance": {"uniform": 1.0 / len(QUADRANTS), "majority": float(per_class.max() / per_class.sum())},
    }


def mood_folds(quadrants: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Artist-disjoint folds stratified by quadrant: one boolean test mask per fold, per clip."""
    return artist_folds(one_hot(quadrants), groups, n_folds, seed)


def mood_cv(
    features: np.ndarray,
    quadrants: np.ndarray,
    clip_index: np.ndarray,
    groups: np.ndarray,
    C: float | None = None,
    c_grid: Sequence[float] = C_GRID,
    n_folds: int = 5,
    inner_folds: int = 4,
    seed: int = 0,
    levels_db: np.ndarray | None = None,
    pooling: str = "window",
) -> dict[str, Any]:
    """Artist-grouped cross-validated figures of the mood head (see the module docstring).

    Parameters
    ----------
    features : ``(n_windows, dim)`` window features, or ``(n_clips, dim)`` clip features with
        ``clip_index = arange(n_clips)`` (and ``levels_db`` None).
    quadrants, groups : ``(n_clips,)`` each clip's quadrant (0..3) and artist group.
    clip_index : ``(n_windows,)`` each window's clip, its windows in time order.
    C : a fixed inverse L2 strength; None: chosen per outer fold from ``c_grid`` by the macro F1 of an
        inner ``inner_folds``-fold artist-grouped CV on the fold's training clips (nested CV).
    levels_db : ``(n_windows,)`` window levels for the clip rule's silence filter (None: all audible).
    pooling : ``"window"`` (per-window head, clip rule on its scores), ``"mean"`` or ``"mean_std"``
        (window features pooled per clip over the windows the rule counts, one row per clip).

    Returns the figures of :func:`mood_metrics` plus ``folds``, ``seed``, ``pooling``, ``C`` per outer
    fold, ``inner`` (per outer fold, C -> inner macro F1) and ``clip_probabilities`` (out of fold).
    """
    quadrants, groups, clip_index = np.asarray(quadrants), np.asarray(groups), np.asarray(clip_index)
    n_clips = len(quadrants)
    if pooling == "window":
        x, row_clip, levels = features, clip_index, levels_db
    else:
        x = pool_clips(features, clip_index, n_clips, pooling, levels_db)
        row_clip, levels = np.arange(n_clips), None
    folds = mood_folds(quadrants, groups, n_folds, seed)
    probabilities = np.zeros((n_clips, len(QUADRANTS)))
    chosen, inner_scores = [], []
    for fold, test in enumerate(folds):
        train = ~test
        if C is None:
            sub = train[row_clip]
            renumber = np.cumsum(train) - 1
            sub_clip = renumber[row_clip[sub]]
            sub_q = quadrants[train]
            sub_levels = None if levels is None else levels[sub]
            inner = mood_folds(sub_q, groups[train], inner_folds, seed + 1 + fold)
            scores = {}
            for c in c_grid:
                p = _oof_probabilities(x[sub], sub_clip, sub_q, inner, c, sub_levels)
                scores[c] = macro_f1(sub_q, p.argmax(axis=1))
            fold_c = max(c_grid, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
            inner_scores.append({str(c): s for c, s in scores.items()})
        else:
            fold_c = C
        chosen.append(float(fold_c))
        p = _oof_probabilities(x, row_clip, quadrants, [test], fold_c, levels)
        probabilities[test] = p[test]
    return {
        **mood_metrics(probabilities, quadrants),
        "folds": n_folds,
        "seed": seed,
        "pooling": pooling,
        "C": chosen,
        "inner": inner_scores or None,
        "clip_probabilities": probabilities,
    }
