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
MUSICNN_REQUIREMENT = "musicnn==0.1.0"


@pytest.fixture(scope="session")
def musicnn_wheel() -> Path:
    """The musicnn 0.1.0 wheel, whose checkpoints are the reference of the port tests.

    ``GENRETAG_MUSICNN_WHEEL`` names it (a wheel, a directory holding one, or the
    extracted package); else it is downloaded from PyPI into ``.cache/musicnn`` on
    first use.  Its own pins are too old to install it, so it is only downloaded,
    never installed.  Skips, saying why, only when it is neither there nor
    downloadable (no registry access); CI downloads it, so the port tests run there.
    """
    named = os.environ.get("GENRETAG_MUSICNN_WHEEL")
    if named:
        return Path(named)
    wheels = sorted(MUSICNN_CACHE.glob("musicnn-0.1.0-*.whl"))
    if not wheels:
        MUSICNN_CACHE.mkdir(parents=True, exist_ok=True)
        pip = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--retries",
                "1",
                "--timeout",
                "30",
                MUSICNN_REQUIREMENT,
                "-d",
                str(MUSICNN_CACHE),
            ],
            capture_output=True,
            text=True,
        )
        wheels = sorted(MUSICNN_CACHE.glob("musicnn-0.1.0-*.whl"))
        if not wheels:
            why = (pip.stderr.strip().splitlines() or [f"exit status {pip.returncode}"])[-1]
            pytest.skip(
                f"the musicnn reference wheel is not in {MUSICNN_CACHE} and `pip download "
                f"{MUSICNN_REQUIREMENT}` failed ({why}); set GENRETAG_MUSICNN_WHEEL to a copy"
            )
    # Tests that read the variable themselves see the downloaded wheel too.
    os.environ["GENRETAG_MUSICNN_WHEEL"] = str(wheels[0])
    return wheels[0]


@pytest.fixture(scope="session")
def shared_music() -> Path:
    """The labelled clips of ../shared/data/music (never copied into the repo); skips without them."""
    manifest = SHARED_MUSIC / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} is missing: the real-music tests need ../shared beside the repository")
    return SHARED_MUSIC
