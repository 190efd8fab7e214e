"""Issue 15.1: classify, evaluate/compare, cross-validation, the baselines' selection and the tagger
recipe's figures score a clip by one rule, so they agree on the same audio."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genretag.models.bundled import resolve_model
from genretag.models.clip_scoring import classify_file
from genretag.models.predictor import load_predictor, window_spec
from genretag.pipeline.audio import decode
from genretag.training.metrics import ScoredWindows, evaluate_windows, summarize
from genretag.training.scoring import score_clips
from genretag.training.sklearn_train import WindowTable, clip_metrics
from genretag.training.source_cv import clip_scores as source_cv_clip_scores
from genretag.training.source_cv import fit_temperature


@pytest.fixture(scope="module")
def clip_files(shared_music: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Real music made into the cases the rule is about, as 16 kHz float WAVs (decoded exactly alike by
    classify's streaming reader and evaluate's whole-file one): a silent lead-in, a song longer than 48
    windows, a whisper (every window silent), a clip shorter than one window."""
    with open(shared_music / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))[::40][:4]
    sr = 16000
    music = [decode(shared_music / r["path"], sr) for r in rows]
    quiet = np.random.default_rng(0).standard_normal(10 * sr).astype(np.float32) * 1e-4  # -80 dBFS
    cases = {
        "lead-in": (np.concatenate([quiet, music[0]]), rows[0]["labels"]),
        "long": (np.concatenate(music), rows[1]["labels"]),
        "whisper": (music[2] * 1e-3, rows[2]["labels"]),
        "short": (music[3][:sr], rows[3]["labels"]),
    }
    out = tmp_path_factory.mktemp("clips")
    files = {}
    for name, (audio, labels) in cases.items():
        sf.write(out / f"{name}.wav", audio, sr, subtype="FLOAT")
        files[name] = (out / f"{name}.wav", labels.split(";")[0])
    return files


def test_every_path_scores_a_clip_like_classify(clip_files: dict[str, tuple[Path, str]]) -> None:
    predictor = load_predictor(resolve_model("fast"))
    spec = window_spec(predictor.manifest)
    names = list(predictor.manifest.labels)
    classified = {name: classify_file(predictor, path) for name, (path, _) in clip_files.items()}
    assert len(classified["long"].window_starts) == 48  # the spread matters here ...
    assert classified["whisper"].warnings == ["near_silent"]  # ... and the all-silent fallback here

    def one_hot(label: str) -> np.ndarray:
        return np.array([n == label for n in names], np.float32)

    # evaluate and compare: every window scored, clips pooled by ScoredWindows.by_clip
    scored = score_clips(
        predictor,
        [
            (name, sf.read(path, dtype="float32")[0], one_hot(label), spec.sample_rate)
            for name, (path, label) in clip_files.items()
        ],
    )
    clips = scored.by_clip()
    assert list(clips.clip_ids) == list(clip_files)
    expected = np.stack([classified[name].clip_scores for name in clip_files])
    np.testing.assert_allclose(clips.scores, expected, atol=2e-5)
    lead_in = clip_ids_rows(scored, "lead-in")
    assert not np.allclose(scored.scores[lead_in].mean(axis=0), classified["lead-in"].clip_scores, atol=1e-3)
    truth = np.stack([one_hot(label) for _, label in clip_files.values()])
    assert evaluate_windows(scored, names)["clip"] == summarize(expected, truth, names)

    # the tagger recipe's figures (source_cv) from window logits and levels
    clip_index = np.unique(scored.clip_ids, return_inverse=True)[1]
    order = np.argsort([list(clip_files).index(c) for c in np.unique(scored.clip_ids)])
    from_logits = source_cv_clip_scores(
        np.log(np.maximum(scored.scores, 1e-30)), clip_index, len(clip_files), levels_db=scored.levels_db
    )
    np.testing.assert_allclose(from_logits[order], expected, atol=2e-5)
    assert (
        fit_temperature(
            np.log(np.maximum(scored.scores, 1e-30)), truth[np.argsort(order)], clip_index, scored.levels_db
        )
        > 0
    )

    # the scikit-learn baselines' model selection (and cross-validation: ScoredWindows with levels)
    targets = scored.labels.argmax(axis=1)
    table = WindowTable(np.zeros((len(targets), 1), np.float32), targets, scored.clip_ids, scored.levels_db)
    accuracy = float(np.mean(expected.argmax(axis=1) == truth.argmax(axis=1)))
    assert clip_metrics(scored.scores, table)["clip_accuracy"] == pytest.approx(accuracy)


def clip_ids_rows(scored: ScoredWindows, clip_id: str) -> np.ndarray:
    return np.flatnonzero(scored.clip_ids == clip_id)


def test_crossval_levels_line_up_with_the_embedded_windows() -> None:
    """cross-validation's levels are one per window embed_clips embeds (same framing), in its order."""
    from genretag.models.musicnn import WINDOW_SAMPLES
    from genretag.pipeline.windows import frame_count
    from genretag.training.backbone_train import backbone_window_levels
    from genretag.training.reader import Clip

    rng = np.random.default_rng(1)
    lengths = (16000, 30 * 16000, 47 * 16000 + 5)
    clips = [
        Clip(str(i), "a", np.ones(1), rng.uniform(-0.1, 0.1, n).astype(np.float32) * (i != 1))
        for i, n in enumerate(lengths)
    ]
    levels = backbone_window_levels(clips, 1.5)
    counts = [frame_count(n, WINDOW_SAMPLES, 24000) for n in lengths]
    assert len(levels) == sum(counts) and counts[1] == 19
    assert (levels[counts[0] : counts[0] + counts[1]] < -150).all() and (levels[: counts[0]] > -40).all()
