"""Per-window loudness normalisation as a Keras layer.

The pretrained front end compresses mel power with ``log10(1 + 10000 M)``,
which is not gain-invariant, and in the training clips loudness correlates
with genre (quiet classical recordings, loud pop masters).  A model fed raw
levels learns "quiet means classical" and misfiles a loud modern master.  Scaling every window
to the same RMS before the backbone removes that shortcut; the gain is capped
so near-silent windows are not blown up into noise.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="genretag")
class RmsNormalization(keras.layers.Layer):
    """Scale each ``(batch, samples)`` window to ``target_db`` dBFS RMS, gaining at most ``max_gain_db``."""

    def __init__(self, target_db: float = -14.0, max_gain_db: float = 30.0, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.target_db = float(target_db)
        self.max_gain_db = float(max_gain_db)

    def call(self, pcm: Any) -> Any:
        pcm = ops.cast(pcm, "float32")
        rms = ops.sqrt(ops.mean(ops.square(pcm), axis=-1, keepdims=True) + 1e-12)
        target = 10.0 ** (self.target_db / 20.0)
        gain = ops.minimum(target / rms, 10.0 ** (self.max_gain_db / 20.0))
        return pcm * gain

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_db": self.target_db, "max_gain_db": self.max_gain_db}
