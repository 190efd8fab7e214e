"""Shared fixtures: the real music in ../shared and the musicnn reference wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MUSIC = REPO.parent / "shared" / "data" / "music"
MUSICNN_CACHE = REPO / ".cache" / "musicnn"


def pytest_configure(config: pytest.Config) -> None:
    """Make the musicnn 0.1.0 wheel (reference checkpoints for the port tests) available.

    It comes from PyPI like every other test dependency; its own pins are too
    old to install it, so it is only downloaded, never installed.
    """
    if os.environ.get("GENRETAG_MUSICNN_WHEEL"):
        return
    wheels = sorted(MUSICNN_CACHE.glob("musicnn-0.1.0-*.whl"))
    if not wheels:
        MUSICNN_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "musicnn==0.1.0", "-d", str(MUSICNN_CACHE)], check=True)
        wheels = sorted(MUSICNN_CACHE.glob("musicnn-0.1.0-*.whl"))
    os.environ["GENRETAG_MUSICNN_WHEEL"] = str(wheels[0])


@pytest.fixture(scope="session")
def shared_music() -> Path:
    """The labelled clips of ../shared/data/music (never copied into the repo)."""
    manifest = SHARED_MUSIC / "manifest.csv"
    assert manifest.is_file(), f"{manifest} is missing: the tests need ../shared beside the repo"
    return SHARED_MUSIC
