"""The manifest factory: each family's typed ``features`` serialise to the keys artifacts already hold."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from genretag.models.artifact import read_manifest
from genretag.models.bundled import bundled_model_dir
from genretag.models.features import FeatureConfig
from genretag.models.manifest_features import (
    KerasFeatures,
    ModelFeatures,
    StudentFeatures,
    TaggerFeatures,
    features_json,
    new_manifest,
)

WINDOW = {"labels": ["a", "b"], "sample_rate": 16000, "window_seconds": 3.0, "hop_seconds": 1.5}


@pytest.mark.parametrize(("name", "schema"), [("default", TaggerFeatures), ("fast", StudentFeatures)])
def test_the_bundled_manifests_features_are_their_schema_unchanged(name: str, schema: type) -> None:
    manifest = read_manifest(bundled_model_dir(name))
    features = schema(**manifest.features)
    assert features_json(features) == manifest.features
    assert new_manifest(features, **WINDOW).architecture == manifest.architecture


@pytest.mark.parametrize(("features", "kind"), [(KerasFeatures(), "keras"), (FeatureConfig(), "sklearn")])
def test_the_family_sets_the_kind_and_the_others_name_their_architecture(
    features: ModelFeatures, kind: str
) -> None:
    manifest = new_manifest(features, architecture="x", **WINDOW)
    assert (manifest.kind, manifest.architecture, manifest.features) == (kind, "x", asdict(features))
    with pytest.raises(ValueError, match="name the architecture"):
        new_manifest(features, **WINDOW)


def test_a_musicnn_family_keeps_its_architecture_and_leaves_out_an_empty_distillation() -> None:
    student = StudentFeatures(normalize_db=None, teacher={}, student={})
    assert "distillation" not in features_json(student)
    assert new_manifest(student, **WINDOW).architecture == "musicnn-student"
    with pytest.raises(ValueError, match="describes 'musicnn-student'"):
        new_manifest(student, architecture="musicnn", **WINDOW)
