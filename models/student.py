"""The distilled student (the fast model's architecture): a small CNN on the teacher's log-mel.

::

    pcm (batch, 47616) --loudness (optional)--> "log_mel" --"student_scores"--> probabilities
                                                           (body: separable CNN -> "embedding"; then "scores")

Training (:mod:`genretag.training.distill`) fits the body and its scores layer
on mels and ships them on the front end by :func:`assemble_student`; the
serving export finds the ``"student_scores"`` sub-model by name
(:data:`~genretag.models.model_types.STUDENT_SCORES_MODEL`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from genretag.models.frontend import LogMelFrontEnd
from genretag.models.loudness import RmsNormalization
from genretag.models.musicnn_input import BACKBONE_RATE, WINDOW_SAMPLES

BN_MOMENTUM = 0.9  # the default 0.99 left inference statistics stale after 3 epochs (one genre for all)


def build_mel_front(normalize_db: float | None) -> keras.Model:
    """PCM window -> loudness-normalised log-mel, exactly as the teacher's front end sees it."""
    pcm = keras.Input((WINDOW_SAMPLES,), name="pcm")
    x = pcm if normalize_db is None else RmsNormalization(target_db=normalize_db, name="loudness")(pcm)
    return keras.Model(pcm, LogMelFrontEnd(sample_rate=BACKBONE_RATE, name="log_mel")(x), name="front")


def build_student_body(
    n_frames: int, n_mels: int, embedding_dim: int, widths: Sequence[int], final_width: int, dropout: float
) -> keras.Model:
    """Log-mel -> embedding: a depthwise-separable CNN, a few MMACs per window.

    ``widths`` are the channels of the stride-2 stages, ``final_width`` those
    of the last (stride-1) stage before mean and max pooling.
    """
    mel = keras.Input((n_frames, n_mels), name="mel")
    x = layers.Reshape((n_frames, n_mels, 1))(mel)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="input_norm")(x)
    for i, width in enumerate(widths):
        if i == 0:
            x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
        else:
            x = layers.SeparableConv2D(width, 3, strides=2, padding="same", use_bias=False, name=f"sep{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.SeparableConv2D(final_width, 3, padding="same", use_bias=False, name="sep_final")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="bn_final")(x)
    x = layers.ReLU(name="relu_final")(x)
    pooled = layers.Concatenate(name="pool")(
        [layers.GlobalAveragePooling2D(name="mean_pool")(x), layers.GlobalMaxPooling2D(name="max_pool")(x)]
    )
    pooled = layers.Dropout(dropout)(pooled)
    embedding = layers.Dense(embedding_dim, name="embedding")(pooled)
    return keras.Model(mel, embedding, name="student_body")


def assemble_student(student_scores: keras.Model, normalize_db: float | None) -> keras.Model:
    """PCM -> loudness -> log-mel -> trained ``student_scores`` (mel -> probabilities): the shipped graph."""
    front = build_mel_front(normalize_db)
    probs = student_scores(front.output)
    return keras.Model(front.input, probs, name="musicnn_student")
