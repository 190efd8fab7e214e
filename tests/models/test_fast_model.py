"""The bundled fast model: a drop-in for the default one (same labels and windows) that mimics it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from genretag.models.bundled import bundled_model_dir, resolve_model
from genretag.models.predictor import Predictor, load_predictor, window_spec
from genretag.pipeline.audio import decode
from genretag.pipeline.windows import spread_windows


@pytest.fixture(scope="module")
def fast() -> Predictor:
    return load_predictor(resolve_model("fast"))


def test_fast_model_is_a_small_drop_in_for_the_default(fast: Predictor) -> None:
    default = load_predictor(resolve_model(None))
    size = sum(p.stat().st_size for p in bundled_model_dir("fast").iterdir())
    assert size <= 4 * 1024 * 1024
    m, d = fast.manifest, default.manifest
    assert (m.labels, m.sample_rate, m.window_seconds, m.hop_seconds) == (
        d.labels,
        d.sample_rate,
        d.window_seconds,
        d.hop_seconds,
    )
    assert m.architecture == "musicnn-student"
    held_out = m.dev_metrics["cross_source_recipe_trained_on_music"]  # the recipe on a source it never saw
    assert set(held_out) >= {"student", "teacher", "previous_fast"}
    assert held_out["student"]["clips"] == 774 and held_out["student"]["macro_roc_auc"] > 0.8


@pytest.mark.slow
def test_fast_model_agrees_with_its_teacher_on_real_clips(fast: Predictor, shared_music: Path) -> None:
    """Clip-level top labels of student and teacher, every 25th shared clip (the student's training audio)."""
    teacher = load_predictor(resolve_model("default"))
    with open(shared_music / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))[::25]
    spec = window_spec(fast.manifest)
    agree = []
    for row in rows:
        windows, _ = spread_windows(decode(shared_music / row["path"], spec.sample_rate), spec, 6)
        agree.append(fast.predict(windows).mean(0).argmax() == teacher.predict(windows).mean(0).argmax())
    assert np.mean(agree) >= 0.8, f"{sum(agree)} of {len(agree)} clips agree"
