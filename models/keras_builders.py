"""Keras models trained from scratch: 1-D CNN on raw audio, 2-D CNN on log-mel, MobileNetV2.

Every model takes raw PCM windows ``(batch, window_samples)`` and computes its
own features inside the graph, so an artifact serves the daemon with no
feature code outside the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers


@dataclass(frozen=True)
class KerasSpec:
    """What every builder needs to know about the data."""

    window_samples: int
    sample_rate: int
    n_labels: int
    output: str = "softmax"  # or "sigmoid"


def _head(x: keras.KerasTensor, spec: KerasSpec, dropout: float) -> keras.KerasTensor:
    x = layers.Dropout(dropout)(x)
    return layers.Dense(spec.n_labels, activation=spec.output, name="scores")(x)


def _log_mel(inputs: keras.KerasTensor, spec: KerasSpec, n_mels: int = 96) -> keras.KerasTensor:
    """Log-mel ``(batch, frames, mels, 1)`` computed in the graph, standardised per window."""
    mel = layers.MelSpectrogram(
        fft_length=2048 if spec.sample_rate > 16000 else 1024,
        sequence_stride=512 if spec.sample_rate > 16000 else 256,
        sampling_rate=spec.sample_rate,
        num_mel_bins=n_mels,
        max_freq=spec.sample_rate / 2,
        power_to_db=True,
        top_db=80.0,
        name="log_mel",
    )(inputs)  # (batch, mels, frames)
    x = layers.Permute((2, 1))(mel)
    x = layers.Reshape((-1, n_mels, 1))(x)
    # Per-window standardisation makes the models indifferent to playback gain.
    return layers.LayerNormalization(axis=(1, 2), name="mel_norm")(x)


def build_cnn1d(spec: KerasSpec) -> keras.Model:
    """Strided 1-D convolutions straight on samples (a small SampleCNN-style stack)."""
    inputs = keras.Input((spec.window_samples,), name="pcm")
    x = layers.Reshape((spec.window_samples, 1))(inputs)
    x = layers.LayerNormalization(axis=1, name="gain_norm")(x)
    x = layers.Conv1D(32, 64, strides=8, padding="same", use_bias=False)(x)
    for filters in (32, 64, 64, 128, 128):
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv1D(filters, 9, padding="same", use_bias=False)(x)
        x = layers.MaxPooling1D(4 if filters < 128 else 2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    return keras.Model(inputs, _head(x, spec, 0.3), name="cnn1d")


def build_cnn2d(spec: KerasSpec) -> keras.Model:
    """Four conv blocks on a log-mel spectrogram, global pooling, dense head."""
    inputs = keras.Input((spec.window_samples,), name="pcm")
    x = _log_mel(inputs, spec)
    for filters in (32, 64, 96, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    return keras.Model(inputs, _head(x, spec, 0.3), name="cnn2d")


def build_mobilenet(spec: KerasSpec, imagenet_weights: Path | None = None) -> keras.Model:
    """MobileNetV2 on a mel 'image' resized to 224x224x3.

    ImageNet weights come only from a local file (``imagenet_weights``, the
    ``..._no_top.h5`` file Keras publishes); without one the network trains
    from scratch.  Nothing is ever downloaded.
    """
    inputs = keras.Input((spec.window_samples,), name="pcm")
    x = _log_mel(inputs, spec, n_mels=128)
    x = layers.Resizing(224, 224, name="to_image")(x)
    x = layers.Concatenate(name="rgb")([x, x, x])
    base = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3),
        include_top=False,
        weights=str(imagenet_weights) if imagenet_weights else None,
        pooling="avg",
    )
    x = base(x)
    return keras.Model(inputs, _head(x, spec, 0.3), name="mobilenet")


BUILDERS: dict[str, Callable[[KerasSpec], keras.Model]] = {
    "cnn1d": build_cnn1d,
    "cnn2d": build_cnn2d,
    "mobilenet": build_mobilenet,
}
