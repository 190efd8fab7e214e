"""The Keras musicnn port against the original checkpoints, the original TF1 graph and real music.

The reference is the ``musicnn==0.1.0`` wheel, from the ``musicnn_wheel`` fixture
(``GENRETAG_MUSICNN_WHEEL``, else downloaded into ``.cache/musicnn``): a port that is
not checked against its checkpoints could be running random weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import librosa
import numpy as np
import pytest
from helpers.musicnn_reference import (
    assert_tags_separate_classical_from_metal,
    classical_and_metal_windows,
    run_checkpoint_graph,
)

from genretag.models.musicnn import (
    VARIANTS,
    WINDOW_SAMPLES,
    backbone_weights,
    build_musicnn_architecture,
    build_musicnn_backbone,
    default_weights_path,
    mel_network,
    set_backbone_weights,
    tag_names,
)
from tools.musicnn_convert import (
    checkpoint_name,
    checkpoint_prefix,
    read_checkpoint,
)

OUTPUT_DIMS = {"taggram": 50, "penultimate": 200, "mean_pool": 753, "max_pool": 753}
CLIPS_PER_GENRE = 2
WINDOWS_PER_CLIP = 3
#: Tensors of the original training graph (TF 1.12, musicnn's models.py), fed with
#: "model/Placeholder" = log-mel patches and "model/Placeholder_2" = is_training.
TF1_FETCHES = {
    "taggram": "model/Sigmoid:0",
    "penultimate": "model/batch_normalization_10/batchnorm/add_1:0",
    "mean_pool": "model/moments/Squeeze:0",
    "max_pool": "model/Max:0",
}


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def backbone(variant: str) -> keras.Model:
    return build_musicnn_backbone(variant)


@pytest.fixture(scope="module")
def checkpoint(musicnn_package: Path, variant: str) -> dict[str, np.ndarray]:
    return read_checkpoint(checkpoint_prefix(musicnn_package, variant))


@pytest.fixture(scope="module")
def clip_windows(shared_music: Path) -> dict[str, np.ndarray]:
    return classical_and_metal_windows(shared_music, CLIPS_PER_GENRE, WINDOWS_PER_CLIP)


def test_input_and_output_contract(backbone: keras.Model, variant: str) -> None:
    assert tuple(backbone.input.shape) == (None, WINDOW_SAMPLES)
    # Librosa's centred STFT of the window gives exactly the 187 training frames.
    frames = librosa.util.frame(np.zeros(WINDOW_SAMPLES + 512), frame_length=512, hop_length=256)
    assert frames.shape[1] == 187
    assert tuple(backbone.get_layer("log_mel").output.shape) == (None, 187, 96)
    assert {name: int(t.shape[-1]) for name, t in backbone.output.items()} == OUTPUT_DIMS
    names = tag_names(variant)
    assert len(names) == len(set(names)) == 50


def test_weight_file_equals_checkpoint(variant: str, checkpoint: dict[str, np.ndarray]) -> None:
    with np.load(default_weights_path(variant), allow_pickle=False) as archive:
        stored = {key: archive[key] for key in archive.files}
    # One stored array per checkpoint model variable, none left out, none twice.
    assert sorted(checkpoint_name(key) for key in stored) == sorted(checkpoint)
    for key, value in stored.items():
        source = checkpoint[checkpoint_name(key)]
        assert value.size == source.size, key
        np.testing.assert_array_equal(value.ravel(), source.ravel(), err_msg=key)


def test_backbone_holds_checkpoint_values(backbone: keras.Model, checkpoint: dict[str, np.ndarray]) -> None:
    restored = backbone_weights(backbone)
    assert len(restored) == len(checkpoint)
    np.testing.assert_array_equal(restored["timbral_7x38_conv/kernel"], checkpoint["conv2d/kernel"])
    np.testing.assert_array_equal(restored["midend_1_conv/kernel"], checkpoint["conv2d_5/kernel"][:, :, 0, :])
    for key, value in restored.items():
        np.testing.assert_array_equal(value.ravel(), checkpoint[checkpoint_name(key)].ravel(), err_msg=key)


def tf1_reference(package_dir: Path, variant: str, mel: np.ndarray) -> dict[str, np.ndarray]:
    """The checkpoint's own training graph on log-mel patches (``run_checkpoint_graph``)."""
    out = run_checkpoint_graph(checkpoint_prefix(package_dir, variant), TF1_FETCHES, mel)
    return {name: value.reshape(len(mel), -1) for name, value in out.items()}


@pytest.fixture(scope="module")
def clip_outputs(
    backbone: keras.Model, clip_windows: dict[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """Backbone outputs per genre, ``(clips * windows, dim)`` each, in ``clip_windows`` order."""
    return {
        genre: backbone.predict_on_batch(windows.reshape(-1, WINDOW_SAMPLES))
        for genre, windows in clip_windows.items()
    }


@pytest.mark.slow
def test_agrees_with_original_tf1_graph(
    backbone: keras.Model,
    variant: str,
    musicnn_package: Path,
    clip_windows: dict[str, np.ndarray],
    clip_outputs: dict[str, dict[str, np.ndarray]],
) -> None:
    """Same log-mel patches into both networks; the first window of every clip."""
    pcm = np.concatenate([windows[:, 0] for windows in clip_windows.values()])
    mel = keras.ops.convert_to_numpy(backbone.get_layer("log_mel")(pcm))
    want = tf1_reference(musicnn_package, variant, mel)
    got = {name: keras.ops.convert_to_numpy(value) for name, value in mel_network(backbone)(mel).items()}
    np.testing.assert_allclose(got["taggram"], want["taggram"], rtol=0, atol=1e-5)
    # Deep float32 sums (up to 7 x 561 terms per conv output) accumulate in a
    # different order than in TF1, hence the looser bound on the features.
    for name in ("penultimate", "mean_pool", "max_pool"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-4, err_msg=name)
    # The PCM model is the same network behind the in-graph front end.
    first_windows = np.concatenate(
        [outputs["taggram"][::WINDOWS_PER_CLIP] for outputs in clip_outputs.values()]
    )
    np.testing.assert_allclose(first_windows, want["taggram"], rtol=0, atol=1e-5)


def test_tags_separate_classical_from_metal(
    variant: str, clip_outputs: dict[str, dict[str, np.ndarray]]
) -> None:
    assert_tags_separate_classical_from_metal(variant, tag_names(variant), clip_outputs, CLIPS_PER_GENRE)


@pytest.mark.slow
def test_keras_archive_round_trip(backbone: keras.Model, tmp_path: Path) -> None:
    path = tmp_path / "musicnn.keras"
    backbone.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    pcm = 0.1 * np.random.default_rng(0).standard_normal((2, WINDOW_SAMPLES)).astype(np.float32)
    want = backbone.predict_on_batch(pcm)
    got = loaded.predict_on_batch(pcm)
    for name in OUTPUT_DIMS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_weight_loading_is_strict() -> None:
    model = build_musicnn_architecture()
    weights = backbone_weights(model)
    with pytest.raises(ValueError, match="missing"):
        set_backbone_weights(model, {k: v for k, v in weights.items() if k != "logits/bias"})
    with pytest.raises(ValueError, match="shapes"):
        set_backbone_weights(model, {**weights, "logits/bias": np.zeros(49, np.float32)})
    with pytest.raises(ValueError, match="unknown musicnn variant"):
        tag_names("GTZAN_musicnn")


JAX_SCRIPT = """
import sys
import keras, numpy as np
from genretag.models.musicnn import build_musicnn_backbone
assert keras.backend.backend() == "jax"
out = build_musicnn_backbone("MSD_musicnn").predict_on_batch(np.load(sys.argv[1]))
np.savez(sys.argv[2], **out)
"""


@pytest.mark.slow
def test_jax_backend_matches(clip_windows: dict[str, np.ndarray], tmp_path: Path) -> None:
    pcm = np.stack([clip_windows["classical"][0, 0], clip_windows["metal"][0, 0]])
    np.save(tmp_path / "pcm.npy", pcm)
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "pcm.npy"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": "jax"},
        timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = build_musicnn_backbone("MSD_musicnn").predict_on_batch(pcm)
    with np.load(tmp_path / "out.npz") as got:
        for name in OUTPUT_DIMS:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)
