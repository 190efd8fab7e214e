"""``genretag classify``: label audio files with a model artifact."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from genretag.cli import messages
from genretag.cli.audio_inputs import find_audio
from genretag.cli.model_option import MODEL_HELP, runtime_option


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help=MODEL_HELP)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line: path, label, confidence, scores, seconds, warnings "
    "(shorter_than_window, near_silent), tempo {bpm, confidence}, key {tonic, mode, name, confidence}, "
    "windows; with a model that has the heads (the default does) also speech_share, mood {label, scores} "
    "and tags.",
)
@click.option(
    "--max-windows",
    default=48,
    show_default=True,
    help="Windows per file, spread evenly over its length (0: every window).",
)
@runtime_option()
def classify(
    paths: tuple[Path, ...], model_dir: Path | None, as_json: bool, max_windows: int, runtime: str
) -> None:
    """Print the genre of each audio file (any format ffmpeg or libsndfile reads).

    A PATH may be a directory: the audio files under it are classified,
    recursively, in sorted order (other files are skipped and counted).
    Every path is checked before the model loads; a missing one stops the
    command at once (exit 2).

    Each line is: path, genre, its confidence, then (when the model has those
    heads) the share of talk ("speech 100%": the genre means little) and the
    mood, then the tempo in BPM and the key ("-" where there is none: too short,
    no beat, no tonal content).

    The clip label is the top genre of the mean of window scores; mood and tags follow the same rule,
    speech_share is the share of those windows that the speech head calls speech.  Tempo and key come
    from the whole file (its last 10 minutes when longer).  A clip
    shorter than one model window, or silent or nearly so, still gets a label
    but also a warning on stderr (and in --json's "warnings"): its label is a
    guess.  A file that cannot be read gets an error line on stderr; the
    others are still classified and the exit code is 1 at the end.
    """
    inputs = find_audio(paths)
    for problem in inputs.problems:
        messages.error(problem)
    if inputs.problems:
        sys.exit(2)
    for directory, count in inputs.skipped.items():
        messages.warning(f"{directory}: skipped {count} file(s) that are not audio by their names")

    from genretag.models.artifact import ArtifactError
    from genretag.models.bundled import resolve_model
    from genretag.models.clip_scoring import WARNINGS, classify_file
    from genretag.models.predictor import load_predictor
    from genretag.pipeline.audio import AudioDecodeError

    try:
        predictor = load_predictor(resolve_model(model_dir), runtime)
    except ArtifactError as err:
        raise click.ClickException(f"cannot load model: {err}") from None
    failures = 0
    for path in inputs.files:
        try:
            result = classify_file(predictor, path, max_windows)
        except AudioDecodeError as err:
            failures += 1
            messages.error(str(err))
            continue
        for flag in result.warnings:
            messages.warning(f"{path}: {result.seconds:.2f} s, {WARNINGS[flag]}")
        if as_json:
            click.echo(json.dumps(result.to_json()))
        else:
            click.echo("\t".join([str(path), result.label, f"{result.confidence:.3f}", *_extras(result)]))
    if failures:
        messages.error(f"{failures} of {len(inputs.files)} files could not be classified")
        sys.exit(1)


def _extras(result: Any) -> list[str]:
    """The plain line's columns after genre: speech share and mood (with those heads), tempo, key."""
    columns = [] if result.speech_share is None else [f"speech {result.speech_share:.0%}"]
    mood = result.heads.get("mood")
    columns += [mood[0][int(mood[1].argmax())]] if mood is not None else []
    columns.append("-" if result.tempo.bpm is None else f"{result.tempo.bpm:.0f} BPM")
    columns.append(result.key.name or "-")
    return columns
