"""The numpy front end of the serving runtime computes what the Keras layers it replaces compute."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import scipy.signal

from genretag.models.frontend import LogMelFrontEnd
from genretag.models.loudness import RmsNormalization
from genretag.models.spectrum import SpectrumFrontEnd, periodic_hann
from genretag.pipeline.synth import electronic_loop

SAMPLES = 47616


def _windows() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLES, dtype=np.float32) / 16000
    return np.stack(
        [
            electronic_loop(SAMPLES / 16000 + 0.1, 16000, seed=3)[:SAMPLES],
            0.3 * rng.standard_normal(SAMPLES).astype(np.float32),
            (0.001 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),  # quiet: the gain cap applies
            np.zeros(SAMPLES, np.float32),
        ]
    ).astype(np.float32)


@pytest.mark.parametrize("normalize_db", [-14.0, None])
def test_spectrum_and_mel_compression_reproduce_the_keras_front_end(normalize_db: float | None) -> None:
    pcm = keras.Input((SAMPLES,))
    x = pcm if normalize_db is None else RmsNormalization(target_db=normalize_db)(pcm)
    log_mel = LogMelFrontEnd()
    keras_front = keras.Model(pcm, log_mel(x))
    windows = _windows()
    expected = np.asarray(keras_front.predict_on_batch(windows))

    power = SpectrumFrontEnd(normalize_db=normalize_db)(windows)
    got = np.asarray(log_mel.power_to_log_mel()(power))

    assert power.dtype == np.float32 and power.shape == (4, 187, 257)
    assert got.shape == expected.shape == (4, 187, 96)
    np.testing.assert_allclose(got, expected, atol=2e-4)


def test_periodic_hann_is_the_stft_window_of_librosa_and_scipy() -> None:
    reference = scipy.signal.get_window("hann", 512, fftbins=True)
    np.testing.assert_allclose(periodic_hann(512), reference, atol=1e-7)


def test_silence_stays_finite_and_bad_shapes_are_refused() -> None:
    front = SpectrumFrontEnd()
    assert np.all(front(np.zeros((2, SAMPLES), np.float32)) == 0)
    with pytest.raises(ValueError, match=r"\(n, samples\)"):
        front(np.zeros(SAMPLES, np.float32))
    with pytest.raises(TypeError):
        SpectrumFrontEnd(**{"n_fft": 512, "window": "hamming"})  # as from a manifest's serving.front_end
