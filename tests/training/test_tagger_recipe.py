"""The default model's recipe: candidate sets, corpus, set head, cross-source figures, artifact."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from genretag.training.backbone_train import HeadConfig, fit_head
from genretag.training.corpus import artist_group, read_corpus
from genretag.training.label_sets import candidate_matrix, candidate_set, is_exact
from genretag.training.layouts import LayoutError
from genretag.training.set_head import fit_set_head, window_weights
from genretag.training.source_cv import (
    CorpusWindows,
    artist_folds,
    fit_temperature,
    out_of_fold,
    precision_at_coverage,
    set_metrics,
    source_folds,
)
from genretag.training.tagger_recipe import calibrated

NAMES = ["jazz", "metal", "pop", "rock"]


def test_pop_rock_means_one_of_pop_rock_or_metal() -> None:
    assert candidate_set(["pop", "rock"]) == {"pop", "rock", "metal"}
    assert candidate_set(["electronic", "pop", "rock"]) == {"electronic", "pop", "rock", "metal"}
    assert candidate_set(["pop"]) == {"pop"}
    matrix = candidate_matrix([["pop", "rock"], ["jazz"], ["reggae"]], NAMES)
    assert matrix.tolist() == [[0, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]]  # unknown genres dropped
    assert is_exact(matrix).tolist() == [False, True, False]


def _manifest(folder: Path, rows: list[dict[str, str]]) -> Path:
    folder.mkdir(parents=True)
    path = folder / "manifest.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_corpus_ids_sources_and_artists_across_collections(tmp_path: Path) -> None:
    a = _manifest(
        tmp_path / "music",
        [
            {"path": "x/1.mp3", "labels": "blues", "artist": "gtzan-artist-0", "source": "gtzan"},
            {"path": "x/2.mp3", "labels": "pop", "artist": "Some  Band", "source": "emotify"},
        ],
    )
    b = _manifest(
        tmp_path / "mer4q",
        [
            {"path": "x/1.mp3", "labels": "blues", "artist": "John Lee Hooker"},
            {"path": "x/3.mp3", "labels": "pop;rock", "artist": "some band"},
        ],
    )
    clips = read_corpus([a, b])
    assert [c.clip_id for c in clips] == ["music/x/1.mp3", "music/x/2.mp3", "mer4q/x/1.mp3", "mer4q/x/3.mp3"]
    assert [c.source for c in clips] == ["gtzan", "emotify", "mer4q", "mer4q"]  # folder name without a column
    assert clips[0].group == clips[2].group == artist_group("John Lee Hooker")  # a known alias
    assert clips[1].group == clips[3].group  # case and spacing do not split an artist
    assert clips[3].labels == ("pop", "rock")
    with pytest.raises(LayoutError, match="same clip id"):
        read_corpus([a, a])


def test_window_weights_give_each_clip_one_and_balance_genres_and_sources() -> None:
    candidates = np.array([[1, 0]] * 10 + [[0, 1]] * 2, np.float64)  # clip a: 10 windows; b, c: one each
    clip_ids = np.array(["a"] * 10 + ["b", "c"])
    w = window_weights(candidates, clip_ids)
    assert np.isclose(w[:10].sum(), w[10:].sum())  # genre 0 (one clip) weighs what genre 1 (two) does
    assert np.isclose(w[10], w[11])
    # source s: two clips, source t: four; both hold the two genres equally
    two_genres = np.array([[1, 0], [0, 1]] * 3, np.float64)
    sources = np.array(["s", "s", "t", "t", "t", "t"])
    ids = np.array(list("abcdef"))
    assert np.isclose(window_weights(two_genres, ids)[sources == "t"].sum(), 4)
    assert np.isclose(window_weights(two_genres, ids, sources)[sources == "t"].sum(), 3)  # half of six


def _blobs(rng: np.random.Generator, n: int, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = np.repeat(np.arange(len(centres)), n)
    return centres[k] + rng.normal(0, 1.0, (len(k), centres.shape[1])), k


def test_set_head_matches_the_sklearn_head_on_single_labels() -> None:
    rng = np.random.default_rng(0)
    x, k = _blobs(rng, 30, np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0]], float))
    labels = np.eye(3, dtype=np.float32)[k]
    ids = np.arange(len(x)).astype(str)
    ours = fit_set_head(x, labels, ids, C=0.1).predict(x)
    theirs = fit_head(x, labels, ids, C=0.1).predict(x)
    assert np.abs(ours - theirs).max() < 0.02


def test_set_labelled_clips_do_not_teach_against_their_true_genre() -> None:
    """Clips that sound like metal but are labelled 'pop or rock or metal' (AllMusic) must not pull
    metal down: the set head keeps metal on them, a head training each candidate as a positive does not."""
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0, 0, 0], [3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], float)  # jazz metal pop rock
    x, k = _blobs(rng, 20, centres)
    candidates = np.eye(4, dtype=np.float32)[k]
    metal_like, _ = _blobs(rng, 60, centres[[1]])
    x_all = np.vstack([x, metal_like])
    set_rows = np.tile(candidate_matrix([["pop", "rock"]], NAMES), (60, 1))
    cand_all = np.vstack([candidates, set_rows])
    ids = np.arange(len(x_all)).astype(str)
    probe, _ = _blobs(rng, 50, centres[[1]])
    metal = NAMES.index("metal")
    with_sets = fit_set_head(x_all, cand_all, ids, C=1.0).predict(probe)
    assert (with_sets.argmax(axis=1) == metal).mean() > 0.8
    as_positives = fit_head(x_all, cand_all, ids, C=1.0).predict(probe)  # pop, rock, metal each a positive
    assert (as_positives.argmax(axis=1) == metal).mean() < (with_sets.argmax(axis=1) == metal).mean() - 0.2


def test_set_metrics_score_sets_and_leave_untrained_genres_out() -> None:
    candidates = candidate_matrix([["jazz"], ["pop", "rock"], ["metal"], ["rock"]], NAMES)
    scores = np.array(
        [
            [0.7, 0.1, 0.1, 0.1],  # jazz: right
            [0.1, 0.6, 0.2, 0.1],  # pop-or-rock shown as metal: right (metal is in the set)
            [0.1, 0.2, 0.6, 0.1],  # metal shown as pop: wrong
            [0.1, 0.1, 0.2, 0.6],
        ]
    )  # rock: right
    m = set_metrics(scores, candidates, NAMES)
    assert m["hit_at_1"] == 0.75
    assert m["per_genre_recall"] == {"jazz": 1.0, "metal": 0.0, "pop": None, "rock": 1.0}
    trained = np.ones(candidates.shape, bool)
    trained[2, NAMES.index("metal")] = False  # the metal clip's model never saw metal
    m = set_metrics(scores, candidates, NAMES, trained)
    assert m["clips"] == 3 and m["hit_at_1"] == 1.0 and m["per_genre_recall"]["metal"] is None
    assert precision_at_coverage(scores, candidates, 0.5) == 1.0  # the two most confident are right


def test_folds_hold_out_whole_sources_and_whole_artists() -> None:
    sources = np.array(["a", "a", "b", "c", "c"])
    assert [m.tolist() for m in source_folds(sources)] == [[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1]]
    rng = np.random.default_rng(0)
    groups = np.array([f"artist{i // 3}" for i in range(60)])
    candidates = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 60)]
    folds = artist_folds(candidates, groups, 4, seed=0)
    assert sum(m.sum() for m in folds) == 60
    for m in folds:
        assert not set(groups[m]) & set(groups[~m])


def test_out_of_fold_and_temperature_on_a_separable_corpus() -> None:
    rng = np.random.default_rng(2)
    x, k = _blobs(rng, 12, np.array([[0, 0], [4, 0], [0, 4]], float))
    clip_index = np.arange(len(x))
    candidates = np.eye(3, dtype=np.float32)[k]
    sources = np.array(["s", "t"] * (len(x) // 2))
    corpus = CorpusWindows(x, clip_index, candidates, clip_index.astype(str), sources)

    def fit(c: CorpusWindows, mask: np.ndarray):  # type: ignore[no-untyped-def]
        rows = c.windows_of(mask)
        return fit_set_head(c.features[rows], c.candidates[c.clip_index[rows]], c.clip_index[rows], 1.0)

    logits, trained = out_of_fold(corpus, source_folds(sources), fit)
    assert trained.all()
    assert (logits.argmax(axis=1) == k).mean() > 0.9
    t = fit_temperature(logits, candidates, clip_index)
    assert 0.05 < t < 20
    head = fit(corpus, np.ones(len(x), bool))
    assert np.allclose(
        calibrated(head, 2.0).predict(x[:3]) ** 2
        / (calibrated(head, 2.0).predict(x[:3]) ** 2).sum(1, keepdims=True),
        head.predict(x[:3]),
        atol=1e-6,
    )  # softmax(z/2)^2 ~ softmax(z)


@pytest.mark.slow
def test_train_tagger_on_two_small_collections(shared_music: Path, tmp_path: Path) -> None:
    """The recipe end to end on 12 real clips in two collections (one source each): LOSO and artist
    figures in the manifest, a calibrated model that reloads and scores PCM."""
    from genretag.models.predictor import load_predictor
    from genretag.training.tagger_recipe import TaggerRecipe, train_tagger

    with (shared_music / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    picked: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        genre = picked.setdefault(row["labels"], [])
        if row["labels"] in ("classical", "electronic", "rock") and len(genre) < 4:
            genre.append(row)
    manifests = []
    for part in (0, 1):
        chosen = [r for clips in picked.values() for r in clips[part * 2 : part * 2 + 2]]
        manifests.append(
            _manifest(
                tmp_path / f"coll{part}",
                [
                    {
                        "path": str(shared_music / r["path"]),
                        "labels": r["labels"],
                        "artist": r["artist"],
                        "source": f"src{part}",
                    }
                    for r in chosen
                ],
            )
        )
    recipe = TaggerRecipe(
        head=HeadConfig(variants=("MSD_musicnn",), layers=("taggram",), C=0.01),
        artist_folds=2,
        min_confidence=0.3,
    )
    predictor = train_tagger(manifests, tmp_path / "model", recipe, tmp_path / "cache")
    m = predictor.manifest
    assert m.labels == ["classical", "electronic", "rock"]
    assert set(m.dev_metrics) == {"leave_one_source_out", "artist_grouped_cv"}
    assert set(m.dev_metrics["leave_one_source_out"]["per_source"]) == {"src0", "src1"}
    assert m.calibration["min_confidence"] == 0.3 and m.calibration["temperature"] > 0
    reloaded = load_predictor(tmp_path / "model")
    scores = reloaded.predict(np.zeros((2, m.window_samples), np.float32) + 0.01)
    assert scores.shape == (2, 3) and np.allclose(scores.sum(axis=1), 1, atol=1e-4)
