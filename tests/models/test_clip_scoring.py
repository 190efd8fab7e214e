"""Clip-level scoring of a file: window spread, silent windows left out, JSON shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from helpers.level_artifact import SR, save_level_artifact

from genretag.models.clip_scoring import (
    DEFAULT_MAX_WINDOWS,
    audible_windows,
    chosen_windows,
    classify_file,
    clip_score,
    clip_scores,
    counted_windows,
)


def test_silent_windows_do_not_count(tmp_path: Path) -> None:
    predictor = save_level_artifact(tmp_path / "art")
    t = np.arange(6 * SR) / SR
    audio = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    audio[: 4 * SR] = 0.0  # four silent seconds, then two of tone
    sf.write(tmp_path / "x.wav", audio, SR)

    result = classify_file(predictor, tmp_path / "x.wav", max_windows=0)
    assert len(result.window_starts) == 6
    audible = result.window_scores[4:].mean(axis=0)
    assert np.allclose(result.clip_scores, audible)
    assert not np.allclose(result.clip_scores, result.window_scores.mean(axis=0))
    data = result.to_json()
    assert data["label"] == result.label and len(data["windows"]) == 6

    few = classify_file(predictor, tmp_path / "x.wav", max_windows=3)
    assert list(few.window_starts) == [0.0, 2.0, 5.0]  # spread over the whole file


def test_short_and_near_silent_clips_carry_warnings(tmp_path: Path) -> None:
    """Issue 14.7: a label for 0.2 s of tone or for a whisper is a guess, and the result says so."""
    predictor = save_level_artifact(tmp_path / "art")
    t = np.arange(3 * SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for name, audio, warnings in [
        ("short.wav", tone[: SR // 5], ["shorter_than_window"]),
        ("whisper.wav", tone * 0.001, ["near_silent"]),
        ("short-whisper.wav", tone[: SR // 5] * 0.001, ["shorter_than_window", "near_silent"]),
        ("fine.wav", tone, []),
    ]:
        sf.write(tmp_path / name, audio, SR)
        result = classify_file(predictor, tmp_path / name)
        assert result.warnings == warnings, name
        assert result.to_json()["warnings"] == warnings and result.label in ("loud", "quiet")


def test_the_rule_over_many_clips_is_the_rule_of_one() -> None:
    """Issue 15.1: counted_windows/clip_scores (many clips, scores made elsewhere) choose and pool as
    classify does for one clip: spread, audible, the all-silent fallback, interleaved clips."""
    rng = np.random.default_rng(0)
    sizes = {0: 100, 1: 19, 2: 5, 3: 1}
    clip_index = rng.permutation(np.concatenate([np.full(n, c) for c, n in sizes.items()]))
    levels = rng.uniform(-70.0, -10.0, len(clip_index))
    levels[clip_index == 2] = -80.0  # every window of clip 2 silent: all of them count
    scores = rng.dirichlet(np.ones(4), len(clip_index))
    got = clip_scores(scores, clip_index, len(sizes), levels)
    counted = counted_windows(clip_index, levels)
    for c, n in sizes.items():
        rows = np.flatnonzero(clip_index == c)  # the clip's windows in time order
        chosen = rows[chosen_windows(n)]
        assert len(chosen) == min(n, DEFAULT_MAX_WINDOWS)
        np.testing.assert_allclose(got[c], clip_score(scores[chosen], levels[chosen]))
        kept = chosen[audible_windows(levels[chosen])]
        assert set(np.flatnonzero(counted & (clip_index == c))) == set(kept)
    assert counted[clip_index == 2].sum() == 5
    everything = clip_scores(scores, clip_index, len(sizes), None, max_windows=0)
    np.testing.assert_allclose(everything[0], scores[clip_index == 0].mean(axis=0))
