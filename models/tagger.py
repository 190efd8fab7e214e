"""The musicnn tagger (the default model's architecture): frozen musicnn backbones and one softmax head.

::

    pcm (batch, 47616) --loudness (optional)--> every backbone --selected outputs--> "embedding" --> "scores"

Training (:mod:`genretag.training.backbone_train`) fits the head on the
backbones' window features (:func:`build_backbone_outputs`) and folds it into
the ``"scores"`` Dense layer of :func:`build_tagger`.  The serving export reads
the same layer names (:mod:`genretag.models.serving_export`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from genretag.models.loudness import RmsNormalization
from genretag.models.musicnn import FEATURE_LAYERS, build_musicnn_backbone
from genretag.models.musicnn_input import WINDOW_SAMPLES


def normalized_input(normalize_db: float | None) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The PCM input and, if ``normalize_db`` is set, its per-window loudness-normalised version."""
    pcm = keras.Input((WINDOW_SAMPLES,), name="pcm")
    if normalize_db is None:
        return pcm, pcm
    return pcm, RmsNormalization(target_db=normalize_db, name="loudness")(pcm)


def build_backbone_outputs(variants: Sequence[str], normalize_db: float | None) -> keras.Model:
    """One model: PCM -> {"<variant>/<layer>": features} for every output of every backbone."""
    pcm, x = normalized_input(normalize_db)
    outputs = {}
    for variant in variants:
        out = build_musicnn_backbone(variant)(x)
        for layer in FEATURE_LAYERS:
            outputs[f"{variant}/{layer}"] = out[layer]
    return keras.Model(pcm, outputs)


def build_tagger(
    variants: Sequence[str],
    layers: Sequence[str],
    normalize_db: float | None,
    kernel: np.ndarray,
    bias: np.ndarray,
) -> keras.Model:
    """PCM -> frozen backbones -> the ``layers`` of each, concatenated -> Dense softmax.

    Parameters
    ----------
    variants : the backbones, in the order their features are concatenated.
    layers : the outputs of each backbone the head reads (of ``FEATURE_LAYERS``).
    normalize_db : per-window RMS target in dBFS, or None for raw levels.
    kernel, bias : the head's ``(dim, n_labels)`` and ``(n_labels,)`` weights.
    """
    pcm, normalized = normalized_input(normalize_db)
    feats = []
    for variant in variants:
        backbone = build_musicnn_backbone(variant)
        backbone.trainable = False
        out = backbone(normalized)
        feats += [out[layer] for layer in layers]
    x = feats[0] if len(feats) == 1 else keras.layers.Concatenate(name="embedding")(feats)
    dense = keras.layers.Dense(bias.shape[0], activation="softmax", name="scores")
    scores = dense(x)
    dense.set_weights([kernel, bias])
    return keras.Model(pcm, scores, name="musicnn_tagger")
