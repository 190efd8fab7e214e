"""The main job: ``genretag serve`` with no source tags the bundled demo audio with the default model."""

from __future__ import annotations

import json

import pytest
from helpers.daemon import Daemon

from genretag.models.bundled import bundled_model_dir


@pytest.mark.slow
def test_default_model_tags_the_demo_audio() -> None:
    manifest = bundled_model_dir() / "manifest.json"
    assert manifest.is_file(), (
        f"{manifest} is missing: the bundled default model must be built "
        "(see the training issue) before the daemon's main job can run"
    )
    labels = json.loads(manifest.read_text())["labels"]
    # No --source, no config: the demo files, looped in real time, events printed to stdout.
    with Daemon("--publish", "tcp://127.0.0.1:*", "--metrics", "127.0.0.1:0", ready_timeout=180) as daemon:
        assert any("tagging the bundled demo audio" in line for line in daemon.log)
        daemon.wait_for(lambda: any(e["type"] == "label" for e in daemon.events), 90, "a label event")
        assert daemon.stop() == 0
    label = next(e for e in daemon.events if e["type"] == "label")
    assert label["stream"] in {"demo-electronic", "demo-strings"}
    assert label["label"] in labels and set(label["scores"]) == set(labels)
    downs = {e["stream"] for e in daemon.events if e.get("state") == "down"}
    assert downs == {"demo-electronic", "demo-strings"}
