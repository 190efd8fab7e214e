"""``genretag serve`` and ``genretag check-config``: run or check the tagging daemon.

Only click is imported at module level; the daemon (numpy, pyzmq, the model)
is imported inside the commands so ``genretag --help`` stays instant, and
``KERAS_BACKEND`` is set before anything can import Keras.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

from genretag.cli import messages
from genretag.cli.model_option import MODEL_HELP, runtime_option

DEMO_RATE = 1
# What each bundled demo clip is (genretag.pipeline.synth made them; `python -m genretag.pipeline.synth`).
DEMO_CLIPS = {
    "demo-electronic.flac": "a synthesised drum-machine loop with a gated pad, 128 BPM",
    "demo-strings.flac": "synthesised sine-tone string chords: no recording, no real instrument",
}
DEMO_NOTICE = (
    "no sources configured: tagging the bundled demo audio, looped in real time (Ctrl-C stops).\n"
    "It is synthetic, made by genretag.pipeline.synth, not music the model learned from (real recordings):\n"
    "{clips}\n"
    "The loop is close to electronic music; the sine-tone chords resemble no genre the model knows, so its "
    "label for them is no verdict.\n"
    "Tag real audio with --source (file:SONG.mp3, url:http://..., mic:); a stream's first label comes "
    "once the smoother has seen a few windows of it (several seconds)."
)


def demo_specs() -> list[dict[str, str]]:
    """``file:`` sources for the bundled demo audio, looped in real time."""
    return [{"spec": f"file:{path}?rate={DEMO_RATE}&loop=1"} for path in demo_files()]


def demo_files() -> list[Path]:
    demo = files("genretag.cli") / "demo"
    return [
        Path(str(demo / entry.name))
        for entry in sorted(demo.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".flac")
    ]


def demo_notice() -> str:
    """What a newcomer is told the demo plays (every bundled clip described, see :data:`DEMO_CLIPS`)."""
    return DEMO_NOTICE.format(
        clips="\n".join(f"  {path.stem}: {DEMO_CLIPS[path.name]}" for path in demo_files())
    )


# Config key paths a flag sets, for naming the flag in an error about its value.
FLAG_KEYS = {
    "model.path": "--model",
    "model.runtime": "--runtime",
    "model.backend": "--keras-backend",
    "publish.address": "--publish",
    "metrics.address": "--metrics",
    "batch.max_batch_size": "--max-batch",
    "batch.max_wait_ms": "--max-wait-ms",
    "publish.scores": "--scores",
}


def flag_terms(problem: str, overrides: dict[str, Any]) -> str:
    """A config problem about a value given by a flag, worded with the flag (``source[1].spec: ...``
    becomes ``--source 'zmq:...': ...``); problems about the file's own values keep their key path."""
    key, sep, rest = problem.partition(": ")
    if not sep:
        return problem
    match = re.fullmatch(r"source\[(\d+)\]\.(\w+)", key)
    if match and "source" in overrides and int(match[1]) < len(overrides["source"]):
        spec = overrides["source"][int(match[1])]["spec"]
        return f"--source {spec!r}: {rest}" if match[2] == "spec" else problem
    if key in FLAG_KEYS and key in overrides:
        return f"{FLAG_KEYS[key]} {overrides[key]!r}: {rest}"
    return problem


def _overrides(
    sources: tuple[str, ...],
    model: Path | None,
    publish: str | None,
    metrics: str | None,
    max_batch: int | None,
    max_wait_ms: float | None,
    scores: bool | None,
    runtime: str | None,
    backend: str | None,
    shards: int | None = None,
    shard_index: int | None = None,
) -> dict[str, Any]:
    """Command-line flags as config key paths (None: not given, the file or the default decides)."""
    given = {
        "model.path": str(model) if model else None,
        "model.runtime": runtime,
        "model.backend": backend,
        "publish.address": publish,
        "metrics.address": metrics,
        "batch.max_batch_size": max_batch,
        "batch.max_wait_ms": max_wait_ms,
        "publish.scores": scores,
        "fleet.shards": shards,
        "fleet.index": shard_index,
    }
    out: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    if sources:
        out["source"] = [{"spec": spec} for spec in sources]
    return out


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML configuration file (validate it with `genretag check-config`).",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="SPEC",
    help="An audio source, KIND:TARGET: mic:, file:PATH, url:URL, zmq:ENDPOINT; file: and zmq: "
    "take their options as ?key=value, url: and mic: only as [[source]] keys in --config "
    "(repeatable; replaces the file's [[source]] entries).",
)
@click.option("--model", type=click.Path(path_type=Path, file_okay=False), help=MODEL_HELP)
@click.option("--publish", metavar="tcp://HOST:PORT", help="Event PUB address [tcp://127.0.0.1:5556].")
@click.option("--metrics", metavar="HOST:PORT", help="Prometheus /metrics address [127.0.0.1:9464].")
@click.option("--print", "print_events", is_flag=True, help="Also write each event as a JSON line to stdout.")
@click.option("--max-batch", type=click.IntRange(1, 4096), help="Windows per inference batch at most [64].")
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(0, 10000, min_open=True),
    help="Longest wait for a batch to fill, in ms [50].",
)
@click.option("--scores/--no-scores", default=None, help="Publish a scores event for every window [no].")
@runtime_option(default=None)
@click.option(
    "--keras-backend",
    type=click.Choice(["tensorflow", "jax", "torch"]),
    help="Keras backend for --runtime keras (where installed) [tensorflow].",
)
@click.option(
    "--shards",
    type=click.IntRange(1, 10000),
    help="Daemons in the fleet this one belongs to ([fleet] shards) [1].",
)
@click.option(
    "--shard-index",
    type=click.IntRange(0, 9999),
    envvar="GENRETAG_SHARD_INDEX",
    help="This daemon's number in the fleet, 0..shards-1 ([fleet] index; env GENRETAG_SHARD_INDEX: a "
    "StatefulSet pod's ordinal, a genretag@N unit's N): it tags the streams of its shard only [0].",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def serve(
    config_path: Path | None,
    sources: tuple[str, ...],
    model: Path | None,
    publish: str | None,
    metrics: str | None,
    print_events: bool,
    max_batch: int | None,
    max_wait_ms: float | None,
    scores: bool | None,
    runtime: str | None,
    keras_backend: str | None,
    shards: int | None,
    shard_index: int | None,
    log_level: str,
) -> None:
    """Tag live audio streams and publish genre events (the daemon).

    \b
    Sources (SPEC is KIND:TARGET):
      file:PATH[?rate=1&loop=0]   a file at R x real time (rate=0: as fast as possible)
      zmq:tcp://HOST:PORT         a PULL socket for many named streams: multipart messages
                                  [stream-id, header JSON {sr, channels, dtype, seq}, PCM]
                                  (`genretag send` is a producer; see the README)
      url:http://HOST/stream      internet radio through ffmpeg, reconnecting with backoff
      mic:[DEVICE]                a sound card input (see `genretag devices`)
    Without --source and without sources in --config, the bundled demo audio
    (two synthetic clips: a drum-machine loop and sine-tone chords) is tagged,
    looped in real time, with events printed.

    \b
    Events go out on a ZeroMQ PUB socket as [topic, JSON], topic
    genretag.<type>.<stream>; `genretag subscribe` prints them.  Every event has
    v (schema version 1), type (label, scores, state, mood, analysis), stream,
    time (Unix s), pos (stream s), label (null while silent or not settled),
    confidence and scores (genre -> smoothed probability); label events add
    prev, state events add state (up, down, silence, recovered, speech,
    music); with a model that has heads, talk holds the genre (state speech)
    and mood, tags, tempo and key come as optional keys (README, "Events").

    A fleet of N daemons shares one config: each runs with --shards N and its
    own --shard-index, starts the single-stream sources of its shard and
    refuses other shards' zmq streams (`genretag fleet plan` shows who tags what).

    CURVE encryption and client keys for the ZeroMQ sockets are set in the
    config file (curve_secret_key, curve_clients; `genretag keys generate`).
    Flags override the config file.  SIGHUP reloads the config and the model
    (a broken model is refused, the old one keeps serving); SIGTERM stops.
    Metrics for Prometheus are on http://127.0.0.1:9464/metrics by default,
    from the first second: genretag_ready is 0 while the model loads (under a
    second through OpenVINO, seconds with --runtime keras), 1 once the daemon serves.
    """
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if keras_backend:
        os.environ["KERAS_BACKEND"] = keras_backend
    from genretag.daemon.config import ConfigError, load_config
    from genretag.daemon.service import Service

    overrides = _overrides(
        sources,
        model,
        publish,
        metrics,
        max_batch,
        max_wait_ms,
        scores,
        runtime,
        keras_backend,
        shards,
        shard_index,
    )

    def configure() -> Any:
        return load_config(config_path, overrides)

    try:
        config = configure()
        if not config.sources:
            overrides["source"] = demo_specs()
            print_events = True
            config = configure()
            click.echo(demo_notice(), err=True)
    except ConfigError as err:
        for problem in err.problems:
            messages.error(flag_terms(problem, overrides))
        sys.exit(1)
    try:
        code = Service(config, configure, print_events=print_events).run()
    except Exception as err:  # noqa: BLE001  (start-up failures: one clear line, not a traceback)
        logging.getLogger("genretag.daemon").debug("start-up failed", exc_info=True)
        raise click.ClickException(f"cannot start: {err}") from None
    sys.exit(code)


@click.command("check-config")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False))
def check_config(path: Path) -> None:
    """Validate a daemon config FILE without starting anything; print every problem.

    Checks types, ranges, unknown keys, source specs, curve key files (missing,
    unreadable, malformed, readable by every user), public binds (ZeroMQ: curve
    keys or allow_public = true; metrics: allow_public = true) and that the
    model artifact is readable.  Exit 0 when the file is valid, 1 otherwise.
    """
    from genretag.daemon.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as err:
        for problem in err.problems:
            click.echo(f"{path}: {problem}")
        click.echo(f"{len(err.problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo(f"{path}: OK ({len(config.sources)} source(s))")
