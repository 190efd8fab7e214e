"""Artifact save/load/validate: a broken or tampered artifact is refused with the field named."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from genretag.models.artifact import ArtifactError, ArtifactManifest
from genretag.models.predictor import load_predictor, save_artifact

SR = 8000
WINDOW_S = 0.5
LABELS = ["a", "b", "c"]


def _tiny_model() -> keras.Model:
    inputs = keras.Input((int(SR * WINDOW_S),))
    x = keras.layers.Reshape((-1, 1))(inputs)
    x = keras.layers.Conv1D(4, 16, strides=8, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax")(x))


def _manifest(**overrides: object) -> ArtifactManifest:
    fields: dict[str, object] = dict(
        kind="keras",
        architecture="tiny",
        labels=LABELS,
        output="softmax",
        sample_rate=SR,
        window_seconds=WINDOW_S,
        hop_seconds=0.25,
        model_file="",
    )
    fields.update(overrides)
    return ArtifactManifest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    out = tmp_path / "art"
    save_artifact(_tiny_model(), _manifest(), out)
    return out


def test_round_trip_predicts_probabilities(artifact: Path) -> None:
    predictor = load_predictor(artifact)
    scores = predictor.predict(np.random.default_rng(0).standard_normal((5, 4000)).astype(np.float32))
    assert scores.shape == (5, 3)
    assert np.allclose(scores.sum(axis=1), 1, atol=1e-5)
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["files"]["model.keras"] and manifest["format_version"] == 1
    assert artifact.stat().st_mode & 0o777 == 0o755  # readable by a service user


def test_tampered_model_file_is_refused(artifact: Path) -> None:
    path = artifact / "model.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="'files'.*tampered"):
        load_predictor(artifact)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("labels", ["a", "a", "b"], "'labels': duplicate"),
        ("labels", ["a", "b", "c", "d"], "'labels': model output 'genre' has 3 scores"),
        ("sample_rate", 16000, "'window_seconds': model takes 4000"),
        ("kind", "pickle", "'kind'"),
        ("format_version", 99, "'format_version'"),
        ("created_at", None, "'created_at'"),
    ],
)
def test_inconsistent_manifest_is_refused(artifact: Path, field: str, value: object, message: str) -> None:
    path = artifact / "manifest.json"
    raw = json.loads(path.read_text())
    raw[field] = value
    path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=message):
        load_predictor(artifact)


def test_missing_and_unknown_fields(artifact: Path) -> None:
    path = artifact / "manifest.json"
    raw = json.loads(path.read_text())
    raw["surprise"] = 1
    path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="'surprise': unknown"):
        load_predictor(artifact)
    del raw["surprise"], raw["labels"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="'labels': missing"):
        load_predictor(artifact)


def test_broken_export_never_replaces_a_good_artifact(artifact: Path) -> None:
    """A model whose outputs are not probabilities fails the post-save check; the old artifact stays."""
    before = (artifact / "manifest.json").read_text()
    inputs = keras.Input((4000,))
    bad = keras.Model(inputs, keras.layers.Dense(3)(inputs))  # logits, not probabilities
    with pytest.raises(ArtifactError):
        save_artifact(bad, _manifest(), artifact)
    assert (artifact / "manifest.json").read_text() == before
    assert not list(artifact.parent.glob(".art.*"))


def test_lambda_layers_are_not_deserialised(tmp_path: Path) -> None:
    """Safe mode: an artifact carrying a Python lambda is refused, not executed."""
    out = tmp_path / "lam"
    inputs = keras.Input((4000,))
    x = keras.layers.Lambda(lambda t: t * 1.0)(inputs)
    x = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, x)
    with pytest.raises(ArtifactError, match="cannot load"):
        save_artifact(model, _manifest(), out)


def test_a_fifo_manifest_is_refused_without_blocking(artifact: Path) -> None:
    """A manifest that is a FIFO would block ``open()`` for ever; the daemon must fail fast instead."""
    import os

    (artifact / "manifest.json").unlink()
    os.mkfifo(artifact / "manifest.json")
    with pytest.raises(ArtifactError, match="not a regular file"):
        load_predictor(artifact)


def _tiny_model_with_heads() -> keras.Model:
    """Genre and two heads (speech softmax, tags sigmoid) on one trunk, in the manifest's output order."""
    inputs = keras.Input((int(SR * WINDOW_S),))
    x = keras.layers.Reshape((-1, 1))(inputs)
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Conv1D(4, 16, strides=8, activation="relu")(x))
    genre = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    speech = keras.layers.Dense(2, activation="softmax")(x)
    tags = keras.layers.Dense(3, activation="sigmoid")(x)
    return keras.Model(inputs, [genre, speech, tags])


HEADS = {
    "speech": {"labels": ["music", "speech"], "output": "softmax"},
    "tags": {"labels": ["vocals", "guitar", "piano"], "output": "sigmoid"},
}


def test_heads_round_trip_as_named_outputs(tmp_path: Path) -> None:
    predictor = save_artifact(_tiny_model_with_heads(), _manifest(heads=HEADS), tmp_path / "art")
    windows = np.random.default_rng(1).standard_normal((4, 4000)).astype(np.float32)
    outputs = load_predictor(tmp_path / "art").predict_outputs(windows)
    assert list(outputs) == ["genre", "speech", "tags"]
    assert [o.shape for o in outputs.values()] == [(4, 3), (4, 2), (4, 3)]
    assert np.allclose(outputs["speech"].sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(predictor.predict(windows), outputs["genre"])


@pytest.mark.parametrize(
    ("heads", "message"),
    [
        (
            {"speech": {"labels": ["talk", "music"], "output": "softmax"}, "tags": HEADS["tags"]},
            "'heads.speech': labels must be",
        ),
        ({"tags": HEADS["tags"], "speech": HEADS["speech"]}, "'heads': names must be"),
        ({"speech": HEADS["speech"], "weather": HEADS["tags"]}, "'heads': names must be"),
        (
            {"speech": HEADS["speech"], "tags": {"labels": ["a", "a", "b"], "output": "sigmoid"}},
            "'heads.tags': duplicate",
        ),
        (
            {"speech": HEADS["speech"], "tags": {"labels": ["a", "b", "c"], "output": "relu"}},
            "'heads.tags': 'output'",
        ),
    ],
)
def test_bad_heads_are_refused(tmp_path: Path, heads: dict[str, object], message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        save_artifact(_tiny_model_with_heads(), _manifest(heads=heads), tmp_path / "art")


def test_a_head_the_model_lacks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="'heads': model has 1 outputs, manifest names 2"):
        save_artifact(_tiny_model(), _manifest(heads={"speech": HEADS["speech"]}), tmp_path / "art")
