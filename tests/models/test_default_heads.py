"""The bundled default's analysis heads (speech, mood, tags): real artifact, real clips, both runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genretag.models.artifact import HEAD_NAMES, SPEECH_LABELS, output_labels, validate_manifest_dict
from genretag.models.bundled import bundled_model_dir
from genretag.models.clip_scoring import classify_file
from genretag.models.predictor import Predictor, load_predictor
from genretag.pipeline.audio import decode

REFERENCE = Path(__file__).parent / "data" / "default_genre_reference.json"
#: OpenVINO computes in bfloat16 where the CPU has it: its scores within this of Keras' (measured: up to 0.014
#: genre, 0.022 speech, 0.015 mood, 0.007 tags on 114 windows of real clips).
BF16_NOISE = 0.03


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return load_predictor(bundled_model_dir())


@pytest.fixture(scope="module")
def shared(shared_music: Path) -> Path:
    return shared_music.parent


def test_default_has_the_three_heads_in_output_order(predictor: Predictor) -> None:
    m = predictor.manifest
    assert list(m.heads) == list(HEAD_NAMES)
    assert m.heads["speech"]["labels"] == SPEECH_LABELS
    assert m.heads["mood"]["labels"] == ["happy", "tense", "sad", "calm"]
    assert m.heads["tags"]["output"] == "sigmoid" and 10 <= len(m.heads["tags"]["labels"]) <= 14
    assert list(output_labels(m)) == ["genre", *HEAD_NAMES]
    speech, mood = m.heads["speech"], m.heads["mood"]
    assert speech["C"] == 0.01 and speech["trained_on"]["clips"] > 1500
    assert speech["cross_validated"]["talk_over_music_accuracy"]["-6 dB"] >= 0.9
    assert mood["trained_on"]["clips"] == 774 and mood["cross_validated"]["accuracy"] > 0.7
    assert set(m.heads["tags"]["source"]) == set(m.heads["tags"]["labels"])
    assert m.training_data["clips"] == 1152 and m.calibration["temperature"] > 0  # genre's, kept


def test_heads_keep_their_order_through_sorted_json() -> None:
    """write_manifest sorts keys (mood < speech < tags): reading restores the outputs' order."""
    raw = json.loads((bundled_model_dir() / "manifest.json").read_text())
    assert list(raw["heads"]) == sorted(HEAD_NAMES)
    assert list(validate_manifest_dict(raw).heads) == list(HEAD_NAMES)


def test_speech_head_hears_talk_and_music(predictor: Predictor, shared: Path) -> None:
    talk = classify_file(predictor, shared / "speech/audio/gtzan_ms/train_allison.mp3")
    music = classify_file(predictor, shared / "speech/audio/gtzan_ms/train_ballad.mp3")
    assert talk.speech_share is not None and talk.speech_share >= 0.9
    assert music.speech_share is not None and music.speech_share <= 0.1


def _windows(shared: Path, rate: int, n: int = 6) -> np.ndarray:
    """Windows of real clips: music of two collections and talk."""
    out = []
    for clip in (
        "music/audio/emotify/pop/pop_53.mp3",
        "mer4q/audio/jazz/MT0002532237.mp3",
        "speech/audio/gtzan_ms/train_acomic.mp3",
    ):
        pcm = decode(shared / clip, rate)
        size = 47616
        out += [pcm[i * size : (i + 1) * size] for i in range(n // 3)]
    return np.stack(out).astype(np.float32)


@pytest.mark.slow
def test_runtimes_agree_on_every_head(predictor: Predictor, shared: Path) -> None:
    """auto (OpenVINO) against Keras on real windows: float32 within the export tolerance, the default
    precision within bfloat16 noise; every output, by name."""
    keras_outputs = load_predictor(bundled_model_dir(), runtime="keras").predict_outputs(
        windows := _windows(shared, predictor.manifest.sample_rate)
    )
    f32 = load_predictor(bundled_model_dir(), precision="f32").predict_outputs(windows)
    auto = predictor.predict_outputs(windows)
    tolerance = predictor.manifest.serving["tolerance"]
    for name, expected in keras_outputs.items():
        assert np.abs(f32[name] - expected).max() <= tolerance, name
        assert np.abs(auto[name] - expected).max() <= BF16_NOISE, name
        assert (auto[name].argmax(axis=1) == expected.argmax(axis=1)).mean() >= 5 / 6, name


@pytest.mark.slow
def test_genre_scores_are_those_of_the_genre_only_artifact(shared: Path) -> None:
    """The heads changed nothing of genre: Keras scores of real clips' windows as the previous bundled
    artifact (genre only) gave them, recorded in tests/models/data."""
    reference = json.loads(REFERENCE.read_text())
    predictor = load_predictor(bundled_model_dir(), runtime="keras")
    for clip, expected in reference["clips"].items():
        result = classify_file(predictor, shared / clip)
        assert np.allclose(result.window_starts, expected["window_starts"])
        assert np.abs(result.window_scores - np.array(expected["window_scores"])).max() <= 1e-6, clip
