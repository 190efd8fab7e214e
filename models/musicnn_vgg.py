"""Keras 3 port of the musicnn wheel's VGG-like taggers (MSD_vgg, MTT_vgg).

The ``musicnn==0.1.0`` wheel ships, next to the musicnn models of
:mod:`genretag.models.musicnn`, a plain VGG-style baseline trained on the same
data and the same front end (96-band log-mel, 187 frames of 16 kHz audio).
Weights come from ``tools/musicnn_convert.py``; they are *not*
bundled with the package (about 2.4 MB each).  Make them with::

    python -m tools.musicnn_convert --wheel-dir DIR --out models/musicnn_weights \
        --variants MSD_vgg MTT_vgg

Why not bundled: as extra features for the default tagger's set-loss head
(leave-one-source-out over GTZAN / Magnatune / AllMusic, 1,152 clips) they
moved LOSO hit@1 by at most +0.004 (0.652 -> 0.656 with both taggrams), and
alone they are below musicnn (0.627-0.631), while each adds about 0.55x a
musicnn backbone's compute per window.

Architecture (musicnn's ``models.vgg`` with 128 filters), on a
``(time, mel, 1)`` image; the first two poolings differ between the variants::

    input_bn                                          MTT_vgg          MSD_vgg
    conv1 3x3 relu -> bn1 -> pool1                    4x1 stride 2x2   4x1 stride 4x1
    conv2 3x3 relu -> bn2 -> pool2                    2x2 stride 2x2   1x4 stride 1x4
    conv3 3x3 relu -> bn3 -> max 2x2 stride 2x2   (23, 12, 128) for both
    conv4 3x3 relu -> bn4 -> max 2x2 stride 2x2   (11,  6, 128)
    conv5 3x3 relu -> bn5 -> max 4x4 stride 4x4   ( 2,  1, 128) -> flatten 256 -> dense 50

The wheel's ``models.py`` describes only the MTT_vgg poolings; MSD_vgg's come
from its checkpoint's own graph (``.meta``), which the tests run as the
reference.  All convolutions are ``same``, all poolings ``valid``; dropouts are
identities at inference and left out.  The last pooling is the checkpoint's and sees only
the first 8 of 11 frames and 4 of 6 bands of the last block, so the port also
offers global statistics of that block.  Outputs (a dict):

===============  =====  ======================================================
key              dim    meaning
===============  =====  ======================================================
``taggram``      50     sigmoid tag scores, ordered as :func:`tag_names`
``pool5``        256    the flattened last pooling (time-major, as the original)
``mean_pool``    128    mean of the last block (``bn5``) over time and bands
``max_pool``     128    max of the last block over time and bands
===============  =====  ======================================================

Unlike musicnn the network needs exactly 187 frames (the dense layer takes a
fixed flatten), so the PCM window is fixed at
:data:`genretag.models.musicnn.WINDOW_SAMPLES`.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from genretag.models.frontend import LogMelFrontEnd
from genretag.models.musicnn import (
    BN_EPSILON,
    HOP_LENGTH,
    MSD_LABELS,
    MTT_LABELS,
    N_FFT,
    N_MELS,
    WEIGHTS_DIR,
    load_backbone_weights,
)
from genretag.models.musicnn_input import BACKBONE_RATE, WINDOW_SAMPLES

VGG_VARIANTS = ("MSD_vgg", "MTT_vgg")
VGG_MODEL_NAME = "vgg"
N_FRAMES = 187
FILTERS = 128
_LAST_POOLS = (((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))
#: (pool size, strides) after each of the five conv blocks, in (time, mel), as in each
#: checkpoint's graph.
POOLS = {
    "MTT_vgg": (((4, 1), (2, 2)), ((2, 2), (2, 2)), *_LAST_POOLS),
    "MSD_vgg": (((4, 1), (4, 1)), ((1, 4), (1, 4)), *_LAST_POOLS),
}
OUTPUT_DIMS = {"taggram": 50, "pool5": 256, "mean_pool": 128, "max_pool": 128}


def _check_variant(variant: str) -> None:
    if variant not in VGG_VARIANTS:
        raise ValueError(f"unknown musicnn vgg variant {variant!r}; expected one of {VGG_VARIANTS}")


def tag_names(variant: str = "MSD_vgg") -> list[str]:
    """The 50 tags of ``variant`` in the order of the ``taggram`` output."""
    _check_variant(variant)
    return list(MSD_LABELS if variant == "MSD_vgg" else MTT_LABELS)


def _batch_norm(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)


def build_vgg_mel_network(variant: str = "MSD_vgg", n_mels: int = N_MELS) -> keras.Model:
    """The VGG tagger ``variant`` from log-mel patches ``(batch, 187, n_mels)`` to the output dict."""
    _check_variant(variant)
    mel = keras.Input(shape=(N_FRAMES, n_mels), name="mel")
    x = layers.Reshape((N_FRAMES, n_mels, 1), name="add_channel")(mel)
    x = _batch_norm("input_bn")(x)
    block = x
    for i, (pool_size, strides) in enumerate(POOLS[variant], start=1):
        x = layers.Conv2D(FILTERS, (3, 3), padding="same", activation="relu", name=f"conv{i}")(x)
        block = _batch_norm(f"bn{i}")(x)
        x = layers.MaxPooling2D(pool_size, strides, name=f"pool{i}")(block)
    pool5 = layers.Flatten(name="pool5_flat")(x)
    logits = layers.Dense(len(MSD_LABELS), name="logits")(pool5)
    outputs = {
        "taggram": layers.Activation("sigmoid", name="taggram")(logits),
        "pool5": pool5,
        "mean_pool": layers.GlobalAveragePooling2D(name="mean_pool")(block),
        "max_pool": layers.GlobalMaxPooling2D(name="max_pool")(block),
    }
    return keras.Model(mel, outputs, name=VGG_MODEL_NAME)


def build_vgg_architecture(variant: str = "MSD_vgg") -> keras.Model:
    """Untrained PCM -> outputs model; :func:`build_vgg_backbone` adds the weights."""
    _check_variant(variant)
    pcm = keras.Input(shape=(WINDOW_SAMPLES,), name="pcm")
    mel = LogMelFrontEnd(
        sample_rate=BACKBONE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, name="log_mel"
    )(pcm)
    return keras.Model(pcm, build_vgg_mel_network(variant, N_MELS)(mel), name=variant)


def default_vgg_weights_path(variant: str) -> Path:
    """Where the converter's documented command writes ``variant``'s weights (not bundled)."""
    _check_variant(variant)
    return WEIGHTS_DIR / f"{variant}.weights.npz"


def build_vgg_backbone(variant: str = "MSD_vgg", weights_path: str | Path | None = None) -> keras.Model:
    """Pretrained VGG tagger from raw PCM windows to the outputs in the module docstring.

    Parameters
    ----------
    variant : ``"MSD_vgg"`` (Million Song Dataset tags) or ``"MTT_vgg"`` (MagnaTagATune tags).
    weights_path : converted ``.npz`` weights; None: ``musicnn_weights/<variant>.weights.npz``
        next to this module, where the converter's command above writes them.

    Returns
    -------
    keras.Model
        Input ``(batch, 47616)`` float32 mono PCM in [-1, 1] at 16 kHz; output a
        dict of ``taggram`` (50), ``pool5`` (256), ``mean_pool`` and ``max_pool`` (128).
    """
    model = build_vgg_architecture(variant)
    path = Path(weights_path) if weights_path is not None else default_vgg_weights_path(variant)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: musicnn vgg weights not found; create them with "
            "`python -m tools.musicnn_convert --wheel-dir DIR --out DIR`"
        )
    load_backbone_weights(model, path)
    return model
