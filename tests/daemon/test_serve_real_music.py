"""Real music through the real daemon and the bundled model: a radio programme with dead air.

Three clips of ../shared (metal, classical, hip-hop; decoded here into a
temporary file, never copied into the repository) with five-second silences
between them go through ``genretag send`` into one ZeroMQ stream.  The
daemon must give each clip its genre once it settles, report ``silence`` in
each gap, and never flap within a clip.  The clips are part of the default
model's training data, so this checks the serving path end to end, not the
model's generalisation (see the README for cross-validated figures).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.daemon import Daemon, free_port, not_live

from genretag.pipeline.audio import decode

SR = 22050
PROGRAMME = [
    ("metal", "audio/gtzan/metal/metal.00000.mp3"),
    ("classical", "audio/emotify/classical/classical_1.mp3"),
    ("hiphop", "audio/gtzan/hiphop/hiphop.00001.mp3"),
]
CLIP_S, GAP_S = 20.0, 5.0


@pytest.mark.slow
def test_real_programme_with_dead_air(shared_music: Path, tmp_path: Path) -> None:
    parts = []
    for _, path in PROGRAMME:
        parts += [decode(shared_music / path, SR, max_seconds=CLIP_S), np.zeros(int(GAP_S * SR), np.float32)]
    programme = tmp_path / "programme.wav"
    sf.write(programme, np.concatenate(parts[:-1]), SR, subtype="PCM_16")
    port = free_port()
    config = not_live(tmp_path / "serve.toml")  # the programme is sent at rate 0
    with Daemon(
        "--config",
        config,
        "--source",
        f"zmq:tcp://127.0.0.1:{port}?idle=2",
        "--print",
        "--publish",
        "tcp://127.0.0.1:*",
        "--metrics",
        "127.0.0.1:0",
        ready_timeout=180,
    ) as daemon:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "genretag.cli.main",
                "send",
                str(programme),
                "--to",
                f"tcp://127.0.0.1:{port}",
                "--stream",
                "radio",
                "--rate",
                "0",
            ],
            check=True,
            timeout=120,
        )
        daemon.wait_for(
            lambda: any(e.get("state") == "down" for e in daemon.stream_events("radio", "state")),
            180,
            "the stream to end",
        )
        assert daemon.metric("genretag_windows_dropped_total") == 0
        assert daemon.stop() == 0
    events = daemon.stream_events("radio", "label", "state")
    story = [e["label"] if e["type"] == "label" else e["state"] for e in events]
    assert story == [
        "up",
        "metal",
        "silence",
        None,
        "recovered",
        "classical",
        "silence",
        None,
        "recovered",
        "hiphop",
        "down",
        None,
    ], story
    starts = np.arange(len(PROGRAMME)) * (CLIP_S + GAP_S)
    labels = [e for e in events if e["type"] == "label" and e["label"] is not None]
    for event, start in zip(labels, starts, strict=True):
        assert start < event["pos"] < start + 10, (event["pos"], start)  # settles within 10 s
    silences = [e["pos"] for e in events if e.get("state") == "silence"]
    for pos, start in zip(silences, starts[1:], strict=True):
        assert start - GAP_S + 1.5 <= pos <= start, (pos, start)  # dead air reported within the gap
