"""The musicnn tagger (the default model's architecture): frozen musicnn backbones, a softmax genre head and,
optionally, analysis heads on the same embedding.

::

    pcm (batch, 47616) --loudness (optional)--> every backbone --selected outputs--> "embedding"
        "embedding" --> "scores"   genre, Dense softmax
                    --> "speech"   Dense(2) softmax (music, speech)         } optional heads
                    --> "mood"     Dense(4) softmax (happy, tense, sad, calm) } (issue "Beyond genre"),
                    --> "tags"     Dense, one-hot kernel, no bias: a fixed   } in this order
                                   selection of the backbones' own taggram outputs

Training (:mod:`genretag.training.backbone_train`) fits the genre head on the
backbones' window features (:func:`build_backbone_outputs`) and folds it into
the ``"scores"`` Dense layer of :func:`build_tagger`; :mod:`genretag.training.heads`
fits the speech and mood heads the same way.  The model's outputs are genre's
scores, then one per head in :data:`~genretag.models.artifact.HEAD_NAMES` order,
each from the layer of the head's name; the serving export reads the same layer
names (:mod:`genretag.models.serving_export`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np

from genretag.models.artifact import HEAD_NAMES
from genretag.models.loudness import RmsNormalization
from genretag.models.musicnn import BACKEND_UNITS, FEATURE_LAYERS, build_musicnn_backbone, tag_names
from genretag.models.musicnn_input import WINDOW_SAMPLES

#: Width of each backbone output (:data:`~genretag.models.musicnn.FEATURE_LAYERS`).
LAYER_DIMS = {"taggram": 50, "penultimate": BACKEND_UNITS, "mean_pool": 753, "max_pool": 753}

#: The ``tags`` head of the bundled default: output label -> (backbone, its taggram tag).  Chosen for
#: radio monitoring (is there a voice, whose, which instruments, acoustic or electronic), among the
#: most frequent tags of each training set (MagnaTagATune's list is ordered by frequency, so its
#: better-trained synonym is taken: "vocal" over "vocals", "female" over "female voice"); MSD's last.fm
#: tags add what MagnaTagATune lacks ("instrumental", "acoustic").  See the README's tag table.
CURATED_TAGS: dict[str, tuple[str, str]] = {
    "vocals": ("MTT_musicnn", "vocal"),
    "no vocals": ("MTT_musicnn", "no vocals"),
    "female voice": ("MTT_musicnn", "female"),
    "male voice": ("MTT_musicnn", "male"),
    "choir": ("MTT_musicnn", "choir"),
    "guitar": ("MTT_musicnn", "guitar"),
    "piano": ("MTT_musicnn", "piano"),
    "strings": ("MTT_musicnn", "strings"),
    "drums": ("MTT_musicnn", "drums"),
    "synth": ("MTT_musicnn", "synth"),
    "instrumental": ("MSD_musicnn", "instrumental"),
    "acoustic": ("MSD_musicnn", "acoustic"),
}


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


def tag_selection(
    variants: Sequence[str], layers: Sequence[str], tags: Mapping[str, tuple[str, str]]
) -> np.ndarray:
    """The ``tags`` head's kernel ``(embedding dim, len(tags))``: column j is 1 at the embedding row of
    tag j's taggram output and 0 elsewhere, so the head passes those sigmoid probabilities through.

    Raises ValueError when a tag's backbone or its taggram is not in the embedding, or the tag is unknown.
    """
    offsets, start = {}, 0
    for variant in variants:
        for layer in layers:
            offsets[(variant, layer)] = start
            start += LAYER_DIMS[layer]
    kernel = np.zeros((start, len(tags)), np.float32)
    for j, (label, (variant, tag)) in enumerate(tags.items()):
        if (variant, "taggram") not in offsets:
            raise ValueError(
                f"tag {label!r}: the embedding has no taggram of {variant} (layers: {list(layers)})"
            )
        names = tag_names(variant)
        if tag not in names:
            raise ValueError(f"tag {label!r}: {variant} has no tag {tag!r}")
        kernel[offsets[(variant, "taggram")] + names.index(tag), j] = 1.0
    return kernel


def build_tagger(
    variants: Sequence[str],
    layers: Sequence[str],
    normalize_db: float | None,
    kernel: np.ndarray,
    bias: np.ndarray,
    heads: Mapping[str, tuple[np.ndarray, np.ndarray | None]] | None = None,
) -> keras.Model:
    """PCM -> frozen backbones -> the ``layers`` of each, concatenated -> Dense softmax, and the heads.

    Parameters
    ----------
    variants : the backbones, in the order their features are concatenated.
    layers : the outputs of each backbone the head reads (of ``FEATURE_LAYERS``).
    normalize_db : per-window RMS target in dBFS, or None for raw levels.
    kernel, bias : the genre head's ``(dim, n_labels)`` and ``(n_labels,)`` weights.
    heads : analysis heads on the same embedding, name (of ``HEAD_NAMES``) -> ``(kernel, bias)``:
        ``speech`` and ``mood`` are Dense softmax layers; ``tags`` takes bias None and is a linear Dense
        without bias (:func:`tag_selection`).  The model's outputs are then a list, genre's scores first,
        then the heads in ``HEAD_NAMES`` order; without heads, genre's scores alone.
    """
    heads = dict(heads or {})
    unknown = sorted(set(heads) - set(HEAD_NAMES))
    if unknown:
        raise ValueError(f"unknown heads {unknown}; expected names of {HEAD_NAMES}")
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
    if not heads:
        return keras.Model(pcm, scores, name="musicnn_tagger")
    outputs = [scores]
    for name in (n for n in HEAD_NAMES if n in heads):
        head_kernel, head_bias = heads[name]
        if name == "tags":
            if head_bias is not None:
                raise ValueError("the tags head is a selection: it takes no bias")
            layer = keras.layers.Dense(head_kernel.shape[1], use_bias=False, name=name)
            outputs.append(layer(x))
            layer.set_weights([head_kernel])
        else:
            if head_bias is None:
                raise ValueError(f"the {name} head needs a bias")
            layer = keras.layers.Dense(head_bias.shape[0], activation="softmax", name=name)
            outputs.append(layer(x))
            layer.set_weights([head_kernel, head_bias])
    return keras.Model(pcm, outputs, name="musicnn_tagger")
