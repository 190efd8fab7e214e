"""``genretag classify``: label audio files with a model artifact."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path),
              help="Model artifact directory, or a bundled model: \"default\" (musicnn, most accurate) "
                   "or \"fast\" (distilled, for many streams) [default].")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: path, label, confidence, scores, windows.")
@click.option("--max-windows", default=48, show_default=True,
              help="Windows per file, spread evenly over its length (0: every window).")
def classify(paths: tuple[Path, ...], model_dir: Path | None, as_json: bool, max_windows: int) -> None:
    """Print the genre of each audio file (any format ffmpeg or libsndfile reads).

    The clip label is the top genre of the mean of window scores.  A file that
    cannot be read gets an error line on stderr; the others are still
    classified and the exit code is 1 at the end.
    """
    from genretag.models.artifact import ArtifactError
    from genretag.models.bundled import resolve_model
    from genretag.models.clip_scoring import classify_file
    from genretag.models.predictor import load_predictor
    from genretag.pipeline.audio import AudioDecodeError

    try:
        predictor = load_predictor(resolve_model(model_dir))
    except ArtifactError as err:
        raise click.ClickException(f"cannot load model: {err}") from None
    failures = 0
    for path in paths:
        try:
            result = classify_file(predictor, path, max_windows)
        except AudioDecodeError as err:
            failures += 1
            click.echo(f"error: {err}", err=True)
            continue
        if as_json:
            click.echo(json.dumps(result.to_json()))
        else:
            click.echo(f"{path}\t{result.label}\t{result.confidence:.3f}")
    if failures:
        click.echo(f"{failures} of {len(paths)} files could not be classified", err=True)
        sys.exit(1)
