"""What ``classify`` says beside genre: the heads of the bundled default, tempo and key (real clips)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from genretag.cli.main import cli
from genretag.models.bundled import bundled_model_dir
from genretag.models.predictor import load_predictor


@pytest.fixture(scope="module")
def shared(shared_music: Path) -> Path:
    return shared_music.parent


def test_classify_json_has_the_heads_tempo_and_key(shared: Path) -> None:
    clip = shared / "music/audio/emotify/pop/pop_53.mp3"
    result = CliRunner().invoke(cli, ["classify", "--json", str(clip)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.splitlines()[-1])
    assert 0 <= data["speech_share"] <= 1
    assert data["mood"]["label"] in data["mood"]["scores"] and len(data["mood"]["scores"]) == 4
    assert set(data["tags"]) == set(load_predictor(bundled_model_dir()).manifest.heads["tags"]["labels"])
    assert all(0 <= v <= 1 for v in data["tags"].values())
    assert data["tempo"]["bpm"] is not None and 40 < data["tempo"]["bpm"] < 250
    assert data["key"]["name"] == f"{data['key']['tonic']} {data['key']['mode']}"
    assert 0 <= data["key"]["confidence"] <= 1 and len(data["windows"]) == 19

    plain = CliRunner().invoke(cli, ["classify", str(clip)])
    path, genre, confidence, speech, mood, bpm, key = plain.stdout.strip().split("\t")
    assert (genre, mood) == (data["label"], data["mood"]["label"]) and bpm.endswith(" BPM")
    assert speech == f"speech {data['speech_share']:.0%}"
    assert key == data["key"]["name"]
