"""Music, then talk, then music through the real daemon and the bundled default model with its heads.

A rock clip's first half, 20 s of radio talk and the clip's second half
(../shared; decoded into a temporary file, never copied into the repository)
go through ``serve`` from a ``file:`` source as fast as it can read.  The
genre label must hold through the talk: ``state`` says ``speech`` inside the
talk and ``music`` after it, and no genre change comes between the two.  Mood,
tempo and key follow the music.  The clips are in the heads' and the genre
head's training data, so this checks the serving path end to end; the heads'
held-out figures are in the README.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.daemon import Daemon, not_live

from genretag.pipeline.audio import decode

SR = 16000
MUSIC = "audio/gtzan/rock/rock.00004.mp3"
TALK = "audio/gtzan_ms/train_acomic.mp3"
HALF_S, TALK_S = 15.0, 20.0


@pytest.fixture(scope="module")
def shared_speech(shared_music: Path) -> Path:
    speech = shared_music.parent / "speech"
    if not (speech / "manifest.csv").is_file():
        pytest.skip(f"{speech} is missing: the talk test needs ../shared beside the repository")
    return speech


@pytest.mark.slow
def test_music_talk_music_holds_the_genre(shared_music: Path, shared_speech: Path, tmp_path: Path) -> None:
    music = decode(shared_music / MUSIC, SR, max_seconds=2 * HALF_S)
    talk = decode(shared_speech / TALK, SR, max_seconds=TALK_S)
    half = int(HALF_S * SR)
    programme = tmp_path / "programme.wav"
    sf.write(programme, np.concatenate([music[:half], talk, music[half:]]), SR, subtype="PCM_16")
    talk_from, talk_to = HALF_S, HALF_S + talk.size / SR
    config = not_live(tmp_path / "serve.toml")
    with Daemon(
        "--config",
        config,
        "--source",
        f"file:{programme}?rate=0",
        "--print",
        "--scores",
        "--publish",
        "tcp://127.0.0.1:*",
        "--metrics",
        "127.0.0.1:0",
        ready_timeout=180,
    ) as daemon:
        daemon.wait_for(
            lambda: any(e.get("state") == "down" for e in daemon.events), 240, "the programme to end"
        )
        speech_seconds = daemon.metric("genretag_speech_seconds_total")
        assert daemon.stop() == 0
    stream = daemon.events[0]["stream"]
    events = daemon.stream_events(stream)
    story = [
        (e["pos"], e["state"] if e["type"] == "state" else e["label"])
        for e in events
        if e["type"] in ("label", "state")
    ]
    speech = [pos for pos, what in story if what == "speech"]
    back = [pos for pos, what in story if what == "music"]
    assert len(speech) == 1 and len(back) == 1, story
    assert talk_from < speech[0] < talk_from + 6.0, story  # two talk windows in, at most 6 s
    assert talk_to < back[0] < talk_to + 6.0, story
    before = [what for pos, what in story if pos < speech[0] and what not in ("up", None)]
    assert before, "no genre label before the talk"
    between = [what for pos, what in story if speech[0] <= pos <= back[0] and what != "speech"]
    assert between == ["music"], f"the genre moved during the talk: {story}"
    held = [e for e in events if e["type"] == "scores" and e["held"]]
    assert held and all(e["label"] == before[-1] for e in held)
    assert all(talk_from - 3.0 < e["pos"] < back[0] + 1e-6 for e in held)
    assert TALK_S - 6.0 <= speech_seconds <= TALK_S + 3.0
    analysis = [e for e in events if e["type"] == "analysis"]
    assert analysis and any(e["tempo"] and 60 <= e["tempo"]["bpm"] <= 200 for e in analysis)
    assert any(e["key"] for e in analysis) and all("mood" in e and "tags" in e for e in analysis)
