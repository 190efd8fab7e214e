"""Fixtures of the fault tests: a fast artifact and the bad-input corpus (both from :mod:`helpers`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.bad_inputs import Corpus, make_corpus
from helpers.daemon import reap, train_artifact


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
    """The bad-input corpus, generated once (see :mod:`helpers.bad_inputs`; never modify it)."""
    return make_corpus(tmp_path_factory.mktemp("bad_inputs"))
