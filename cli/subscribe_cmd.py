"""``genretag subscribe``: print a daemon's events as they arrive.

The reference subscriber of :mod:`genretag.daemon.events`; pyzmq is imported
inside the command so ``genretag --help`` stays instant.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from genretag.cli import messages
from genretag.cli.curve_options import connect_client, curve_options


def _format(event: dict[str, Any]) -> str:
    """One human-readable line: local time, stream, position, type and what changed."""
    when = datetime.fromtimestamp(event["time"]).isoformat(sep=" ", timespec="milliseconds")
    label = event["label"] or "-"
    if event["confidence"] is not None:
        label += f" {event['confidence']:.3f}"
    line = f"{when} {event['stream']} {event['pos']:.1f}s {event['type']}"
    why = f": {event['reason']}" if event.get("reason") else ""
    if event["type"] == "label":
        return f"{line} {label} (was {event['prev'] or '-'}{why})"
    if event["type"] == "state":
        return f"{line} {event['state']}{why} label={label}"
    if event["type"] == "mood":
        return f"{line} {event['mood'] or '-'} (was {event['prev'] or '-'}) label={label}"
    if event["type"] == "analysis":
        return f"{line} {_descriptors(event)} label={label}"
    top = sorted(event["scores"].items(), key=lambda kv: -kv[1])[:3]
    return f"{line} {label} [" + " ".join(f"{genre}={p:.3f}" for genre, p in top) + "]"


def _descriptors(event: dict[str, Any]) -> str:
    """Tempo, key and mood of an analysis event, as far as it has them."""
    tempo, key = event.get("tempo"), event.get("key")
    parts = [
        f"tempo={tempo['bpm']:.1f}" if tempo else "tempo=-",
        f"key={key['name']}" if key else "key=-",
    ]
    if "mood" in event:
        parts.append(f"mood={event['mood'] or '-'}")
    return " ".join(parts)


@click.command()
@click.argument("addresses", nargs=-1, required=True, metavar="tcp://HOST:PORT...")
@click.option("--stream", "stream_id", help="Only events of this stream.")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="Only events of this type: label, scores, state, mood or analysis (repeatable; default all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print each event's JSON as received, one per line.")
@click.option("--count", type=click.IntRange(min=1), help="Exit 0 after printing N events.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Exit 1 when no event arrives for this long.",
)
@curve_options
def subscribe(
    addresses: tuple[str, ...],
    stream_id: str | None,
    types: tuple[str, ...],
    as_json: bool,
    count: int | None,
    timeout: float | None,
    curve_server_key: Path | None,
    curve_key: Path | None,
) -> None:
    """Print events from a daemon's publish address (or from every daemon of a fleet: give each one's
    address) as they arrive, merged.

    One line per event, flushed at once so a pipe sees it live: by default
    time, stream, position, type, label and confidence plus the previous label
    (label events), the state (state events), the mood and the one before
    (mood events), tempo, key and mood (analysis events) or the top scores
    (scores events); with --json the event's JSON object (schema: see the README).
    Messages that are not genretag events are reported on stderr and skipped.
    A daemon whose publisher has curve keys needs --curve-server-key (and
    --curve-key when it lists its clients); a refused subscriber receives
    nothing (use --timeout), and the daemon counts the refusal.
    """
    import zmq

    from genretag.daemon.events import EVENT_TYPES, decode_event, subscriptions

    # Ctrl-C stops it even when it was started with SIGINT ignored (nohup, a shell's background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise click.BadParameter(
            f"unknown event type {', '.join(unknown)} (one of {', '.join(EVENT_TYPES)})", param_hint="--type"
        )
    context = zmq.Context()
    socket, handshake = connect_client(context, zmq.SUB, addresses, curve_server_key, curve_key, "ADDRESS")
    for prefix in subscriptions(types, stream_id):
        socket.subscribe(prefix)
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    poller.register(handshake.monitor, zmq.POLLIN)
    printed, code = 0, 0
    try:
        while count is None or printed < count:
            ready = dict(poller.poll(None if timeout is None else int(timeout * 1000)))
            if handshake.monitor in ready:
                handshake.check()  # a refusal ends the command with the reason
                continue
            if socket not in ready:
                click.echo(f"no event from {', '.join(addresses)} for {timeout:g} s", err=True)
                code = 1
                break
            parts = socket.recv_multipart()
            try:
                event = decode_event(parts)
                if stream_id is not None and event["stream"] != stream_id:
                    continue  # the prefix also matched a longer stream id
                line = parts[1].decode() if as_json else _format(event)
            except (ValueError, KeyError, TypeError) as err:
                messages.warning(f"skipped a message that is not a genretag event: {err!r}")
                continue
            click.echo(line)  # click.echo flushes
            printed += 1
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # e.g. | head: stop quietly, and keep the exit-time flush quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except click.ClickException:
        context.destroy(linger=0)
        raise
    context.destroy(linger=0)
    sys.exit(code)
