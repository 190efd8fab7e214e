"""Fixtures of the model tests: the musicnn wheel's reference checkpoints, unpacked once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.musicnn_convert import locate_package_dir


@pytest.fixture(scope="session")
def musicnn_package(musicnn_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's ``musicnn/`` folder (checkpoints of all four backbones)."""
    try:
        return locate_package_dir(musicnn_wheel, tmp_path_factory.mktemp("musicnn"))
    except FileNotFoundError as err:
        reason = str(err)
    pytest.fail(
        f"the musicnn reference checkpoints are required: {reason}; then set "
        "GENRETAG_MUSICNN_WHEEL to the wheel or the directory holding it",
        pytrace=False,
    )
