"""``genretag fleet``: which daemon of a fleet tags which stream (:mod:`genretag.daemon.fleet`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import click

from genretag.cli import messages


@click.group()
def fleet() -> None:
    """Run several daemons as one fleet: the streams are sharded by a hash of their id.

    \b
    Every daemon reads the same config and runs with --shards N and its own
    --shard-index (a Kubernetes StatefulSet pod's ordinal, a systemd genretag@N
    unit's N): it starts the single-stream sources ([[source]] file:, url:, mic:)
    of its shard and refuses the zmq: streams of the others, which
    `genretag send` routes when given one --to per daemon.  The hash is
    Prometheus' hashmod (MD5 of the stream id, last 8 bytes, modulo N).
    """


@fleet.command()
@click.argument(
    "config_path", metavar="CONFIG", required=False, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--shards", required=True, type=click.IntRange(1, 10000), help="Daemons in the fleet.")
@click.option(
    "--from",
    "before",
    type=click.IntRange(1, 10000),
    help="Also show which streams move when the fleet goes from this many daemons to --shards.",
)
@click.option(
    "--stream",
    "streams",
    multiple=True,
    metavar="ID",
    help="A stream id fed through a zmq: source (repeatable); the config's own sources are listed anyway.",
)
@click.option(
    "--streams-file",
    type=click.File("r"),
    help="Stream ids, one per line (zmq: streams; '-' for stdin).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
def plan(
    config_path: Path | None,
    shards: int,
    before: int | None,
    streams: tuple[str, ...],
    streams_file: TextIO | None,
    as_json: bool,
) -> None:
    """Show which daemon of --shards tags each stream of CONFIG (and of --stream, --streams-file), and with
    --from what moves when the fleet changes size."""
    from genretag.daemon.config import ConfigError, load_config
    from genretag.daemon.fleet import moves
    from genretag.daemon.fleet import plan as shard_plan
    from genretag.daemon.protocol import FrameError, check_stream_id
    from genretag.daemon.sources.registry import default_name

    ids: list[str] = []
    if config_path is not None:
        try:
            config = load_config(config_path, check_model=False)
        except ConfigError as err:
            for problem in err.problems:
                messages.error(f"{config_path}: {problem}")
            raise SystemExit(1) from None
        ids += [
            s.name or default_name(s.source) for s in config.sources if not s.source.source_kind.multi_stream
        ]
    ids += list(streams)
    if streams_file is not None:
        ids += [line.strip() for line in streams_file if line.strip()]
    for stream in ids:
        try:
            check_stream_id(stream)
        except FrameError as err:
            raise click.BadParameter(str(err), param_hint="--stream / --streams-file") from None
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise click.UsageError(
            "no streams: give a CONFIG with single-stream sources, --stream or --streams-file"
        )
    table = shard_plan(ids, shards)
    moved = moves(ids, before, shards) if before is not None else []
    if as_json:
        out: dict[str, object] = {"shards": shards, "daemons": {str(i): s for i, s in table.items()}}
        if before is not None:
            out["moves"] = [{"stream": s, "from": old, "to": new} for s, old, new in moved]
        click.echo(json.dumps(out))
        return
    for index, owned in table.items():
        click.echo(
            f"daemon {index} ({len(owned)} stream{'s' * (len(owned) != 1)}): {', '.join(owned) or '-'}"
        )
    if before is not None:
        share = len(moved) / len(ids)
        click.echo(
            f"from {before} to {shards} daemons: {len(moved)} of {len(ids)} streams move ({share:.0%})"
        )
        for stream, old, new in moved:
            click.echo(f"  {stream}: daemon {old} -> {new}")
