"""``genretag serve`` and ``genretag check-config``: run or check the tagging daemon.

Only click is imported at module level; the daemon (numpy, pyzmq, the model)
is imported inside the commands so ``genretag --help`` stays instant, and
``KERAS_BACKEND`` is set before anything can import Keras.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

DEMO_RATE = 1


def demo_specs() -> list[dict[str, str]]:
    """``file:`` sources for the bundled demo audio, looped in real time."""
    demo = files("genretag.cli") / "demo"
    return [{"spec": f"file:{Path(str(demo / entry.name))}?rate={DEMO_RATE}&loop=1"}
            for entry in sorted(demo.iterdir(), key=lambda e: e.name) if entry.name.endswith(".flac")]


def _overrides(sources: tuple[str, ...], model: Path | None, publish: str | None, metrics: str | None,
               max_batch: int | None, max_wait_ms: float | None, scores: bool | None,
               backend: str | None) -> dict[str, Any]:
    """Command-line flags as config key paths (None: not given, the file or the default decides)."""
    given = {"model.path": str(model) if model else None, "model.backend": backend,
             "publish.address": publish, "metrics.address": metrics, "batch.max_batch_size": max_batch,
             "batch.max_wait_ms": max_wait_ms, "publish.scores": scores}
    out: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    if sources:
        out["source"] = [{"spec": spec} for spec in sources]
    return out


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="TOML configuration file (validate it with `genretag check-config`).")
@click.option("--source", "sources", multiple=True, metavar="SPEC",
              help="An audio source (repeatable; replaces the file's [[source]] entries).")
@click.option("--model", type=click.Path(path_type=Path, file_okay=False),
              help="Model artifact directory, or a bundled model: \"default\" (musicnn, most accurate) "
                   "or \"fast\" (distilled, for many streams) [default].")
@click.option("--publish", metavar="tcp://HOST:PORT", help="Event PUB address [tcp://127.0.0.1:5556].")
@click.option("--metrics", metavar="HOST:PORT", help="Prometheus /metrics address [127.0.0.1:9464].")
@click.option("--print", "print_events", is_flag=True, help="Also write each event as a JSON line to stdout.")
@click.option("--max-batch", type=click.IntRange(1, 4096), help="Windows per inference batch at most [64].")
@click.option("--max-wait-ms", type=click.FloatRange(0, 10000, min_open=True),
              help="Longest wait for a batch to fill, in ms [50].")
@click.option("--scores/--no-scores", default=None, help="Publish a scores event for every window [no].")
@click.option("--keras-backend", type=click.Choice(["tensorflow", "jax", "torch"]),
              help="Keras backend for Keras artifacts (where installed) [tensorflow].")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(config_path: Path | None, sources: tuple[str, ...], model: Path | None, publish: str | None,
          metrics: str | None, print_events: bool, max_batch: int | None, max_wait_ms: float | None,
          scores: bool | None, keras_backend: str | None, log_level: str) -> None:
    """Tag live audio streams and publish genre events (the daemon).

    \b
    Sources (SPEC is KIND:TARGET):
      file:PATH[?rate=1&loop=0]   a file at R x real time (rate=0: as fast as possible)
      zmq:tcp://HOST:PORT         a PULL socket for many named streams: multipart messages
                                  [stream-id, header JSON {sr, channels, dtype, seq}, PCM]
                                  (`genretag send` is a producer; see the README)
      url:http://HOST/stream      internet radio through ffmpeg, reconnecting with backoff
      mic:[DEVICE]                a sound card input (see `genretag devices`)
    Without --source and without sources in --config, the bundled demo audio is
    tagged, looped in real time, with events printed.

    \b
    Events go out on a ZeroMQ PUB socket as [topic, JSON], topic
    genretag.<type>.<stream>; `genretag subscribe` prints them.  Every event has
    v (schema version 1), type (label, scores, state), stream, time (Unix s),
    pos (stream s), label (null while silent or not settled), confidence and
    scores (genre -> smoothed probability); label events add prev, state
    events add state (up, down, silence, recovered).

    CURVE encryption and client keys for the ZeroMQ sockets are set in the
    config file (curve_secret_key, curve_clients; `genretag keys generate`).
    Flags override the config file.  SIGHUP reloads the config and the model
    (a broken model is refused, the old one keeps serving); SIGTERM stops.
    Metrics for Prometheus are on http://127.0.0.1:9464/metrics by default.
    """
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if keras_backend:
        os.environ["KERAS_BACKEND"] = keras_backend
    from genretag.daemon.config import ConfigError, load_config
    from genretag.daemon.service import Service

    overrides = _overrides(sources, model, publish, metrics, max_batch, max_wait_ms, scores, keras_backend)

    def configure() -> Any:
        return load_config(config_path, overrides)

    try:
        config = configure()
        if not config.sources:
            overrides["source"] = demo_specs()
            print_events = True
            config = configure()
            click.echo("no sources configured: tagging the bundled demo audio (Ctrl-C stops)", err=True)
    except ConfigError as err:
        for problem in err.problems:
            click.echo(f"error: {problem}", err=True)
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
