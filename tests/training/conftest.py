"""Fixtures: generated corpora (see :mod:`helpers.audio_corpus`), a shared built dataset, the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.audio_corpus import DATASET_SR, make_corpus


@pytest.fixture(scope="session")
def corpus_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest with good and broken files of every format (shared; never modify it)."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def fresh_corpus(tmp_path: Path) -> Path:
    """A private copy of the corpus for tests that touch source files."""
    return make_corpus(tmp_path / "src")


@pytest.fixture(scope="session")
def built_dataset(corpus_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus built once with two decoding processes (shared; never modify it)."""
    from genretag.training.dataset import BuildOptions, build_dataset

    out = tmp_path_factory.mktemp("built")
    build_dataset(
        corpus_manifest,
        out,
        BuildOptions(sample_rate=DATASET_SR, shard_size=2, workers=2),
        log=lambda _: None,
    )
    return out


@pytest.fixture
def run_build() -> Callable[..., object]:
    """Invoke ``genretag dataset build`` through click; returns the click Result."""
    from click.testing import CliRunner

    from genretag.cli.dataset_cmd import dataset

    def _run(*args: str | Path) -> object:
        return CliRunner().invoke(dataset, ["build", *map(str, args)], catch_exceptions=False)

    return _run
