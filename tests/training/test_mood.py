"""The mood-quadrant head: it learns, its folds keep artists apart, and it beats chance on real clips."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from genretag.training.backbone_train import HeadConfig
from genretag.training.layouts import LayoutError
from genretag.training.mood import (
    QUADRANTS,
    cached_mood_corpus,
    embed_mood_corpus,
    fit_mood_head,
    macro_f1,
    mood_cv,
    mood_folds,
    mood_metrics,
    pool_clips,
    read_mood_manifest,
)
from genretag.training.source_cv import clip_scores, head_logits

MER4Q = Path(__file__).resolve().parents[3] / "shared" / "data" / "mer4q" / "manifest.csv"
CACHE = Path(__file__).resolve().parents[3] / "cache" / "emb"


def synthetic(
    n_clips: int = 80, windows: int = 6, dim: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Window features whose quadrant sits in the first two dimensions (arousal, valence), plus noise."""
    rng = np.random.default_rng(seed)
    quadrants = np.arange(n_clips) % 4
    centre = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], float)[quadrants] * 4.0
    clip_index = np.repeat(np.arange(n_clips), windows)
    x = rng.normal(size=(n_clips * windows, dim))
    x[:, :2] += centre[clip_index]
    groups = np.array([f"artist-{i // 2}" for i in range(n_clips)])  # two clips an artist
    return x, quadrants, clip_index, groups


def test_the_head_learns_a_separable_problem() -> None:
    x, q, ci, _ = synthetic()
    head = fit_mood_head(x, q, ci, C=0.1)
    scores = clip_scores(head_logits(head, x), ci, len(q))
    assert (scores.argmax(axis=1) == q).all()
    assert head.coef.shape == (4, x.shape[1])
    kernel, bias = head.folded()  # one Dense at serving time
    assert np.allclose(x @ kernel + bias, head_logits(head, x), atol=1e-3)


def test_cv_figures_on_a_separable_problem() -> None:
    x, q, ci, g = synthetic()
    r = mood_cv(x, q, ci, g, C=0.1)
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0
    assert np.array(r["confusion"]).trace() == len(q)
    assert r["chance"] == {"uniform": 0.25, "majority": 0.25}
    nested = mood_cv(x, q, ci, g, c_grid=(0.01, 0.1), n_folds=3, inner_folds=2)
    assert nested["accuracy"] >= 0.95 and len(nested["C"]) == 3 and set(nested["inner"][0]) == {"0.01", "0.1"}
    pooled = mood_cv(x, q, ci, g, C=1.0, pooling="mean_std")
    assert pooled["accuracy"] == 1.0


def test_noise_scores_near_chance() -> None:
    x, q, ci, g = synthetic(n_clips=120)
    rng = np.random.default_rng(1)
    r = mood_cv(rng.normal(size=x.shape), q, ci, g, C=0.01)
    assert r["accuracy"] < 0.45


def test_folds_never_share_an_artist() -> None:
    rng = np.random.default_rng(0)
    groups = np.array([f"a{i}" for i in rng.integers(0, 60, size=300)])
    quadrants = rng.integers(0, 4, size=300)
    folds = mood_folds(quadrants, groups, 5, seed=0)
    assert np.sum(folds, axis=0).tolist() == [1] * 300  # each clip tested exactly once
    for test in folds:
        assert not set(groups[test]) & set(groups[~test])
        assert set(quadrants[test]) == {0, 1, 2, 3}  # stratified


def test_metrics_and_pooling() -> None:
    q = np.array([0, 0, 1, 2, 3, 3])
    p = np.eye(4)[[0, 1, 1, 2, 3, 0]]
    m = mood_metrics(p, q)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_quadrant_recall"] == {"Q1 happy": 0.5, "Q2 tense": 1.0, "Q3 sad": 1.0, "Q4 calm": 0.5}
    assert m["confusion"][0] == [1, 1, 0, 0] and m["chance"]["majority"] == pytest.approx(2 / 6)
    assert macro_f1(q, p.argmax(axis=1)) == pytest.approx(np.mean([0.5, 2 / 3, 1.0, 2 / 3]))
    x = np.array([[1.0], [3.0], [5.0], [5.0]])
    pooled = pool_clips(x, np.array([0, 0, 1, 1]), 2, "mean_std")
    assert pooled.tolist() == [[2.0, 1.0], [5.0, 0.0]]
    with pytest.raises(ValueError, match="pooling"):
        pool_clips(x, np.array([0, 0, 1, 1]), 2, "max")


def test_manifest_reading(tmp_path: Path) -> None:
    folder = tmp_path / "moods"
    folder.mkdir()
    manifest = folder / "manifest.csv"
    rows = [
        {"path": "a.mp3", "labels": "jazz", "artist": "X", "mood_quadrant": "Q2"},
        {"path": "b.mp3", "labels": "jazz", "artist": "Y", "mood_quadrant": ""},
        {"path": "c.mp3", "labels": "pop", "artist": "x", "mood_quadrant": "Q4"},
    ]
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    clips, quadrants = read_mood_manifest(manifest)
    assert [c.clip_id for c in clips] == ["moods/a.mp3", "moods/c.mp3"] and quadrants.tolist() == [1, 3]
    assert clips[0].group == clips[1].group  # artist groups are case-folded
    rows[0]["mood_quadrant"] = "Q5"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(LayoutError, match="Q5"):
        read_mood_manifest(manifest)


@pytest.mark.slow
def test_real_clips_beat_chance(tmp_path: Path) -> None:
    """80 mer4q clips (20 a quadrant): the head trained on 40 artists' clips scores the other 40 well
    above chance.  Embeddings come from the genre recipe's cache where it is (beside the checkout), else
    they are computed (about a minute)."""
    if not MER4Q.is_file():
        pytest.skip(f"needs the mer4q collection ({MER4Q})")
    clips, quadrants = read_mood_manifest(MER4Q)
    picked = np.concatenate([np.flatnonzero(quadrants == k)[:40:2] for k in range(len(QUADRANTS))])
    clips = [clips[i] for i in picked]
    config = HeadConfig()
    cache = CACHE if CACHE.is_dir() else tmp_path
    corpus = cached_mood_corpus(clips, quadrants[picked], config, cache) or embed_mood_corpus(
        clips, quadrants[picked], config, cache
    )
    x = corpus.select(config.variants, config.layers)
    r = mood_cv(
        x, corpus.quadrants, corpus.clip_index, corpus.groups, C=0.003, n_folds=2, levels_db=corpus.levels_db
    )
    assert r["clips"] == 80
    assert r["accuracy"] > 0.45 and r["macro_f1"] > 0.4
