"""The Keras port of the musicnn wheel's vgg taggers against their checkpoints and TF1 graphs, on real music.

The reference is the ``musicnn==0.1.0`` wheel, from the ``musicnn_wheel`` fixture
(``GENRETAG_MUSICNN_WHEEL``, else downloaded into ``.cache/musicnn``).  Without it these tests
fail: a port that is not checked against its checkpoints could be running random
weights.  The vgg weights are not bundled with the package (they did not improve
the default tagger, see ``models/musicnn_vgg.py``), so the tests convert them
into a temporary directory with the converter's own command.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.musicnn_reference import (
    assert_tags_separate_classical_from_metal,
    classical_and_metal_windows,
    run_checkpoint_graph,
)

from genretag.models.musicnn import WINDOW_SAMPLES, backbone_weights, mel_network
from genretag.models.musicnn_vgg import (
    OUTPUT_DIMS,
    VGG_VARIANTS,
    build_vgg_architecture,
    build_vgg_backbone,
    tag_names,
)
from tools.musicnn_convert import (
    checkpoint_name,
    checkpoint_prefix,
    main,
    read_checkpoint,
)

CLIPS_PER_GENRE = 2
WINDOWS_PER_CLIP = 2
#: Tensors of the checkpoint's own training graph, fed with "model/Placeholder" = log-mel
#: patches and "model/Placeholder_2" = is_training.  ``bn5`` is the last block before pooling.
TF1_FETCHES = {
    "taggram": "model/Sigmoid:0",
    "pool5": "model/Flatten/flatten/Reshape:0",
    "bn5": "model/batch_normalization_5/cond/Merge:0",
}


@pytest.fixture(scope="session")
def vgg_package(musicnn_package: Path) -> Path:
    if not all((musicnn_package / variant / ".index").is_file() for variant in VGG_VARIANTS):
        pytest.fail(
            f"{musicnn_package} lacks the vgg checkpoints; point GENRETAG_MUSICNN_WHEEL at the wheel",
            pytrace=False,
        )
    return musicnn_package


@pytest.fixture(scope="session")
def weights_dir(vgg_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vgg_weights")
    main(["--wheel-dir", str(vgg_package), "--out", str(out), "--variants", *VGG_VARIANTS])
    return out


@pytest.fixture(scope="module", params=VGG_VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def backbone(variant: str, weights_dir: Path) -> keras.Model:
    return build_vgg_backbone(variant, weights_dir / f"{variant}.weights.npz")


@pytest.fixture(scope="module")
def checkpoint(vgg_package: Path, variant: str) -> dict[str, np.ndarray]:
    return read_checkpoint(checkpoint_prefix(vgg_package, variant))


@pytest.fixture(scope="module")
def clip_windows(shared_music: Path) -> dict[str, np.ndarray]:
    return classical_and_metal_windows(shared_music, CLIPS_PER_GENRE, WINDOWS_PER_CLIP)


def tf1_reference(package_dir: Path, variant: str, mel: np.ndarray) -> dict[str, np.ndarray]:
    """The checkpoint's own graph on log-mel patches, with the last block's pooling statistics."""
    out = run_checkpoint_graph(checkpoint_prefix(package_dir, variant), TF1_FETCHES, mel)
    bn5 = out.pop("bn5")
    return {**out, "mean_pool": bn5.mean(axis=(1, 2)), "max_pool": bn5.max(axis=(1, 2))}


def test_output_contract(backbone: keras.Model, variant: str) -> None:
    assert tuple(backbone.input.shape) == (None, WINDOW_SAMPLES)
    assert tuple(backbone.get_layer("log_mel").output.shape) == (None, 187, 96)
    assert {name: int(t.shape[-1]) for name, t in backbone.output.items()} == OUTPUT_DIMS
    assert len(set(tag_names(variant))) == 50


def test_weight_file_equals_checkpoint(
    variant: str, checkpoint: dict[str, np.ndarray], weights_dir: Path
) -> None:
    with np.load(weights_dir / f"{variant}.weights.npz", allow_pickle=False) as archive:
        stored = {key: archive[key] for key in archive.files}
    # One stored array per checkpoint model variable (optimizer state excluded), none left out.
    assert sorted(checkpoint_name(key, variant) for key in stored) == sorted(checkpoint)
    for key, value in stored.items():
        np.testing.assert_array_equal(value, checkpoint[checkpoint_name(key, variant)], err_msg=key)


def test_missing_weights_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="musicnn_convert"):
        build_vgg_backbone("MTT_vgg", tmp_path / "absent.npz")


def test_backbone_holds_checkpoint_values(
    backbone: keras.Model, variant: str, checkpoint: dict[str, np.ndarray]
) -> None:
    restored = backbone_weights(backbone)
    assert len(restored) == len(checkpoint)
    # A restored kernel equals the checkpoint's (the wheel's own loader would run on random
    # weights if its restore failed).
    np.testing.assert_array_equal(restored["conv2/kernel"], checkpoint["2CNN/kernel"])
    np.testing.assert_array_equal(restored["logits/kernel"], checkpoint["dense/kernel"])
    for key, value in restored.items():
        np.testing.assert_array_equal(value, checkpoint[checkpoint_name(key, variant)], err_msg=key)


@pytest.fixture(scope="module")
def clip_outputs(
    backbone: keras.Model, clip_windows: dict[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    return {
        genre: backbone.predict_on_batch(windows.reshape(-1, WINDOW_SAMPLES))
        for genre, windows in clip_windows.items()
    }


def test_agrees_with_original_tf1_graph(
    backbone: keras.Model,
    variant: str,
    vgg_package: Path,
    clip_windows: dict[str, np.ndarray],
    clip_outputs: dict[str, dict[str, np.ndarray]],
) -> None:
    """Same log-mel patches into both networks; every window of every clip."""
    pcm = np.concatenate([windows.reshape(-1, WINDOW_SAMPLES) for windows in clip_windows.values()])
    mel = keras.ops.convert_to_numpy(backbone.get_layer("log_mel")(pcm))
    want = tf1_reference(vgg_package, variant, mel)
    got = {name: keras.ops.convert_to_numpy(value) for name, value in mel_network(backbone)(mel).items()}
    np.testing.assert_allclose(got["taggram"], want["taggram"], rtol=0, atol=1e-5)
    for name in ("pool5", "mean_pool", "max_pool"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-4, err_msg=name)
    # The PCM model is the same network behind the in-graph front end.
    pcm_taggram = np.concatenate([outputs["taggram"] for outputs in clip_outputs.values()])
    np.testing.assert_allclose(pcm_taggram, want["taggram"], rtol=0, atol=1e-5)


def test_tags_separate_classical_from_metal(
    variant: str, clip_outputs: dict[str, dict[str, np.ndarray]]
) -> None:
    assert_tags_separate_classical_from_metal(variant, tag_names(variant), clip_outputs, CLIPS_PER_GENRE)


def test_keras_archive_round_trip(backbone: keras.Model, tmp_path: Path) -> None:
    path = tmp_path / "vgg.keras"
    backbone.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    pcm = 0.1 * np.random.default_rng(0).standard_normal((2, WINDOW_SAMPLES)).astype(np.float32)
    want, got = backbone.predict_on_batch(pcm), loaded.predict_on_batch(pcm)
    for name in OUTPUT_DIMS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown musicnn vgg variant"):
        build_vgg_architecture("MSD_musicnn")
    with pytest.raises(ValueError, match="unknown musicnn variant"):
        checkpoint_name("conv1/kernel", "GTZAN_vgg")
