"""Fixtures of the signal-processing tests: the reference tempo and key of the shared GTZAN clips."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def gtzan_references(shared_music: Path) -> dict[str, dict[str, str]]:
    """``gtzan_tempo_key.csv`` rows by clip path below ``audio/gtzan/`` (``"metal/metal.00000.mp3"``)."""
    with (shared_music / "gtzan_tempo_key.csv").open(newline="") as handle:
        return {row["path"].split("/", 2)[2]: row for row in csv.DictReader(handle)}
