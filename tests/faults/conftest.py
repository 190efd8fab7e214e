"""Fixtures of the fault tests: the daemon helpers, a fast artifact and the bad-input corpus.

The daemon helpers live in ``tests/daemon`` (the Daemon subprocess wrapper,
the PCM Producer, the small 8 kHz scikit-learn artifacts); this folder puts
that directory on ``sys.path`` so the fault tests reuse them instead of
keeping copies.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from bad_inputs import Corpus, make_corpus  # noqa: E402
from daemon_helpers import reap, train_artifact  # noqa: E402


@pytest.fixture(autouse=True)
def _reap_processes() -> Iterator[None]:
    """Every genretag process a test started is killed afterwards, even when the test failed."""
    yield
    reap()


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The daemon tests' fast artifact (8 kHz, 1 s windows; classical, electronic, noise)."""
    return train_artifact(tmp_path_factory.mktemp("artifact") / "a", range(3), 1.0)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """The bad-input corpus, generated once (see ``bad_inputs.py``; never modify it)."""
    return make_corpus(tmp_path_factory.mktemp("bad_inputs"))
