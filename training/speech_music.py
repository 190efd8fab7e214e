"""Speech or music, per window: a linear head on the genre head's backbone features, and a baseline.

Every backbone window (2.976 s, 1.5 s hop, 16 kHz, as the daemon cuts streams) of the set of
:mod:`genretag.training.speech_data` is labelled ``music`` or ``speech`` (talk
over a music bed is ``speech``: genre must hold through it).  Two classifiers
are scored on the same group-disjoint folds:

* **backbone head**: class-balanced logistic regression
  (:func:`genretag.training.backbone_train.fit_head`) on the layers the genre
  head already reads (:class:`~genretag.training.backbone_train.HeadConfig`:
  MSD and MTT musicnn, penultimate + taggram, per-window loudness
  normalisation).  At serving time it is one more ``Dense(2)`` on features the
  genre model computes anyway.
* **baseline**: hand-made features (:mod:`genretag.pipeline.speech_features`,
  numpy/scipy only) and a standardised logistic regression (servable as a dot
  product) or gradient-boosted trees.

Windows the daemon would call silence (below ``silence_db``) are left out of
the figures, as the daemon never asks the question for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genretag.models.musicnn_input import WINDOW_SAMPLES
from genretag.pipeline.speech_features import FEATURE_NAMES, FEATURES_VERSION, window_features
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.backbone_train import (
    BACKBONE_RATE,
    Clip,
    HeadConfig,
    LinearHead,
    backbone_window_levels,
    embed_clips,
    fit_head,
)
from genretag.training.speech_data import CLASSES, MUSIC, SPEECH, SpeechItem

#: the backbones' window: 47,616 samples (2.976 s) at 16 kHz, cut every ``HeadConfig.hop_seconds``
WINDOW_SECONDS = WINDOW_SAMPLES / BACKBONE_RATE


@dataclass
class SpeechWindows:
    """Every window of a set of items: both feature kinds, label, item index, level."""

    backbone: np.ndarray  # (n, dim) the genre head's layers
    handmade: np.ndarray  # (n, len(FEATURE_NAMES))
    labels: np.ndarray  # (n,) MUSIC / SPEECH
    item: np.ndarray  # (n,) index into the items
    levels_db: np.ndarray  # (n,) window RMS dBFS

    def subset(self, mask: np.ndarray) -> SpeechWindows:
        return SpeechWindows(
            self.backbone[mask], self.handmade[mask], self.labels[mask], self.item[mask], self.levels_db[mask]
        )


def uses_music_cache(item: SpeechItem) -> bool:
    """A music collection clip as it is (same id and audio as the genre head's embedding cache)."""
    return item.condition == "music" and item.augment == "none" and not item.clip_id.startswith("speech/")


def embed_items(
    items: Sequence[SpeechItem],
    config: HeadConfig | None = None,
    cache_dir: Path | None = None,
    music_cache_dir: Path | None = None,
    handmade: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SpeechWindows:
    """Backbone features (cached per clip: music collection clips in ``music_cache_dir``, the rest
    in ``cache_dir``) and hand-made features of every window of ``items``, in item order."""
    handmade = handmade or window_features
    config = config or HeadConfig()
    spec = WindowSpec(BACKBONE_RATE, WINDOW_SECONDS, config.hop_seconds)
    clips = [Clip(it.clip_id, it.group, np.array([it.label]), it.pcm) for it in items]
    reuse = np.array([uses_music_cache(it) for it in items])
    parts: dict[bool, Any] = {}
    for flag, where in ((True, music_cache_dir or cache_dir), (False, cache_dir)):
        chosen = [c for c, r in zip(clips, reuse, strict=True) if r == flag]
        if chosen:
            parts[flag] = embed_clips(chosen, config.variants, config.hop_seconds, config.normalize_db, where)
    selected = {flag: emb.select(config) for flag, emb in parts.items()}
    per_item: list[np.ndarray] = []
    counts = {flag: 0 for flag in parts}
    for c, r in zip(clips, reuse, strict=True):
        ids = parts[bool(r)].clip_ids
        start = counts[bool(r)]
        stored = start
        while stored < len(ids) and ids[stored] == c.clip_id:
            stored += 1
        n = len(frame_windows(c.pcm, spec)[0])
        if stored - start != n:
            raise RuntimeError(f"{c.clip_id}: {stored - start} embedded windows, {n} expected")
        per_item.append(selected[bool(r)][start : start + n])
        counts[bool(r)] = stored
    hand = [_cached_handmade(c, spec, handmade, cache_dir) for c in clips]
    n_per = [len(h) for h in hand]
    return SpeechWindows(
        np.concatenate(per_item),
        np.concatenate(hand),
        np.repeat([it.label for it in items], n_per),
        np.repeat(np.arange(len(items)), n_per),
        backbone_window_levels(clips, config.hop_seconds),
    )


def _cached_handmade(
    clip: Clip, spec: WindowSpec, handmade: Callable[[np.ndarray], np.ndarray], cache_dir: Path | None
) -> np.ndarray:
    """Hand-made features of a clip's windows, cached in ``cache_dir/handmade`` (by feature
    names, window layout, clip id and audio) when ``handmade`` is :func:`window_features`."""
    if cache_dir is None or handmade is not window_features:
        return handmade(frame_windows(clip.pcm, spec)[0])
    layout = (FEATURES_VERSION, FEATURE_NAMES, spec.window_samples, spec.hop_samples, clip.clip_id)
    key = hashlib.sha256(repr(layout).encode())
    key.update(np.ascontiguousarray(clip.pcm, np.float32).tobytes())
    path = cache_dir / "handmade" / f"{key.hexdigest()[:24]}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    feats = handmade(frame_windows(clip.pcm, spec)[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, feats)
    return feats


# --- classifiers ----------------------------------------------------------------------------------

METHODS = ("backbone", "baseline-lr", "baseline-gbt")


def fit_backbone_head(x: np.ndarray, labels: np.ndarray, items: np.ndarray, C: float) -> LinearHead:
    """The speech head: :func:`fit_head`'s class-balanced logistic regression (each clip weighs one,
    the two classes weigh the same), a two-way softmax over (music, speech) that folds into one
    ``Dense(2)`` on the genre model's features."""
    onehot = np.eye(len(CLASSES), dtype=np.float32)[labels]
    return fit_head(x, onehot, items, C)


def _balanced_weights(labels: np.ndarray, items: np.ndarray) -> np.ndarray:
    _, inverse, per_item = np.unique(items, return_inverse=True, return_counts=True)
    w = 1.0 / per_item[inverse]
    mass = np.bincount(labels, weights=w, minlength=len(CLASSES))
    w = w / mass[labels]
    return w / w.mean()


def fit_method(
    method: str, windows: SpeechWindows, C: float = 0.01, seed: int = 0
) -> Callable[[SpeechWindows], np.ndarray]:
    """Fit one of :data:`METHODS` on ``windows``; returns a function giving P(speech) of windows."""
    if method == "backbone":
        head = fit_backbone_head(windows.backbone, windows.labels, windows.item, C)
        return lambda w: head.predict(w.backbone)[:, SPEECH]
    weights = _balanced_weights(windows.labels, windows.item)
    if method == "baseline-lr":
        from sklearn.linear_model import LogisticRegression

        mean, scale = windows.handmade.mean(axis=0), windows.handmade.std(axis=0) + 1e-6
        lr = LogisticRegression(C=1.0, max_iter=3000, random_state=seed)
        lr.fit((windows.handmade - mean) / scale, windows.labels, sample_weight=weights)
        return lambda w: lr.predict_proba((w.handmade - mean) / scale)[:, 1]
    if method == "baseline-gbt":
        from sklearn.ensemble import HistGradientBoostingClassifier

        gbt = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, random_state=seed)
        gbt.fit(windows.handmade, windows.labels, sample_weight=weights)
        return lambda w: gbt.predict_proba(w.handmade)[:, 1]
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def out_of_fold(
    items: Sequence[SpeechItem],
    windows: SpeechWindows,
    methods: Sequence[str] = METHODS,
    C: float = 0.01,
    silence_db: float = -50.0,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, np.ndarray]:
    """P(speech) of every window from the model of the folds it is not in (NaN for silent windows,
    which neither train nor count), per method."""
    fold = np.array([it.fold for it in items])[windows.item]
    audible = windows.levels_db > silence_db
    out = {m: np.full(len(windows.labels), np.nan) for m in methods}
    for f in np.unique(fold):
        train, test = audible & (fold != f), audible & (fold == f)
        for m in methods:
            predict = fit_method(m, windows.subset(train), C)
            out[m][test] = predict(windows.subset(test))
            log(f"fold {f}: {m} trained on {train.sum()} windows, scored {test.sum()}")
    return out


# --- figures --------------------------------------------------------------------------------------

#: (row name, test on an item) of the figures table
CONDITIONS: tuple[tuple[str, Callable[[SpeechItem], bool]], ...] = (
    ("speech (talk, clean)", lambda it: it.condition == "speech" and it.augment == "none"),
    ("speech (talk, augmented)", lambda it: it.condition == "speech" and it.augment != "none"),
    (
        "music (speech set, clean)",
        lambda it: it.condition == "music" and it.clip_id.startswith("speech/") and it.augment == "none",
    ),
    ("music (collections, clean)", lambda it: uses_music_cache(it)),
    ("music (augmented)", lambda it: it.condition == "music" and it.augment != "none"),
    *(
        (f"talk over music {db:+.0f} dB", (lambda it, d=db: it.condition == f"mix{d:+.0f}"))
        for db in (0.0, -6.0, -12.0, -18.0)
    ),
)


def figures(
    items: Sequence[SpeechItem], windows: SpeechWindows, scores: dict[str, np.ndarray], threshold: float = 0.5
) -> dict[str, Any]:
    """Window accuracy per condition and method, the pooled pure speech+music figures, and each
    method's confusion matrix (rows: true music, speech; columns: predicted)."""
    scored = ~np.isnan(next(iter(scores.values())))
    rows: dict[str, Any] = {}
    for name, test in CONDITIONS:
        mask = scored & np.array([test(it) for it in items])[windows.item]
        rows[name] = {"windows": int(mask.sum()), "clips": int(len(np.unique(windows.item[mask])))}
        for m, s in scores.items():
            right = (s[mask] >= threshold) == (windows.labels[mask] == SPEECH)
            rows[name][m] = float(right.mean()) if mask.any() else float("nan")
    pure = scored & np.array([it.condition in ("speech", "music") for it in items])[windows.item]
    summary: dict[str, Any] = {}
    for m, s in scores.items():
        pred = (s >= threshold).astype(int)
        conf = np.zeros((2, 2), int)
        np.add.at(conf, (windows.labels[scored], pred[scored]), 1)
        per_class = [float(np.mean(pred[pure & (windows.labels == c)] == c)) for c in (MUSIC, SPEECH)]
        summary[m] = {
            "pure_accuracy": float(np.mean(pred[pure] == windows.labels[pure])),
            "pure_balanced_accuracy": float(np.mean(per_class)),
            "pure_music_accuracy": per_class[MUSIC],
            "pure_speech_accuracy": per_class[SPEECH],
            "all_accuracy": float(np.mean(pred[scored] == windows.labels[scored])),
            "confusion": conf.tolist(),
        }
    by_genre: dict[str, Any] = {}
    for genre in sorted({g for it in items for g in it.genres}):
        mask = scored & np.array([uses_music_cache(it) and genre in it.genres for it in items])[windows.item]
        by_genre[genre] = {
            "windows": int(mask.sum()),
            **{m: float(np.mean(s[mask] < threshold)) for m, s in scores.items()},
        }
    return {
        "conditions": rows,
        "summary": summary,
        "music_by_genre": by_genre,
        "silent_windows_left_out": int((~scored).sum()),
    }
