"""``genretag train-heads``: the speech, mood and tags heads beside a musicnn tagger's genre head."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from genretag.cli.training_options import artifact_out_option, embedding_cache_option, inverse_l2_option


@click.command("train-heads")
@click.option(
    "--model",
    "base_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The base artifact: a musicnn tagger (models/default, or train-tagger's output). Its genre "
    "head, calibration and figures are kept unchanged.",
)
@click.option(
    "--speech-data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The speech collection: a folder with manifest.csv (path, class, group, source), "
    "e.g. ../shared/data/speech.",
)
@click.option(
    "--music-manifest",
    "music_manifests",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A music collection's manifest.csv for the speech set's music and its music beds; repeat for "
    "several. Default: the base artifact's training manifests.",
)
@click.option(
    "--mood-manifest",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A manifest.csv with a mood_quadrant column (Q1..Q4), e.g. ../shared/data/mer4q/manifest.csv.",
)
@artifact_out_option(
    "Artifact directory to write (replaced only once the new model passes its checks; may be --model)."
)
@embedding_cache_option("Folder to cache backbone embeddings in (train-tagger's; a rerun reuses them).")
@inverse_l2_option("--speech-C", "speech_c", "the speech head [0.01, the benchmark's]")
@inverse_l2_option("--mood-C", "mood_c", "the mood head [0.001, make bench-mood's nested choice]")
@click.option(
    "--max-music-clips",
    type=click.IntRange(min=1),
    default=None,
    help="Quick runs: only this many clips of the music collections in the speech set (no figures recorded).",
)
@click.option(
    "--max-mood-clips",
    type=click.IntRange(min=4),
    default=None,
    help="Quick runs: only this many mood clips (no figures recorded).",
)
def train_heads(
    base_dir: Path,
    speech_data: Path,
    music_manifests: tuple[Path, ...],
    mood_manifest: Path,
    out_dir: Path,
    cache_dir: Path,
    speech_c: float | None,
    mood_c: float | None,
    max_music_clips: int | None,
    max_mood_clips: int | None,
) -> None:
    """Add analysis heads to a musicnn tagger and save it as a new artifact: speech or music (Dense(2)
    softmax, trained on talk, music and talk over music beds), mood quadrant (Dense(4) softmax: happy,
    tense, sad, calm) and a curated set of the backbones' own tags (vocals, voice, instruments).

    Every head reads the genre head's embedding, so genre scores stay exactly as they were (checked
    before saving). Each head's entry in the manifest says what it was trained on, its C and its
    cross-validated figures (from make bench-speech and make bench-mood, recorded only when the
    recipe is theirs). Embedding takes about a second per 30 s clip on 2 CPU cores, once (cached).
    """
    from genretag.models.artifact import ArtifactError, read_manifest
    from genretag.training.heads import HeadsError, HeadsRecipe
    from genretag.training.heads import train_heads as run

    speech_manifest = speech_data / "manifest.csv"
    if not speech_manifest.is_file():
        raise click.BadParameter(f"{speech_data}: no manifest.csv", param_hint="--speech-data")
    try:
        base = read_manifest(base_dir)
    except ArtifactError as err:
        raise click.BadParameter(f"{base_dir}: {err}", param_hint="--model") from None
    if not music_manifests:
        music_manifests = tuple(Path(m) for m in base.training_data.get("manifests", []) if Path(m).is_file())
        if not music_manifests:
            raise click.UsageError(
                "the base artifact's training manifests are not here: give --music-manifest"
            )
    defaults = HeadsRecipe()
    recipe = HeadsRecipe(
        speech_C=defaults.speech_C if speech_c is None else speech_c,
        mood_C=defaults.mood_C if mood_c is None else mood_c,
        max_music_clips=max_music_clips,
        max_mood_clips=max_mood_clips,
    )

    def log(message: str) -> None:
        click.echo(f"train-heads: {message}", file=sys.stderr)

    try:
        predictor = run(
            base_dir, out_dir, speech_manifest, list(music_manifests), mood_manifest, recipe, cache_dir, log
        )
    except (HeadsError, ArtifactError) as err:
        raise click.ClickException(str(err)) from None
    m = predictor.manifest
    for name, head in m.heads.items():
        trained = head.get("trained_on", {})
        facts = (
            f"{trained['clips']} clips, {trained['windows']} windows, C {head['C']:g}"
            if trained
            else "selected"
        )
        click.echo(f"{name}: {', '.join(head['labels'])} ({facts})")
    error = m.serving.get("max_abs_error")
    click.echo(
        f"saved {out_dir}; serving export max diff {error:.1e}" if error is not None else f"saved {out_dir}"
    )
