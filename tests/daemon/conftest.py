"""Fixtures of the daemon tests; the helpers behind them are in :mod:`helpers.daemon`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.daemon import Producer, reap, train_artifact


@pytest.fixture(autouse=True)
def _reap_processes() -> Iterator[None]:
    """Every genretag process a test started is killed afterwards, even when the test failed."""
    yield
    reap()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two fast artifacts with the same labels and geometry but different weights (fingerprints)."""
    root = tmp_path_factory.mktemp("artifacts")
    return train_artifact(root / "a", range(3), 1.0), train_artifact(root / "b", range(3, 6), 0.3)


@pytest.fixture(scope="session")
def artifact(artifacts: tuple[Path, Path]) -> Path:
    return artifacts[0]


@pytest.fixture
def producer_factory() -> Iterator[Callable[[str], Producer]]:
    made: list[Producer] = []

    def make(address: str) -> Producer:
        made.append(Producer(address))
        return made[-1]

    yield make
    for producer in made:
        producer.close()
