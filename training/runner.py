"""One entry point for training any of the eight model types on a built dataset.

Every trainer returns an in-memory model plus its manifest; this module
scores the dev split with that model (the same way ``evaluate`` does, so
``compare`` rows are comparable), records the figures in the manifest, and
saves a checked artifact.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from genretag.models.artifact import ArtifactManifest
from genretag.models.manifest_features import new_manifest
from genretag.models.model_types import DISTILLED_MODELS, KERAS_MODELS, MODEL_CHOICES, SKLEARN_MODELS
from genretag.models.predictor import KerasPredictor, Predictor, SklearnPredictor, save_artifact
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.backbone_train import (
    HeadConfig,
    build_tagger,
    dataset_clips,
    embed_clips,
    fit_head,
    tagger_manifest,
)
from genretag.training.cross_validation import cross_validate
from genretag.training.distill import StudentConfig, train_student
from genretag.training.keras_train import KerasTrainConfig, train_keras
from genretag.training.metrics import evaluate_windows
from genretag.training.reader import DatasetInfo, load_clips_numpy, read_dataset
from genretag.training.scoring import score_clips
from genretag.training.strategy import worker_output

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    """Options shared by all model types (each trainer uses the ones it understands)."""

    seed: int = 0
    epochs: int = 30
    batch_size: int = 32
    patience: int = 5
    window_seconds: float = 3.0
    hop_seconds: float = 1.5
    steps_per_epoch: int | None = None
    imagenet_weights: Path | None = None
    train_splits: tuple[str, ...] = ("train",)
    cache_dir: Path | None = None
    output: str = "softmax"
    cv_folds: int = 0


def labelled(info: DatasetInfo, dataset_dir: Path, split: str) -> list[tuple[str, Any, Any, int]]:
    """Clips of a split as ``(clip_id, pcm, multi-hot, sample_rate)`` for scoring."""
    return [(c.clip_id, c.pcm, c.labels, info.sample_rate) for c in load_clips_numpy(dataset_dir, split)]


def dev_metrics(predictor: Predictor, info: DatasetInfo, dataset_dir: Path) -> dict[str, Any]:
    """Window- and clip-level figures of ``predictor`` on the dev split (empty if there is none)."""
    if not info.counts["splits"].get("dev"):
        return {}
    scored = score_clips(predictor, labelled(info, dataset_dir, "dev"))
    return evaluate_windows(scored, info.labels)


def _train_sklearn(
    name: str, dataset_dir: Path, info: DatasetInfo, options: TrainOptions
) -> tuple[Any, ArtifactManifest]:
    from genretag.models.features import FeatureConfig
    from genretag.training.sklearn_train import cached_feature_table, train_sklearn

    spec = WindowSpec(info.sample_rate, options.window_seconds, options.hop_seconds)
    config = FeatureConfig(sample_rate=info.sample_rate)

    def table(splits: tuple[str, ...]) -> Any:
        """Features of every window of ``splits``, cached per dataset, splits and window geometry."""
        clips = (
            (c.clip_id, frame_windows(c.pcm, spec)[0], int(c.labels.argmax()))
            for split in splits
            for c in load_clips_numpy(dataset_dir, split)
        )
        key = f"{info.fingerprint}:{','.join(splits)}:{spec.window_seconds}:{spec.hop_seconds}"
        name = hashlib.sha256(key.encode()).hexdigest()[:20]
        cache = options.cache_dir / f"features-{name}.npz" if options.cache_dir else None
        return cached_feature_table(cache, key, config, clips)

    estimator, selection = train_sklearn(name, table(options.train_splits), table(("dev",)), len(info.labels))
    manifest = new_manifest(
        config,
        architecture=name,
        labels=info.labels,
        sample_rate=info.sample_rate,
        window_seconds=spec.window_seconds,
        hop_seconds=spec.hop_seconds,
        dev_metrics={"selection": {k: v for k, v in selection.items() if k != "grid"}},
    )
    return estimator, manifest


def _train_keras(
    name: str, dataset_dir: Path, out_dir: Path, options: TrainOptions
) -> tuple[Any, ArtifactManifest]:
    config = KerasTrainConfig(
        architecture=name,
        epochs=options.epochs,
        batch_size=options.batch_size,
        patience=options.patience,
        seed=options.seed,
        window_seconds=options.window_seconds,
        hop_seconds=options.hop_seconds,
        imagenet_weights=options.imagenet_weights,
        steps_per_epoch=options.steps_per_epoch,
        output=options.output,
    )
    return train_keras(dataset_dir, out_dir.parent / f"{out_dir.name}.logs", config)


def _train_backbone(
    dataset_dir: Path, info: DatasetInfo, options: TrainOptions
) -> tuple[Any, ArtifactManifest]:
    """Embed the training splits, fit the head, and assemble the shipped Keras model.

    With ``cv_folds`` > 1 the same head is also cross-validated on the
    training clips with artist-grouped folds and the figures are recorded in
    the manifest (``dev_metrics.cross_validation``).
    """
    config = HeadConfig(hop_seconds=options.hop_seconds)
    labels = list(info.labels)
    emb = embed_clips(
        dataset_clips(dataset_dir, options.train_splits),
        config.variants,
        config.hop_seconds,
        config.normalize_db,
        options.cache_dir,
    )
    head = fit_head(emb.select(config), emb.labels, emb.clip_ids, config.C, options.seed)
    model = build_tagger(config, head, len(labels))
    figures = {}
    if options.cv_folds > 1:
        figures["cross_validation"] = cross_validate(emb, config, labels, options.cv_folds, options.seed)
    manifest = tagger_manifest(
        config, labels, "class-balanced multinomial logistic regression", dev_metrics=figures
    )
    return model, manifest


def _train_student(
    dataset_dir: Path, info: DatasetInfo, options: TrainOptions
) -> tuple[Any, ArtifactManifest]:
    config = StudentConfig(epochs=options.epochs, seed=options.seed)
    return train_student(dataset_dir, info, options.train_splits, options.cache_dir, config)


def train_model(name: str, dataset_dir: Path, out_dir: Path, options: TrainOptions) -> Predictor:
    """Train model type ``name`` on ``dataset_dir`` and save a checked artifact at ``out_dir``.

    In a multi-worker cluster (``TF_CONFIG``) every worker runs this; only the
    chief writes ``out_dir`` (and its logs), the others a temporary copy they discard.
    """
    if name not in MODEL_CHOICES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_CHOICES)}")
    with worker_output(out_dir) as target:
        return _train_and_save(name, dataset_dir, target, options)


def _train_and_save(name: str, dataset_dir: Path, out_dir: Path, options: TrainOptions) -> Predictor:
    info = read_dataset(dataset_dir)
    if name in SKLEARN_MODELS:
        model, manifest = _train_sklearn(name, dataset_dir, info, options)
    elif name in KERAS_MODELS:
        model, manifest = _train_keras(name, dataset_dir, out_dir, options)
    elif name in DISTILLED_MODELS:
        model, manifest = _train_student(dataset_dir, info, options)
    else:
        model, manifest = _train_backbone(dataset_dir, info, options)
    replicas = manifest.training_data.get("replicas")  # a Keras run on several devices or workers
    manifest.training_data = {
        "dataset": str(dataset_dir),
        "fingerprint": info.fingerprint,
        "splits": list(options.train_splits),
        "seed": options.seed,
        **({"replicas": replicas} if replicas else {}),
    }
    live: Predictor = (
        KerasPredictor(manifest, model) if manifest.kind == "keras" else SklearnPredictor(manifest, model)
    )
    figures = dev_metrics(live, info, dataset_dir)
    if "dev" in options.train_splits:
        figures = {"note": "dev was part of the training data; see cross-validation", **figures}
    manifest = replace(manifest, dev_metrics={**manifest.dev_metrics, **figures})
    return save_artifact(model, manifest, out_dir)
