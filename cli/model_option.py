"""The options that choose and run a model artifact (classify, evaluate, serve): one wording.

``train`` names a model *type* instead, with ``--model-type``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

MODEL_HELP = (
    'Model artifact directory, or a bundled model: "default" (musicnn, most accurate; used when '
    '--model is not given) or "fast" (distilled, for many streams).'
)

# The same choices as genretag.models.predictor.RUNTIMES, spelled here so that --help imports no model code.
RUNTIME_CHOICES = ("auto", "openvino", "keras")
RUNTIME_HELP = (
    'What runs the model: "openvino" (the artifact\'s ONNX export, no TensorFlow in the '
    'process), "keras" (its .keras model on Keras\' backend), or "auto": openvino where the '
    "artifact has an export (the bundled models do), keras otherwise."
)


def runtime_option(default: str | None = "auto") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--runtime``; ``serve`` passes ``default=None`` so that its config file can decide."""
    suffix = " [auto]" if default is None else ""
    return click.option(
        "--runtime",
        type=click.Choice(RUNTIME_CHOICES),
        default=default,
        show_default=default is not None,
        help=RUNTIME_HELP + suffix,
    )
