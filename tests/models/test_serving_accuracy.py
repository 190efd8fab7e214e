"""The bundled models keep their accuracy when served through OpenVINO (bfloat16 where the CPU has it)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from genretag.models.bundled import resolve_model
from genretag.models.clip_scoring import classify_file
from genretag.models.predictor import Predictor, load_predictor
from genretag.training.metrics import summarize

CLIP_STEP = 8  # every 8th clip of music/: 48 clips of all 11 genres and both sources
WINDOWS_PER_CLIP = 6


def _clip_scores(predictor: Predictor, paths: list[Path]) -> np.ndarray:
    """Clip scores by the rule ``classify`` uses (spread, non-silent windows, averaged)."""
    return np.stack([classify_file(predictor, path, WINDOWS_PER_CLIP).clip_scores for path in paths])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "fast"])
def test_served_clip_metrics_match_keras_within_0_01(name: str, shared_music: Path) -> None:
    served = load_predictor(resolve_model(name))
    reference = load_predictor(resolve_model(name), runtime="keras")
    labels = served.manifest.labels
    with open(shared_music / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))[::CLIP_STEP]
    paths = [shared_music / row["path"] for row in rows]
    truth = np.array([[label in row["labels"].split(";") for label in labels] for row in rows])

    got = summarize(_clip_scores(served, paths), truth, labels)
    expected = summarize(_clip_scores(reference, paths), truth, labels)

    for key in ("hit_at_1", "macro_roc_auc", "mean_per_genre_recall"):
        assert abs(got[key] - expected[key]) <= 0.01, (key, got[key], expected[key])
