"""A transparent Keras artifact: ``loud`` or ``quiet`` from a window's mean absolute level.

Tests that need a real artifact (saved, checked, reloaded as any other) whose scores they can predict
use it: 1 s windows at 8 kHz, a 1 s hop, and one Dense layer whose weights make any audible window
``loud`` and silence ``quiet``.  ``classify``'s clip scoring and the first-contact CLI tests shared two
copies of it before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genretag.models.artifact import ArtifactManifest
from genretag.models.predictor import Predictor, save_artifact

SR = 8000


def save_level_artifact(out: Path) -> Predictor:
    """Save the level artifact in ``out``; the loaded predictor of what was saved."""
    import keras

    inputs = keras.Input((SR,))
    level = keras.layers.GlobalAveragePooling1D()(keras.layers.Reshape((SR, 1))(keras.ops.abs(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(level))
    model.layers[-1].set_weights([np.array([[20.0, -20.0]], np.float32), np.zeros(2, np.float32)])
    manifest = ArtifactManifest(
        kind="keras",
        architecture="level",
        labels=["loud", "quiet"],
        output="softmax",
        sample_rate=SR,
        window_seconds=1.0,
        hop_seconds=1.0,
        model_file="",
    )
    return save_artifact(model, manifest, out)
