"""``genretag dataset``: turn labelled audio into TFRecord shards plus ``dataset.json``.

A thin click layer: options are parsed here, the work is done by
:mod:`genretag.training.dataset`, imported inside the command so that
``genretag --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from genretag.training.storage import is_url


def _fractions(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[float, float, float]:
    """Click callback: parse --split-fractions, reporting errors as a bad parameter."""
    from genretag.training.splits import SplitError, parse_fractions

    try:
        return parse_fractions(value)
    except SplitError as err:
        raise click.BadParameter(str(err)) from None


@click.group()
def dataset() -> None:
    """Build datasets of labelled audio for training and evaluation."""


_POSITIVE = click.FloatRange(min=0, min_open=True)


class _PathOrUrl(click.ParamType):
    """A local path (checked like click.Path) or a URL that fsspec reaches (checked when read)."""

    name = "path|url"

    def __init__(self, **path_checks: bool) -> None:
        self.local = click.Path(path_type=Path, **path_checks)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and is_url(value):
            return value
        return self.local.convert(value, param, ctx)


@dataset.command()
@click.argument("source", type=_PathOrUrl(exists=True))
@click.option(
    "--out",
    "-o",
    required=True,
    type=_PathOrUrl(file_okay=False),
    help="Output folder (or URL) for the shards and dataset.json (created if missing).",
)
@click.option(
    "--format",
    "kind",
    type=click.Choice(["auto", "manifest", "folders", "fma"]),
    default="auto",
    show_default=True,
    help="Source layout; auto detects it.",
)
@click.option(
    "--label-map",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Raw -> new label map (.csv, .json or .toml; see above).",
)
@click.option(
    "--split-fractions",
    default="0.7,0.15,0.15",
    show_default=True,
    callback=_fractions,
    help="train,dev,test fractions for generated splits.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of generated splits.")
@click.option("--resplit", is_flag=True, help="Ignore the source's split and generate new splits.")
@click.option(
    "--sample-rate",
    type=click.IntRange(min=1),
    default=22050,
    show_default=True,
    help="Sample rate of the stored audio, Hz.",
)
@click.option(
    "--max-seconds",
    type=_POSITIVE,
    default=None,
    help="Keep at most this many seconds from the start of each file [default: all].",
)
@click.option(
    "--window",
    type=_POSITIVE,
    default=3.0,
    show_default=True,
    help="Analysis window recorded for training, seconds.",
)
@click.option(
    "--hop",
    type=_POSITIVE,
    default=1.5,
    show_default=True,
    help="Hop between evaluation windows recorded for training, seconds.",
)
@click.option(
    "--shard-size", type=click.IntRange(min=1), default=64, show_default=True, help="Clips per shard file."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Decoding processes (local and direct runners) [default: number of CPUs].",
)
@click.option(
    "--runner",
    type=click.Choice(["local", "direct", "flink", "spark", "dataflow", "portable"]),
    default="local",
    show_default=True,
    help="Who writes the shards: local processes, or Apache Beam on this runner (see RUNNERS).",
)
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- BEAM_OPTIONS...]")
def build(
    source: str | Path,
    out: str | Path,
    kind: str,
    label_map: Path | None,
    split_fractions: tuple[float, float, float],
    seed: int,
    resplit: bool,
    sample_rate: int,
    max_seconds: float | None,
    window: float,
    hop: float,
    shard_size: int,
    workers: int | None,
    runner: str,
    beam_args: tuple[str, ...],
) -> None:
    """Build TFRecord shards and dataset.json from SOURCE into --out.

    \b
    SOURCE (auto-detected; force with --format):
      manifest  a .csv file with columns path, labels (';'-separated),
                optional artist or group (the split unit), optional split
                (train, dev, test; val/validation mean dev). Relative paths
                are resolved against the manifest's folder.
      folders   ROOT/<genre>/*.wav|mp3|ogg|flac|au (any letter case): the
                folder name is the label; each file is its own group.
      fma       ROOT/fma_metadata/tracks.csv plus ROOT/fma_small/ (or
                fma_medium, fma_large, fma_full): label track.genre_top,
                group artist.id, split FMA's training/validation/test.

    \b
    LABEL MAP (--label-map FILE) renames and merges raw labels. Raw labels
    not in the map are dropped; a clip left with no label is skipped.
      .csv   header raw,label then rows like   Pop/Rock,pop_rock
      .json  {"Pop/Rock": "pop_rock", "Rock": "pop_rock"}
      .toml  "Pop/Rock" = "pop_rock"

    \b
    SPLITS: a source's own split is used and checked: one group (artist) in
    two splits is an error naming the group. Without one (or with
    --resplit) train/dev/test splits are generated: group-disjoint,
    deterministic for --seed, stratified so each label with 3+ groups
    reaches train.

    \b
    SHARDS: per split, clips sorted by clip id (the path relative to the
    source) are stored --shard-size per file as train-00000-of-00003-n064.tfrecord
    (n064: records in the file): int16 PCM at --sample-rate, multi-hot
    labels, clip_id, group. dataset.json, written last, lists labels,
    counts, shards with SHA-256, skipped files with reasons, and every clip.
    Shards are written atomically; re-running with unchanged inputs reuses
    intact shards and decodes only missing or damaged ones. Unreadable
    audio is skipped and reported, never fatal.

    \b
    RUNNERS: --runner local (the default) decodes in processes of this
    machine. The others run the same build as an Apache Beam pipeline
    (pip install 'genretag[beam]'), one element per shard, and write the
    same files byte for byte; Beam's own options follow a lone --:
      direct    this machine, --workers processes (DirectRunner)
      flink     -- --flink_master=HOST:8081 --environment_type=DOCKER
                   --environment_config=IMAGE
      spark     -- --spark_master_url=spark://HOST:7077
                   --environment_type=DOCKER --environment_config=IMAGE
      dataflow  -- --project=P --region=R --temp_location=gs://B/tmp
                   --sdk_container_image=IMAGE
      portable  -- --job_endpoint=HOST:8099 (a Beam job server)
    Workers must have genretag installed (IMAGE: deploy/container).

    \b
    STORAGE: SOURCE and --out may be URLs of any filesystem fsspec reaches:
    gs://BUCKET/fma (pip install gcsfs), s3://BUCKET/ds (pip install s3fs,
    AWS credentials and AWS_ENDPOINT_URL as boto reads them), and so on.
    """
    from genretag.training.dataset import BuildOptions, BuildRunnerError, build_dataset
    from genretag.training.layouts import LayoutError
    from genretag.training.splits import SplitError
    from genretag.training.tfrecords import ShardWriteError

    options = BuildOptions(
        kind=None if kind == "auto" else kind,
        label_map=label_map,
        fractions=split_fractions,
        seed=seed,
        resplit=resplit,
        sample_rate=sample_rate,
        max_seconds=max_seconds,
        window_seconds=window,
        hop_seconds=hop,
        shard_size=shard_size,
        workers=workers,
    )
    if beam_args and runner == "local":
        raise click.UsageError(f"Beam options ({' '.join(beam_args)}) need a Beam --runner, not local")
    writer = []
    if runner != "local":
        from genretag.training.beam_build import on_beam

        writer.append(on_beam(runner, beam_args))
    try:
        result = build_dataset(source, out, options, lambda msg: click.echo(msg, err=True), *writer)
    except (LayoutError, SplitError, ShardWriteError, BuildRunnerError) as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:
        raise click.ClickException(f"cannot build the dataset: {err}") from None
    except ImportError as err:  # fsspec's "Install s3fs to access S3"
        if isinstance(err, ModuleNotFoundError):  # a missing extra: the genretag group names it
            raise
        raise click.ClickException(f"cannot reach {source} or {out}: {err}") from None
    click.echo(result.summary())
