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
    loso, artist = m.dev_metrics["leave_one_source_out"], m.dev_metrics["artist_grouped_cv"]
    assert set(loso["per_source"]) == {"emotify", "gtzan", "mer4q"}
    assert loso["hit_at_1"] > 0.6 and loso["macro_roc_auc"] > 0.85
    assert artist["folds"] == 5 and artist["hit_at_1"] > 0.7 and artist["macro_roc_auc"] > 0.9
    assert artist["per_genre_recall"]["blues"] is not None  # blues has many artists with mer4q
    assert m.training_data["clips"] == 1152
    assert 0.5 < m.calibration["temperature"] < 5 and 0 < m.calibration["min_confidence"] < 0.5


def test_default_model_tags_the_demo_loop_as_electronic(predictor: Predictor) -> None:
    result = classify_file(predictor, REPO / "cli" / "demo" / "demo-electronic.flac")
    assert result.label == "electronic"


@pytest.mark.slow
def test_loads_in_a_process_that_imported_keras_first() -> None:
    """The custom layers register whoever imported Keras first (a bug once made loading depend on it)."""
    import subprocess
    import sys

    script = (
        "import keras\nfrom genretag.models.bundled import bundled_model_dir\n"
        "from genretag.models.predictor import load_predictor\n"
        "print(len(load_predictor(bundled_model_dir(), runtime='keras').manifest.labels))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "11", done.stderr[-2000:]
