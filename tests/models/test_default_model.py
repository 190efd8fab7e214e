"""The bundled default model: present, valid, small, documented, and working on the demo audio."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from genretag.models.bundled import bundled_model_dir
from genretag.models.clip_scoring import classify_file
from genretag.models.predictor import Predictor, load_predictor

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return load_predictor(bundled_model_dir())


def test_default_model_is_valid_and_small(predictor: Predictor, shared_music: Path) -> None:
    size = sum(p.stat().st_size for p in bundled_model_dir().iterdir())
    assert size <= 20 * 1024 * 1024
    with open(shared_music / "manifest.csv", newline="") as f:
        labels = sorted({label for row in csv.DictReader(f) for label in row["labels"].split(";")})
    m = predictor.manifest
    assert m.labels == labels and m.kind == "keras" and m.architecture == "musicnn"
    cv = m.dev_metrics["cross_validation"]
    assert cv["folds"] == 5 and cv["per_genre_recall"]["blues"] is None  # single artist: not measurable
    assert cv["hit_at_1"] > 0.7 and cv["macro_roc_auc"] > 0.9


def test_default_model_tags_the_demo_loop_as_electronic(predictor: Predictor) -> None:
    result = classify_file(predictor, REPO / "cli" / "demo" / "demo-electronic.flac")
    assert result.label == "electronic"
