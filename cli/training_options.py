"""The options the training commands share (``train``, ``compare``, ``crossval``, ``train-tagger``,
``train-heads``): one type and one wording for each.

Each function returns a click decorator; a command with its own wording passes it as ``help_text``.
Nothing here imports model or training code, so ``genretag --help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

DATASET_HELP = "Dataset directory written by 'genretag dataset build'."
ARTIFACT_OUT_HELP = "Artifact directory to write (replaced only once the new model passes its checks)."


def dataset_option(help_text: str = DATASET_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--data``: a built dataset directory (``train``, ``compare``, ``crossval``)."""
    return click.option(
        "--data",
        required=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help=help_text,
    )


def artifact_out_option(
    help_text: str = ARTIFACT_OUT_HELP,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--out`` (parameter ``out_dir``): the artifact directory a training command writes."""
    return click.option(
        "--out",
        "out_dir",
        required=True,
        type=click.Path(path_type=Path),
        help=help_text,
    )


def embedding_cache_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--cache`` of the commands that embed clips with the musicnn backbones (``crossval``,
    ``train-tagger``, ``train-heads``): one default folder, so they reuse each other's embeddings."""
    return click.option(
        "--cache",
        "cache_dir",
        type=click.Path(path_type=Path),
        default=Path(".cache/embeddings"),
        show_default=True,
        help=help_text,
    )


def inverse_l2_option(
    name: str, parameter: str, of: str, default: float | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A head's ``C`` (``--C`` of ``train-tagger``, ``--speech-C`` and ``--mood-C`` of ``train-heads``):
    above 0; its help says "Inverse L2 strength of ``of``." and shows ``default`` where one is given."""
    return click.option(
        name,
        parameter,
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=True if default is not None else None,  # None: as click.option leaves it
        help=f"Inverse L2 strength of {of}.",
    )
