"""Transfer learning on the pretrained musicnn backbones: embeddings, a linear head, one Keras model.

With a few hundred clips, training a tagger from scratch over-fits to the
handful of artists per genre.  musicnn, trained on the Million Song Dataset
and MagnaTagATune, already separates genres; a class-balanced multinomial
logistic regression on its window embeddings carries that to our labels.

The head is fitted with scikit-learn on cached embeddings (seconds, so
cross-validation is cheap) and then folded, scaler included, into a Keras
``Dense`` softmax on top of the frozen backbones.  The shipped artifact is one
Keras model from raw 16 kHz PCM to genre probabilities: the daemon needs no
feature code and no scikit-learn at serving time.  The architecture is
:mod:`genretag.models.tagger`; this module fits its head.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from genretag.models.artifact import ArtifactManifest
from genretag.models.clip_scoring import window_levels
from genretag.models.manifest_features import TaggerFeatures, new_manifest
from genretag.models.musicnn_input import BACKBONE_RATE, WINDOW_SAMPLES
from genretag.pipeline.audio import resample
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.reader import Clip, load_clips_numpy, read_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadConfig:
    """Which backbone outputs feed the head, and how strongly it is regularised."""

    variants: tuple[str, ...] = ("MSD_musicnn", "MTT_musicnn")
    layers: tuple[str, ...] = ("penultimate", "taggram")
    C: float = 0.001
    hop_seconds: float = 1.5
    normalize_db: float | None = -14.0  # per-window RMS target (None: raw levels)


@dataclass
class WindowEmbeddings:
    """Backbone features of every window of a set of clips."""

    features: dict[str, np.ndarray]  # "<variant>/<layer>" -> (n_windows, dim)
    labels: np.ndarray  # (n_windows, n_labels) multi-hot
    clip_ids: np.ndarray  # (n_windows,)
    groups: np.ndarray  # (n_windows,)

    def select(self, config: HeadConfig) -> np.ndarray:
        return np.concatenate(
            [self.features[f"{v}/{layer}"] for v in config.variants for layer in config.layers], axis=1
        )

    def subset(self, mask: np.ndarray) -> WindowEmbeddings:
        return WindowEmbeddings(
            {k: v[mask] for k, v in self.features.items()},
            self.labels[mask],
            self.clip_ids[mask],
            self.groups[mask],
        )


def backbone_outputs(variants: Sequence[str], normalize_db: float | None) -> object:
    """One Keras model: PCM -> {"<variant>/<layer>": features} for all variants at once
    (:func:`genretag.models.tagger.build_backbone_outputs`)."""
    from genretag.models.tagger import build_backbone_outputs

    return build_backbone_outputs(variants, normalize_db)


def clip_cache_path(
    cache_dir: Path, clip: Clip, variants: Sequence[str], hop_seconds: float, normalize_db: float | None
) -> Path:
    """Where :func:`embed_clips` caches ``clip``'s window features in ``cache_dir``: a name made from its id,
    its audio, the variants, the hop and the loudness target (read it to reuse a cache without Keras)."""
    key = hashlib.sha256(repr((sorted(variants), hop_seconds, normalize_db, clip.clip_id)).encode())
    key.update(clip.pcm.tobytes())
    return cache_dir / f"{key.hexdigest()[:24]}.npz"


def embed_clips(
    clips: Sequence[Clip],
    variants: Sequence[str],
    hop_seconds: float,
    normalize_db: float | None,
    cache_dir: Path | None = None,
    batch_size: int = 64,
) -> WindowEmbeddings:
    """Embed every window (3 s, ``hop_seconds`` apart) of every clip with every backbone.

    Each clip's features are cached in ``cache_dir`` under a key of its id, its
    audio, the variants, the hop and the loudness target, so any later subset
    of clips (a split, all splits, a cross-validation) reuses them.
    """
    spec = WindowSpec(BACKBONE_RATE, WINDOW_SAMPLES / BACKBONE_RATE, hop_seconds)
    model = None
    per_clip: list[dict[str, np.ndarray]] = []
    labels, ids, groups = [], [], []
    for clip in tqdm(clips, desc="embedding", unit="clip"):
        path = clip_cache_path(cache_dir, clip, variants, hop_seconds, normalize_db) if cache_dir else None
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as stored:
                feats = {k: stored[k] for k in stored.files}
        else:
            model = model or backbone_outputs(variants, normalize_db)
            windows, _ = frame_windows(clip.pcm, spec)
            outs = [
                model.predict_on_batch(windows[i : i + batch_size])  # type: ignore[attr-defined]
                for i in range(0, len(windows), batch_size)
            ]
            feats = {k: np.concatenate([np.asarray(o[k], np.float32) for o in outs]) for k in outs[0]}
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(path, **feats)
        n = len(next(iter(feats.values())))
        per_clip.append(feats)
        labels.append(np.repeat(clip.labels[None], n, axis=0))
        ids += [clip.clip_id] * n
        groups += [clip.group] * n
    features = {k: np.concatenate([f[k] for f in per_clip]) for k in per_clip[0]}
    return WindowEmbeddings(features, np.concatenate(labels), np.asarray(ids), np.asarray(groups))


def backbone_window_levels(clips: Sequence[Clip], hop_seconds: float) -> np.ndarray:
    """RMS dBFS of every window :func:`~genretag.training.backbone_train.embed_clips` embeds for
    ``clips`` at ``hop_seconds``, in its order: the levels the clip rule needs."""
    spec = WindowSpec(BACKBONE_RATE, WINDOW_SAMPLES / BACKBONE_RATE, hop_seconds)
    return np.concatenate([window_levels(frame_windows(clip.pcm, spec)[0]) for clip in clips])


@dataclass
class LinearHead:
    """A standardise-then-softmax head: ``softmax(((x - mean) / scale) @ coef.T + intercept)``."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (n_labels, dim); rows of labels absent from training are zero
    intercept: np.ndarray  # (n_labels,); -inf-like for absent labels

    def predict(self, x: np.ndarray) -> np.ndarray:
        logits = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """Kernel and bias of one Dense layer equal to scaler + linear map."""
        kernel = (self.coef / self.scale).T
        bias = self.intercept - (self.mean / self.scale) @ self.coef.T
        return kernel.astype(np.float32), bias.astype(np.float32)


ABSENT_LOGIT = -30.0


def fit_head(x: np.ndarray, labels: np.ndarray, clip_ids: np.ndarray, C: float, seed: int = 0) -> LinearHead:
    """Class-balanced multinomial logistic regression on window features.

    Each clip weighs one in total however many windows it has; a clip with k
    labels contributes a copy per label at weight 1/k; classes are then
    balanced so a genre of 7 clips counts as much as one of 90.
    """
    from sklearn.linear_model import LogisticRegression

    _, inverse, per_clip = np.unique(clip_ids, return_inverse=True, return_counts=True)
    base_w = 1.0 / per_clip[inverse]
    rows, targets, weights = [], [], []
    for j in range(labels.shape[1]):
        has = labels[:, j] > 0
        rows.append(np.flatnonzero(has))
        targets.append(np.full(has.sum(), j))
        weights.append(base_w[has] / labels[has].sum(axis=1))
    idx, y, w = np.concatenate(rows), np.concatenate(targets), np.concatenate(weights)
    class_mass = np.bincount(y, weights=w, minlength=labels.shape[1])
    present = class_mass > 0
    w = w * (class_mass[present].mean() / class_mass[y])
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    clf.fit((x[idx] - mean) / scale, y, sample_weight=w / w.mean())
    coef = np.zeros((labels.shape[1], x.shape[1]), np.float64)
    intercept = np.full(labels.shape[1], ABSENT_LOGIT)
    if len(clf.classes_) == 2:  # binary LR keeps one row; expand it to a two-way softmax
        coef[clf.classes_[1]], intercept[clf.classes_[1]] = clf.coef_[0] / 2, clf.intercept_[0] / 2
        coef[clf.classes_[0]], intercept[clf.classes_[0]] = -clf.coef_[0] / 2, -clf.intercept_[0] / 2
    else:
        coef[clf.classes_] = clf.coef_
        intercept[clf.classes_] = clf.intercept_
    return LinearHead(mean, scale, coef, intercept)


def build_tagger(config: HeadConfig, head: LinearHead, n_labels: int) -> object:
    """The shipped model (:func:`genretag.models.tagger.build_tagger`): PCM -> frozen backbones ->
    selected features -> ``head`` folded into one Dense softmax."""
    from genretag.models.tagger import build_tagger as build_musicnn_tagger

    kernel, bias = head.folded()
    if kernel.shape[1] != n_labels:
        raise ValueError(f"the head scores {kernel.shape[1]} labels, not {n_labels}")
    return build_musicnn_tagger(config.variants, config.layers, config.normalize_db, kernel, bias)


def dataset_clips(dataset_dir: Path, splits: Sequence[str]) -> list[Clip]:
    """Clips of the given splits of a built dataset, resampled to the backbone rate."""
    rate = read_dataset(dataset_dir).sample_rate
    return [
        Clip(c.clip_id, c.group, c.labels, resample(c.pcm, rate, BACKBONE_RATE))
        for split in splits
        for c in load_clips_numpy(dataset_dir, split)
    ]


def tagger_manifest(config: HeadConfig, labels: Sequence[str], head: str, **fields: Any) -> ArtifactManifest:
    """The manifest of a model made by :func:`build_tagger`; ``fields`` adds manifest fields
    (``dev_metrics``, ``training_data``, ``calibration``)."""
    features = TaggerFeatures(
        backbones=list(config.variants),
        layers=list(config.layers),
        head=head,
        C=config.C,
        normalize_db=config.normalize_db,
    )
    return new_manifest(
        features,
        labels=labels,
        sample_rate=BACKBONE_RATE,
        window_seconds=WINDOW_SAMPLES / BACKBONE_RATE,
        hop_seconds=config.hop_seconds,
        **fields,
    )
