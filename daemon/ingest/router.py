"""The ingest router process: sends each producer message to its stream's worker.

Routing costs little per message (a CRC of the stream id and three sends),
but at 10,000 messages a second in the daemon's process it held the
interpreter lock that the collector and the inference thread wait for
(``benchmarks/RESULTS.md``, "What limits it").  So the daemon's receiver thread only relays: a
ZeroMQ proxy (C, no lock held) moves every message from the producers'
socket to this process, which routes it, by a hash of its stream id, to one
of the ingest workers (:mod:`~genretag.daemon.ingest.worker`).  Every
message of a stream goes to the same worker, in order, malformed ones too,
so that the worker refuses them in order with the stream's other messages.

The router appends the arrival time (``ARRIVAL``, a packed double of
``time.monotonic()``) as a last part, so latency counts from here; a one-part
message from the daemon means "stop": it is passed on to every worker after
the messages before it, and the router says ``bye`` and exits.  Like the
workers it ignores SIGINT and SIGTERM and exits if the daemon is gone.
"""

from __future__ import annotations

import os
import signal
import time
import zlib
from dataclasses import dataclass
from typing import Any

import zmq

from genretag.daemon.ingest.results import Bye, Hello, encode
from genretag.daemon.ingest.sockets import ARRIVAL, AUDIO_HWM, POLL_MS, daemon_pid, recv_frames, send_frames


@dataclass(frozen=True)
class RouterConfig:
    """Everything the router needs, passed to the new process at its start."""

    index: int  # its place among the pool's processes, after the workers
    relay: str  # endpoint the daemon's relay PUSHes the producers' messages to
    inboxes: tuple[str, ...]  # endpoint of each worker's inbox, bound here
    outbox: str  # endpoint of the daemon's results socket (for hello and bye)


def worker_of(stream_id: bytes | memoryview, workers: int) -> int:
    """The worker that handles ``stream_id`` (its UTF-8 bytes), the same for every message."""
    return zlib.crc32(stream_id) % workers


def run(config: RouterConfig) -> None:
    """The router process's main function (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = daemon_pid()
    context = zmq.Context(io_threads=2)  # one for the relay in, one for the inboxes out
    relay = context.socket(zmq.PULL)
    relay.setsockopt(zmq.RCVHWM, AUDIO_HWM)
    relay.connect(config.relay)
    inboxes = []
    for endpoint in config.inboxes:
        inbox = context.socket(zmq.PUSH)
        inbox.setsockopt(zmq.SNDHWM, AUDIO_HWM)
        inbox.setsockopt(zmq.SNDTIMEO, POLL_MS)
        inbox.setsockopt(zmq.LINGER, 10_000)  # the last messages and the stop must reach the workers
        inbox.bind(endpoint)
        inboxes.append(inbox)
    out = context.socket(zmq.PUSH)
    out.setsockopt(zmq.LINGER, 10_000)
    out.connect(config.outbox)
    out.send(encode([Hello(config.index)]))
    try:
        if _route(relay, inboxes, parent):
            out.send(encode([Bye(config.index)]))
    finally:
        relay.close(linger=0)
        linger = None if os.getppid() == parent else 0  # a gone daemon's workers read nothing more
        for socket in [*inboxes, out]:
            socket.close(linger=linger)
        context.term()


def _route(relay: zmq.Socket[Any], inboxes: list[zmq.Socket[Any]], parent: int) -> bool:
    """Route until the daemon (pid ``parent``) says stop (True) or is gone (False)."""
    while os.getppid() == parent:
        if not relay.poll(POLL_MS):
            continue
        while True:
            try:
                frames = recv_frames(relay)
            except zmq.Again:
                break
            if len(frames) == 1:
                return all(_send(inbox, [b""], parent) for inbox in inboxes)
            parts: list[zmq.Frame | bytes] = [*frames, ARRIVAL.pack(time.monotonic())]
            if not _send(inboxes[worker_of(frames[0].buffer, len(inboxes))], parts, parent):
                return False
    return False


def _send(inbox: zmq.Socket[Any], parts: list[zmq.Frame | bytes], parent: int) -> bool:
    """Send, blocking while the worker's queue is full (which backs up to the producers); False if the
    daemon is gone meanwhile.  A dead worker's queue is full until the daemon has started it again."""
    while True:
        try:
            send_frames(inbox, parts)
            return True
        except zmq.Again:
            if os.getppid() != parent:
                return False
