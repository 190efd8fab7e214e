"""Training the from-scratch Keras models (1-D CNN, 2-D CNN, MobileNetV2) on TFRecord shards.

Early stopping watches the dev split, classes are balanced by per-window
sample weights (so multi-label clips weigh the mean of their labels'
weights), TensorBoard logs go next to the artifact, and ``--seed`` makes a
run repeatable (op determinism on).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genretag.models.artifact import ArtifactManifest
from genretag.models.manifest_features import KerasFeatures, new_manifest
from genretag.training.reader import DatasetInfo, read_dataset, window_dataset
from genretag.training.strategy import choose_strategy, global_batch_training, shard_by_data

log = logging.getLogger(__name__)


@dataclass
class KerasTrainConfig:
    """Knobs of a Keras training run; defaults suit a few hundred 30 s clips on a CPU."""

    architecture: str
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 5
    seed: int = 0
    window_seconds: float = 3.0
    hop_seconds: float = 1.5
    output: str = "softmax"
    imagenet_weights: Path | None = None
    steps_per_epoch: int | None = None


def class_weights(info: DatasetInfo) -> np.ndarray:
    """Inverse-frequency weights over the train split, normalised to mean one."""
    counts = np.array([info.label_counts("train").get(name, 0) for name in info.labels], np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(counts), 0.0)
    return (weights / weights[counts > 0].mean()).astype(np.float32)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the backend, and make TensorFlow ops deterministic."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def train_keras(dataset_dir: Path, log_dir: Path, config: KerasTrainConfig) -> tuple[Any, ArtifactManifest]:
    """Train ``config.architecture`` on the train split, stopping on dev; return model and manifest."""
    import keras

    from genretag.models.keras_builders import BUILDERS, KerasSpec, build_mobilenet

    strategy = choose_strategy()  # first: a multi-worker strategy must start before any TF op runs
    seed_everything(config.seed)
    info = read_dataset(dataset_dir)
    spec = KerasSpec(
        window_samples=int(round(config.window_seconds * info.sample_rate)),
        sample_rate=info.sample_rate,
        n_labels=len(info.labels),
        output=config.output,
    )
    weights = class_weights(info)

    def with_weights(x: object, y: object) -> tuple[object, object, object]:
        import tensorflow as tf

        w = tf.reduce_sum(y * weights, axis=-1) / tf.maximum(tf.reduce_sum(y, axis=-1), 1.0)
        if config.output == "softmax":  # soft targets: a two-label clip is half each
            y = y / tf.maximum(tf.reduce_sum(y, axis=-1, keepdims=True), 1.0)
        return x, y, w

    # batch_size is the global batch: several replicas split each batch between them
    train = window_dataset(
        dataset_dir, "train", spec.window_samples, config.batch_size, training=True, seed=config.seed
    ).map(with_weights)
    if config.steps_per_epoch:  # a fixed epoch length must not run dry after one pass of crops
        train = train.repeat()
    dev = window_dataset(
        dataset_dir, "dev", spec.window_samples, config.batch_size, training=False, seed=config.seed
    ).map(with_weights)
    train, dev = shard_by_data(train), shard_by_data(dev)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        if config.architecture == "mobilenet":
            if config.imagenet_weights is None:
                log.warning("mobilenet: no --imagenet-weights file given, training from scratch")
            model = build_mobilenet(spec, config.imagenet_weights)
        else:
            model = BUILDERS[config.architecture](spec)
        loss = "categorical_crossentropy" if config.output == "softmax" else "binary_crossentropy"
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=loss,
            weighted_metrics=["categorical_accuracy"],
        )
    with global_batch_training(model, strategy):
        model.fit(
            train,
            validation_data=dev,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
            callbacks=[
                keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
                keras.callbacks.TensorBoard(log_dir=str(log_dir)),
            ],
            verbose=2,
        )
    replicas = int(strategy.num_replicas_in_sync) if strategy is not None else 1
    manifest = new_manifest(
        KerasFeatures(),
        architecture=config.architecture,
        labels=info.labels,
        output=config.output,
        sample_rate=info.sample_rate,
        window_seconds=config.window_seconds,
        hop_seconds=config.hop_seconds,
        training_data={
            "fingerprint": info.fingerprint,
            "dataset": str(dataset_dir),
            "seed": config.seed,
            **({"replicas": replicas} if replicas > 1 else {}),
        },
    )
    return model, manifest
