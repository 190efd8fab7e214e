"""LogMelFrontEnd reproduces librosa's mel spectrogram + musicnn's log compression."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import keras
import librosa
import numpy as np
import pytest

from genretag.models.frontend import LogMelFrontEnd, n_frames
from genretag.pipeline.audio import decode

SR = 16000
WINDOW = 47616


def librosa_log_mel(y: np.ndarray) -> np.ndarray:
    """The reference: librosa defaults, log done in float64 (never float16)."""
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=256, n_mels=96)
    return np.log10(10000.0 * mel.T.astype(np.float64) + 1.0)


@pytest.fixture(scope="module")
def metal_audio(shared_music: Path) -> np.ndarray:
    """A loud real clip: about 0.3 % of its mel bins exceed float16's 6.55 limit after x10000."""
    with open(shared_music / "manifest.csv", newline="") as f:
        path = min(row["path"] for row in csv.DictReader(f) if row["labels"] == "metal")
    return decode(shared_music / path, sr=SR, max_seconds=12.0)


def test_frame_count_matches_librosa() -> None:
    assert n_frames(WINDOW) == 187
    assert librosa_log_mel(np.zeros(WINDOW, np.float32)).shape == (187, 96)
    assert LogMelFrontEnd().compute_output_shape((None, WINDOW)) == (None, 187, 96)


def test_matches_librosa_on_real_audio(metal_audio: np.ndarray) -> None:
    windows = np.stack([metal_audio[i * WINDOW : (i + 1) * WINDOW] for i in range(4)])
    got = keras.ops.convert_to_numpy(LogMelFrontEnd()(windows))
    want = np.stack([librosa_log_mel(w) for w in windows])
    assert got.shape == want.shape == (4, 187, 96)
    assert got.dtype == np.float32
    assert want.max() > np.log10(10000 * 6.55 + 1)  # the float16 trap is exercised
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


def test_whole_clip_of_any_length(metal_audio: np.ndarray) -> None:
    clip = metal_audio[: 5 * SR + 123]
    got = keras.ops.convert_to_numpy(LogMelFrontEnd()(clip[None]))[0]
    np.testing.assert_allclose(got, librosa_log_mel(clip), rtol=1e-5, atol=2e-5)


def test_config_round_trip() -> None:
    layer = LogMelFrontEnd(sample_rate=22050, n_fft=1024, hop_length=512, n_mels=64, name="fe")
    clone = LogMelFrontEnd.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.dtype == "float32"


def test_rejects_non_positive_parameters() -> None:
    with pytest.raises(ValueError, match="positive"):
        LogMelFrontEnd(hop_length=0)


JAX_SCRIPT = """
import sys
import keras, numpy as np
from genretag.models.frontend import LogMelFrontEnd
assert keras.backend.backend() == "jax"
np.save(sys.argv[2], keras.ops.convert_to_numpy(LogMelFrontEnd()(np.load(sys.argv[1]))))
"""


@pytest.mark.slow
def test_jax_backend_matches_librosa(metal_audio: np.ndarray, tmp_path: Path) -> None:
    """The layer uses keras.ops only, so the JAX backend must give the same features."""
    window = metal_audio[:WINDOW][None]
    np.save(tmp_path / "x.npy", window)
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(got[0], librosa_log_mel(window[0]), rtol=1e-5, atol=2e-5)
