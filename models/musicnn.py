"""Keras 3 port of the pretrained musicnn taggers (MSD_musicnn, MTT_musicnn).

musicnn (Pons & Serra, 2019) is a "musically motivated" CNN over a 96-band
log-mel spectrogram of 3 s of 16 kHz audio (187 frames).  This module rebuilds
its architecture from the paper and the published checkpoints; the weights come
from ``tools/musicnn_convert.py`` (beside the package, not installed), stored
next to this file in ``musicnn_weights/``.

Model structure (``build_musicnn_backbone``)::

    pcm (batch, 47616) --LogMelFrontEnd--> mel (batch, 187, 96) --"musicnn"--> outputs

The inner functional model ``"musicnn"`` takes mel patches of any length
``(batch, frames, 96)``; the outer one fixes the PCM window length.  Both return
a dict:

===============  =====  ======================================================
key              dim    meaning
===============  =====  ======================================================
``taggram``      50     sigmoid tag scores, ordered as :func:`tag_names`
``penultimate``  200    batch-normalised output of the 200-unit dense layer
``mean_pool``    753    mean over time of the front- and mid-end feature maps
``max_pool``     753    max over time of the same 753 channels
===============  =====  ======================================================

The 753 channels are the 561 front-end channels (timbral 7x38 and 7x67, 204
filters each; temporal 128/64/32 x 1, 51 filters each) followed by the three
64-channel mid-end layers.  The back end feeds the dense layer a 1506-vector in
which max and mean *alternate* per channel (the original flattens a
``(753, 2)`` stack); this port keeps that order so the checkpoint's dense and
batch-norm weights map one to one.

The batch norms use TF1's default epsilon of 1e-3.  To use the backbone as a
frozen feature extractor inside a model that is trained, set
``backbone.trainable = False``: Keras then runs them on their moving statistics
even under ``training=True``, as musicnn does at inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from genretag.models.frontend import LogMelFrontEnd
from genretag.models.musicnn_input import BACKBONE_RATE, WINDOW_SAMPLES

N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
BN_EPSILON = 1e-3
VARIANTS = ("MSD_musicnn", "MTT_musicnn")
#: The outputs of :func:`build_musicnn_backbone`, each a feature a head can read.
FEATURE_LAYERS = ("taggram", "penultimate", "mean_pool", "max_pool")
MEL_MODEL_NAME = "musicnn"
WEIGHTS_DIR = Path(__file__).resolve().parent / "musicnn_weights"

MTT_LABELS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock",
    "fast", "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian",
    "opera", "male", "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet",
    "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats",
    "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
]  # fmt: skip
MSD_LABELS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s",
    "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
]  # fmt: skip

# Architecture constants of the published musicnn models (both variants).
TIMBRAL_FILTERS = 204  # int(1.6 * 128)
TIMBRAL_HEIGHTS = (38, 67)  # int(0.4 * 96), int(0.7 * 96) mel bands
TIMBRAL_WIDTH = 7  # frames
TEMPORAL_FILTERS = 51  # int(1.6 * 32)
TEMPORAL_WIDTHS = (128, 64, 32)  # frames
MIDEND_FILTERS = 64
MIDEND_WIDTH = 7
BACKEND_UNITS = 200


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown musicnn variant {variant!r}; expected one of {VARIANTS}")


def tag_names(variant: str = "MSD_musicnn") -> list[str]:
    """The 50 tags of ``variant`` in the order of the ``taggram`` output."""
    _check_variant(variant)
    return list(MSD_LABELS if variant == "MSD_musicnn" else MTT_LABELS)


@keras.saving.register_keras_serializable(package="genretag")
class MaxOverFrequency(layers.Layer):
    """Drop the frequency axis of a 4-D feature map by taking its maximum.

    musicnn pools each front-end filter over the whole (remaining) frequency
    axis, which makes the responses pitch invariant.  ``freq_axis`` is 2 for
    ``(batch, time, freq, channels)`` maps and 1 for ``(batch, freq, time,
    channels)``; the output is ``(batch, time, channels)`` either way.
    """

    def __init__(self, freq_axis: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if freq_axis not in (1, 2):
            raise ValueError(f"freq_axis must be 1 or 2, got {freq_axis}")
        self.freq_axis = freq_axis

    def call(self, x: Any) -> Any:
        return ops.max(x, axis=self.freq_axis)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        time_axis = 3 - self.freq_axis
        return (input_shape[0], input_shape[time_axis], input_shape[3])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "freq_axis": self.freq_axis}


def _batch_norm(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)


def _frontend_branches(mel_image: Any) -> list[Any]:
    """The five pitch-invariant branches, in the checkpoint's concatenation order."""
    branches = []
    # Time-only zero padding gives 'same' output length along time; frequency is
    # 'valid' because it is max-pooled away anyway.
    padded = layers.ZeroPadding2D(((TIMBRAL_WIDTH // 2,) * 2, (0, 0)), name="timbral_pad")(mel_image)
    for height in TIMBRAL_HEIGHTS:
        name = f"timbral_{TIMBRAL_WIDTH}x{height}"
        x = layers.Conv2D(TIMBRAL_FILTERS, (TIMBRAL_WIDTH, height), activation="relu", name=f"{name}_conv")(
            padded
        )
        x = _batch_norm(f"{name}_bn")(x)
        branches.append(MaxOverFrequency(name=f"{name}_pool")(x))
    # The temporal filters are 1-D along time and shared by all bands.  They run
    # on a (batch, freq, time, 1) layout, i.e. as (1, width) kernels: the same
    # arithmetic as the original (width, 1) kernels on (batch, time, freq, 1),
    # but about twice as fast with TensorFlow's CPU convolutions.
    bands_first = layers.Permute((2, 1, 3), name="bands_first")(mel_image)
    for width in TEMPORAL_WIDTHS:
        name = f"temporal_{width}x1"
        # Keras 'same' pads even kernels like TF1 did (one more sample after).
        x = layers.Conv2D(
            TEMPORAL_FILTERS, (1, width), padding="same", activation="relu", name=f"{name}_conv"
        )(bands_first)
        x = _batch_norm(f"{name}_bn")(x)
        branches.append(MaxOverFrequency(freq_axis=1, name=f"{name}_pool")(x))
    return branches


def build_mel_network(n_mels: int = N_MELS) -> keras.Model:
    """musicnn from log-mel patches ``(batch, frames, n_mels)`` to the output dict.

    Any number of frames works (the network is convolutional up to a global
    pooling), but the weights were trained on 187-frame patches.
    """
    mel = keras.Input(shape=(None, n_mels), name="mel")
    mel_image = layers.Reshape((-1, n_mels, 1), name="add_channel")(mel)
    mel_image = _batch_norm("input_bn")(mel_image)
    frontend = layers.Concatenate(name="frontend")(_frontend_branches(mel_image))

    # Mid-end: the original writes these as 2-D convs spanning all channels,
    # which are exactly 1-D convs over time.
    x = layers.Conv1D(MIDEND_FILTERS, MIDEND_WIDTH, padding="same", activation="relu", name="midend_1_conv")(
        frontend
    )
    mid_1 = _batch_norm("midend_1_bn")(x)
    residual = mid_1
    midend = [mid_1]
    for i in (2, 3):
        x = layers.Conv1D(
            MIDEND_FILTERS, MIDEND_WIDTH, padding="same", activation="relu", name=f"midend_{i}_conv"
        )(residual)
        x = _batch_norm(f"midend_{i}_bn")(x)
        residual = layers.Add(name=f"midend_{i}_residual")([x, residual])
        midend.append(residual)
    features = layers.Concatenate(name="features")([frontend, *midend])

    max_pool = layers.GlobalMaxPooling1D(name="max_pool")(features)
    mean_pool = layers.GlobalAveragePooling1D(name="mean_pool")(features)
    n_features = int(features.shape[-1])
    # Interleave max and mean per channel, as the original's flatten of (753, 2) does.
    stacked = layers.Concatenate(name="pool_stack")(
        [
            layers.Reshape((n_features, 1), name="max_pool_column")(max_pool),
            layers.Reshape((n_features, 1), name="mean_pool_column")(mean_pool),
        ]
    )
    pooled = layers.Flatten(name="pooled")(stacked)
    pooled = _batch_norm("pooled_bn")(pooled)
    # The original's dropouts (rate 0.5) sit here and after "penultimate"; they
    # are identities at inference and therefore left out.
    x = layers.Dense(BACKEND_UNITS, activation="relu", name="penultimate_dense")(pooled)
    penultimate = _batch_norm("penultimate")(x)
    logits = layers.Dense(len(MSD_LABELS), name="logits")(penultimate)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    outputs = {
        "taggram": taggram,
        "penultimate": penultimate,
        "mean_pool": mean_pool,
        "max_pool": max_pool,
    }
    return keras.Model(mel, outputs, name=MEL_MODEL_NAME)


def build_musicnn_architecture(
    variant: str = "MSD_musicnn", window_samples: int = WINDOW_SAMPLES
) -> keras.Model:
    """Untrained PCM -> outputs model; :func:`build_musicnn_backbone` adds the weights."""
    _check_variant(variant)
    if window_samples <= 0:
        raise ValueError(f"window_samples must be positive, got {window_samples}")
    pcm = keras.Input(shape=(window_samples,), name="pcm")
    mel = LogMelFrontEnd(
        sample_rate=BACKBONE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, name="log_mel"
    )(pcm)
    outputs = build_mel_network(N_MELS)(mel)
    return keras.Model(pcm, outputs, name=variant)


def mel_network(model: keras.Model) -> keras.Model:
    """The inner mel -> outputs model of a backbone (for mel-domain inputs and tests).

    It is the backbone's one nested model: ``"musicnn"`` here, ``"vgg"`` for
    the ports of :mod:`genretag.models.musicnn_vgg`.
    """
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(inner) != 1:
        raise ValueError(f"{model.name}: expected one inner mel network, found {len(inner)}")
    return inner[0]


def backbone_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """Trained weights of a backbone keyed ``"<layer>/<variable>"`` (front end excluded).

    The front end's mel filterbank is derived from its config, not trained, so
    it is not part of the weight files.
    """
    return {
        f"{layer.name}/{variable.name}": np.asarray(ops.convert_to_numpy(variable))
        for layer in mel_network(model).layers
        for variable in layer.weights
    }


def set_backbone_weights(model: keras.Model, weights: Mapping[str, np.ndarray]) -> None:
    """Assign ``weights`` (as from :func:`backbone_weights`) to ``model``, strictly.

    Every variable must be given with its exact shape and no key may be left
    over, all checked before anything is assigned: a partial load would
    silently leave random weights in place.
    """
    targets = {
        f"{layer.name}/{variable.name}": variable
        for layer in mel_network(model).layers
        for variable in layer.weights
    }
    missing = sorted(set(targets) - set(weights))
    unexpected = sorted(set(weights) - set(targets))
    if missing or unexpected:
        raise ValueError(f"musicnn weights do not fit: missing {missing}, unexpected {unexpected}")
    wrong = [
        f"{key}: {np.shape(weights[key])} != {tuple(variable.shape)}"
        for key, variable in targets.items()
        if np.shape(weights[key]) != tuple(variable.shape)
    ]
    if wrong:
        raise ValueError(f"musicnn weight shapes do not fit: {wrong}")
    for key, variable in targets.items():
        variable.assign(np.asarray(weights[key], dtype=np.float32))


def default_weights_path(variant: str) -> Path:
    """The converted weight file bundled with the package for ``variant``."""
    _check_variant(variant)
    return WEIGHTS_DIR / f"{variant}.weights.npz"


def load_backbone_weights(model: keras.Model, path: str | Path) -> None:
    """Load an ``.npz`` written by ``tools/musicnn_convert.py`` (``save_weights``) into ``model``."""
    with np.load(path, allow_pickle=False) as archive:
        set_backbone_weights(model, {key: archive[key] for key in archive.files})


def build_musicnn_backbone(
    variant: str = "MSD_musicnn",
    weights_path: str | Path | None = None,
    window_samples: int = WINDOW_SAMPLES,
) -> keras.Model:
    """Pretrained musicnn mapping raw PCM windows to the outputs in the module docstring.

    Parameters
    ----------
    variant : ``"MSD_musicnn"`` (Million Song Dataset tags) or ``"MTT_musicnn"``
        (MagnaTagATune tags).
    weights_path : converted ``.npz`` weights; None loads the file bundled in
        ``genretag/models/musicnn_weights/``.
    window_samples : PCM samples per window at 16 kHz.  The default 47616 gives
        the 187 mel frames (3 s) the weights were trained on.

    Returns
    -------
    keras.Model
        Input ``(batch, window_samples)`` float32 mono PCM in [-1, 1] at 16 kHz;
        output a dict of ``taggram`` (50), ``penultimate`` (200), ``mean_pool``
        (753) and ``max_pool`` (753).
    """
    model = build_musicnn_architecture(variant, window_samples)
    path = Path(weights_path) if weights_path is not None else default_weights_path(variant)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: musicnn weights not found; create them with "
            "`python -m tools.musicnn_convert --wheel-dir DIR --out DIR`"
        )
    load_backbone_weights(model, path)
    return model
