"""The offline programme replay: settings grids, the daemon's smoother on cached window scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.programme_replay import parse_settings, replay, window_scores
from benchmarks.programme_score import score_programme, summarise
from genretag.daemon.config import SmoothingConfig
from genretag.models.bundled import bundled_model_dir

LABELS = ["jazz", "rock"]
CUE = {
    "name": "programme-00",
    "seconds": 60.0,
    "songs": [
        {"index": 0, "genre": "rock", "truth": ["rock"], "start": 0.0, "end": 30.0},
        {"index": 1, "genre": "jazz", "truth": ["jazz"], "start": 30.0, "end": 60.0},
    ],
}


def _scores(confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Window ends every 1.5 s and scores that favour each song's genre by ``confidence``."""
    ends = np.arange(3.0, 60.0, 1.5)
    rock = np.where(ends <= 31.5, confidence, 1 - confidence)
    return ends, np.stack([1 - rock, rock], axis=1)


def test_settings_are_the_product_of_the_values_over_the_daemons_defaults() -> None:
    configs = parse_settings(["ema_alpha=0.2,0.3", "change_windows=2,3", "method=mean"])
    assert len(configs) == 4
    assert {(c.ema_alpha, c.change_windows) for c in configs} == {(0.2, 2), (0.2, 3), (0.3, 2), (0.3, 3)}
    assert all(c.method == "mean" and c.switch_seconds == SmoothingConfig().switch_seconds for c in configs)
    assert parse_settings([]) == [SmoothingConfig()]


@pytest.mark.parametrize("item", ["nonsense=1", "ema_alpha=", "ema_alpha"])
def test_a_bad_setting_is_refused_with_the_keys_it_knows(item: str) -> None:
    with pytest.raises(SystemExit, match="change_windows"):
        parse_settings([item])


def test_replay_follows_the_song_change_with_the_daemons_smoother() -> None:
    ends, scores = _scores(0.9)
    songs = score_programme(CUE, replay(CUE, ends, scores, LABELS, SmoothingConfig(), 0.2))
    overall = summarise(songs)
    assert overall["never_right"] == 0 and overall["wrong_changes"] == 0
    assert songs[1].first_right is not None and songs[1].first_right <= 6.0
    assert overall["right_share"] > 0.7  # the first label waits to settle (~7.5 s), the change ~4.5 s


def test_talk_holds_the_label_as_the_daemon_holds_it() -> None:
    """A DJ talks for 12 s inside the rock song and the model hears the talk as jazz: without the speech
    hold the label flips to jazz and back (two wrong changes); with it nothing changes until the song does."""
    ends, scores = _scores(0.9)
    talk = (ends > 12.0) & (ends <= 24.0)
    scores[talk] = [0.95, 0.05]  # talk heard as jazz
    speech = np.stack([np.where(talk, 0.05, 0.95), np.where(talk, 0.95, 0.05)], axis=1)
    without = replay(CUE, ends, scores, LABELS, SmoothingConfig(), 0.2)
    held = replay(CUE, ends, scores, LABELS, SmoothingConfig(), 0.2, speech)
    assert any(e["label"] == "jazz" and e["pos"] < 30.0 for e in without)
    assert [e["label"] for e in held if e["pos"] < 30.0] == ["rock"]
    assert summarise(score_programme(CUE, held))["wrong_changes"] == 0


def test_the_artifacts_threshold_applies_unless_the_config_sets_its_own() -> None:
    ends, scores = _scores(0.6)
    abstains = summarise(score_programme(CUE, replay(CUE, ends, scores, LABELS, SmoothingConfig(), 0.7)))
    assert abstains["unlabelled_share"] == 1.0
    overridden = SmoothingConfig(min_confidence=0.5)
    shows = summarise(score_programme(CUE, replay(CUE, ends, scores, LABELS, overridden, 0.7)))
    assert shows["unlabelled_share"] < 0.3


def test_window_scores_are_computed_once_and_cached_beside_the_programme(tmp_path: Path) -> None:
    sr = 16000
    t = np.arange(int(7.5 * sr)) / sr
    flac = tmp_path / "programme-00.flac"
    sf.write(flac, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    model = bundled_model_dir("fast")
    ends, scores, speech = window_scores(flac, model)
    assert speech is None  # the fast model has no speech head
    assert scores.shape == (len(ends), 11) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
    assert np.allclose(np.diff(ends), 1.5) and ends[0] == pytest.approx(47616 / 16000)
    cached = list(tmp_path.glob("programme-00.scores-*.npz"))
    assert len(cached) == 1
    again_ends, again_scores, _ = window_scores(flac, model)
    assert np.array_equal(again_scores, scores) and np.array_equal(again_ends, ends)


def test_a_model_with_a_speech_head_has_its_scores_cached_too(tmp_path: Path) -> None:
    sr = 16000
    t = np.arange(int(7.5 * sr)) / sr
    flac = tmp_path / "programme-00.flac"
    sf.write(flac, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    ends, scores, speech = window_scores(flac, bundled_model_dir("default"))
    assert speech is not None and speech.shape == (len(ends), 2)
    assert np.allclose(speech.sum(axis=1), 1.0, atol=1e-3) and len(scores) == len(ends)
    cached = window_scores(flac, bundled_model_dir("default"))[2]
    assert cached is not None and np.array_equal(cached, speech)
