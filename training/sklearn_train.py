"""Training, selecting and exporting the scikit-learn baselines.

Flow: clips -> windows -> features (once per split, optionally cached on
disk, since they cost far more than fitting) -> for each grid point, fit on
the train windows and score the dev split *per clip* -> keep the best fit ->
artifact.  Hyper-parameters are chosen on clips, not windows, because a clip
is what the tagger is judged on; a clip's score follows the clip rule of
``classify`` (:mod:`genretag.models.clip_scoring`), each window's level kept
next to its features for it.

Splits come from the caller (artist-disjoint, like the neural models'); this
module only needs each window's features, its clip's target and its clip id.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, recall_score

from genretag.models.clip_scoring import window_levels
from genretag.models.features import FeatureConfig, feature_names, window_features
from genretag.models.manifest_features import new_manifest
from genretag.models.predictor import SKLEARN_FILE, Predictor, save_artifact
from genretag.models.sklearn_models import fit_baseline, label_scores, param_grid
from genretag.pipeline.windows import WindowSpec
from genretag.training.metrics import ScoredWindows

SELECTION_METRIC = "clip_macro_f1"


@dataclass(frozen=True)
class WindowTable:
    """Feature rows of many windows, each with its clip's id and target class index.

    ``features`` is float32 ``(n, d)``; ``targets`` int ``(n,)``; ``clips`` str ``(n,)``;
    ``levels`` float ``(n,)``, each window's RMS dBFS for the clip rule (None: unknown).
    """

    features: np.ndarray
    targets: np.ndarray
    clips: np.ndarray
    levels: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.features)
        if (
            self.features.ndim != 2
            or self.targets.shape != (n,)
            or self.clips.shape != (n,)
            or (self.levels is not None and self.levels.shape != (n,))
        ):
            raise ValueError(
                f"inconsistent table: features {self.features.shape}, targets "
                f"{self.targets.shape}, clips {self.clips.shape}, "
                f"levels {None if self.levels is None else self.levels.shape}"
            )


def first_label_index(clip_labels: Sequence[str], labels: Sequence[str]) -> int:
    """Target of a clip for the single-label baselines: the index of its first label."""
    if not clip_labels:
        raise ValueError("clip has no labels")
    if clip_labels[0] not in labels:
        raise ValueError(f"label {clip_labels[0]!r} is not one of {list(labels)}")
    return list(labels).index(clip_labels[0])


Clip = tuple[str, np.ndarray, int]
"""``(clip_id, windows (k, samples) float32, target class index)``."""


def feature_table(clips: Iterable[Clip], config: FeatureConfig) -> WindowTable:
    """Features of every window of every clip.

    One clip at a time, so only features, never all windows, are held in memory.
    """
    features, targets, ids, levels = [], [], [], []
    for clip_id, windows, target in clips:
        features.append(window_features(windows, config))
        targets.append(np.full(len(windows), target, dtype=np.int64))
        ids.append(np.full(len(windows), clip_id))
        levels.append(window_levels(windows))
    if not features:
        raise ValueError("no clips to compute features for")
    return WindowTable(
        np.concatenate(features),
        np.concatenate(targets),
        np.concatenate(ids).astype(str),
        np.concatenate(levels),
    )


def cached_feature_table(
    cache: Path | None, key: str, config: FeatureConfig, clips: Iterable[Clip]
) -> WindowTable:
    """:func:`feature_table`, reused from ``cache`` (an ``.npz``) when it was made with the same
    ``config`` and ``key``.

    ``key`` names the input (e.g. a hash of the manifest rows and window geometry);
    ``clips`` should be lazy (a generator), so a cache hit decodes nothing.
    """
    meta = json.dumps({"key": key, "config": asdict(config)}, sort_keys=True)
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as stored:
                if str(stored["meta"]) == meta:
                    return WindowTable(
                        stored["features"], stored["targets"], stored["clips"], stored["levels"]
                    )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # unreadable or stale cache (one from before levels were kept): recompute it
    table = feature_table(clips, config)
    if cache is not None and table.levels is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(
                f,
                meta=np.array(meta),
                features=table.features,
                targets=table.targets,
                clips=table.clips,
                levels=table.levels,
            )
        os.replace(tmp, cache)
    return table


def clip_metrics(window_scores: np.ndarray, table: WindowTable) -> dict[str, float]:
    """Clip-level accuracy, balanced accuracy and macro-F1 of window scores ``(n, L)``.

    A clip's scores follow the clip rule (:mod:`genretag.models.clip_scoring`,
    with ``table.levels``); its prediction is the argmax.  Balanced accuracy
    (mean recall) and macro-F1 average over the labels that occur in
    ``table``'s targets: neither is defined for a label with no clip to find,
    though predicting such a label still costs recall.
    """
    one_hot = np.eye(window_scores.shape[1], dtype=np.float32)[table.targets]
    clips = ScoredWindows(window_scores, one_hot, table.clips, table.levels).by_clip()
    predicted = clips.scores.argmax(axis=1)
    truth = clips.labels.argmax(axis=1)
    present = np.unique(truth)
    return {
        "clips": len(clips.clip_ids),
        "clip_accuracy": float(np.mean(predicted == truth)),
        "clip_balanced_accuracy": float(
            recall_score(truth, predicted, labels=present, average="macro", zero_division=0)
        ),
        "clip_macro_f1": float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0)),
        "window_accuracy": float(np.mean(window_scores.argmax(axis=1) == table.targets)),
    }


def train_sklearn(
    name: str, train: WindowTable, dev: WindowTable, n_labels: int
) -> tuple[Any, dict[str, Any]]:
    """Fit baseline ``name`` on ``train`` for each point of its grid; keep the best on ``dev``.

    Returns
    -------
    estimator : the fitted pipeline with the best dev :data:`SELECTION_METRIC`
        (first in grid order on ties), fitted on ``train`` only.
    dev_metrics : JSON-serialisable; the winner's :func:`clip_metrics`, its
        ``params``, the ``selected_by`` metric and every grid point's result.
    """
    best: tuple[Any, dict[str, Any]] | None = None
    grid_results = []
    for params in param_grid(name, len(train.features)):
        estimator = fit_baseline(name, train.features, train.targets, params)
        result = {"params": params, **clip_metrics(label_scores(estimator, dev.features, n_labels), dev)}
        grid_results.append(result)
        if best is None or result[SELECTION_METRIC] > best[1][SELECTION_METRIC]:
            best = (estimator, result)
    assert best is not None  # every grid has at least one point
    estimator, result = best
    return estimator, {**result, "selected_by": SELECTION_METRIC, "grid": grid_results}


def build_sklearn_artifact(
    estimator: Any,
    name: str,
    labels: Sequence[str],
    spec: WindowSpec,
    config: FeatureConfig,
    out_dir: str | Path,
    *,
    dev_metrics: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
) -> Predictor:
    """Save a trained baseline as a validated artifact in ``out_dir`` and return its predictor.

    :func:`save_artifact` reloads the files and checks them on known inputs
    before ``out_dir`` is replaced.
    """
    if config.sample_rate != spec.sample_rate:
        raise ValueError(
            f"feature sample_rate {config.sample_rate} differs from the window spec's {spec.sample_rate}"
        )
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features != len(feature_names(config)):
        raise ValueError(f"estimator takes {n_features} features, config yields {len(feature_names(config))}")
    manifest = new_manifest(
        config,
        architecture=name,
        labels=labels,
        sample_rate=spec.sample_rate,
        window_seconds=spec.window_seconds,
        hop_seconds=spec.hop_seconds,
        model_file=SKLEARN_FILE,
        training_data=training_data or {},
        dev_metrics=dev_metrics or {},
    )
    return save_artifact(estimator, manifest, out_dir)
