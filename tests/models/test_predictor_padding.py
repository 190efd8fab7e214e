"""Batch padding of the Keras predictor on JAX: fixed shapes, the same scores as unpadded calls."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from genretag.models.predictor import padded_size

JAX_SCRIPT = """
import keras, numpy as np
from genretag.models.artifact import ArtifactManifest
from genretag.models.predictor import KerasPredictor, warm_up
assert keras.backend.backend() == "jax"
inputs = keras.Input((64,))
model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8)(inputs)))
manifest = ArtifactManifest(kind="keras", architecture="t", labels=["a", "b", "c"], output="softmax",
                            sample_rate=8000, window_seconds=0.008, hop_seconds=0.008, model_file="m")
p = KerasPredictor(manifest, model)
assert p.pad_batches
sizes = set()
class Recording:
    def predict_on_batch(self, x):
        sizes.add(len(x))
        return model.predict_on_batch(x)
p.model = Recording()
warm_up(p, 5)
assert sizes == {1, 2, 4, 8}, sizes
sizes.clear()
x = np.random.default_rng(0).normal(size=(13, 64)).astype(np.float32)
one_by_one = np.concatenate([p.predict(x[i:i + 1]) for i in range(13)])
for n in (3, 5, 8, 13):
    got = p.predict(x[:n])
    assert got.shape == (n, 3), got.shape
    np.testing.assert_allclose(got, one_by_one[:n], rtol=1e-5, atol=1e-6)
assert sizes == {1, 4, 8, 16}, sizes  # the shapes the model was compiled for
print("ok")
"""


def test_padded_sizes_are_powers_of_two_at_or_above_the_batch() -> None:
    assert [padded_size(n) for n in (1, 2, 3, 4, 5, 63, 64, 65, 1000)] == [1, 2, 4, 4, 8, 64, 64, 128, 1024]


@pytest.mark.slow
def test_jax_predictor_pads_batches_and_returns_the_unpadded_scores() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
