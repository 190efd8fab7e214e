"""``zmq:`` source: a bound ZeroMQ PULL socket carrying many named streams.

Producers (``genretag send``, GStreamer, a C program) PUSH messages in the
format of :mod:`genretag.daemon.protocol`.  One receiver thread decodes every
message with a :class:`~genretag.daemon.ingest.receiver.FrameReceiver`, which
reports bad messages, lost ones and idle streams through the sink.

``zmq.MAXMSGSIZE`` makes libzmq refuse a message part larger than
``max_frame_bytes`` + 1 KiB before buffering it, so a hostile producer cannot
make the daemon allocate gigabytes; libzmq then drops that producer's
connection (it reconnects by itself), which is invisible here.  Parts between
``max_frame_bytes`` and the slack are refused, and counted, as ``too_large``.

With curve keys (``secure``), producers without CURVE or with a key not on
the list are refused by libzmq before any message is read; they are counted
by :mod:`genretag.daemon.curve`, not here.

With ``workers`` > 0 the receiver thread only relays, through a ZeroMQ proxy
that holds no interpreter lock, to a router process that sends each message,
by a hash of its stream id, to one of that many ingest processes
(:mod:`genretag.daemon.ingest`), which decode and window it and send the
windows back.  One thread decoding and windowing every stream tops out at a
few thousand messages a second, well short of what one GPU scores.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import zmq

from genretag.daemon.ingest.pool import IngestPool, WindowedSink
from genretag.daemon.ingest.receiver import FrameReceiver
from genretag.daemon.ingest.sockets import POLL_MS, recv_frames
from genretag.daemon.options import option
from genretag.daemon.protocol import DEFAULT_LIMITS, Limits
from genretag.daemon.sources.base import BuildEnv, RowAllocator, SourceSink, SourceWorker, plain_rows

log = logging.getLogger(__name__)

MAXMSGSIZE_SLACK = 1024


MAX_WORKERS = 64


def check_endpoint(target: str) -> str:
    """The target of a ``zmq:`` spec, the endpoint to bind; ValueError unless ``tcp://`` or ``ipc://``."""
    parts = urlsplit(target)
    if parts.scheme not in ("tcp", "ipc") or not (parts.netloc or parts.path):
        raise ValueError(f"zmq: needs a tcp://HOST:PORT or ipc://PATH endpoint, got {target!r}")
    return target


@dataclass(frozen=True)
class ZmqConfig:
    """The options of a ``zmq:`` source (``[[source]]`` keys or the spec's ``?key=value``); see
    :class:`ZmqSource`."""

    idle: float = option(5.0, lambda v: 0.1 <= v <= 3600, "must be 0.1..3600 seconds")
    workers: int = option(0, lambda v: 0 <= v <= MAX_WORKERS, f"must be a whole number 0..{MAX_WORKERS}")
    hwm: int = option(1000, lambda v: 1 <= v <= 1_000_000, "must be 1..1000000")


class ZmqSource:
    """A PULL socket bound at ``address``; see the module docstring.

    ``address`` may use port ``*`` (``tcp://127.0.0.1:*``) to let the OS choose;
    :attr:`address` holds the bound endpoint after :meth:`start`.  ``secure`` is
    called with the socket before it binds, e.g. to make it a CURVE server
    (:meth:`genretag.daemon.curve.CurveGuard.server`).  ``workers`` > 0 decodes
    and windows in that many processes; the sink must then be a
    :class:`~genretag.daemon.ingest.pool.WindowedSink` (the daemon's Tagger), and
    ``allocate_rows`` makes the buffer their windows are received into
    (:data:`~genretag.daemon.ingest.pool.RowAllocator`).
    """

    def __init__(
        self,
        name: str,
        address: str,
        *,
        limits: Limits = DEFAULT_LIMITS,
        idle_timeout: float = 5.0,
        rcvhwm: int = 1000,
        workers: int = 0,
        context: zmq.Context[Any] | None = None,
        secure: Callable[[zmq.Socket[Any]], None] | None = None,
        allocate_rows: RowAllocator = plain_rows,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be > 0, got {idle_timeout}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.name = name
        self.address = address
        self.limits = limits
        self.idle_timeout = idle_timeout
        self.workers = workers
        self._rcvhwm = rcvhwm
        self._secure = secure
        self._allocate_rows = allocate_rows
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket[Any] | None = None
        self._worker = SourceWorker()
        self._pool: IngestPool | None = None

    @classmethod
    def from_config(cls, name: str, target: str, config: ZmqConfig, env: BuildEnv) -> ZmqSource:
        """The source of a ``zmq:ENDPOINT`` spec (:mod:`~genretag.daemon.sources.registry`)."""
        return cls(
            name,
            target,
            limits=env.limits,
            idle_timeout=config.idle,
            rcvhwm=config.hwm,
            workers=config.workers,
            secure=env.secure,
            allocate_rows=env.allocate_rows,
        )

    @property
    def windows_in_workers(self) -> bool:
        """Streams are windowed in worker processes, whose window geometry is fixed until a restart."""
        return self.workers > 0

    def start(self, sink: SourceSink) -> None:
        """Bind now (a bad or busy address raises ``zmq.ZMQError`` here) and start receiving.

        With workers, they are started first and this returns once each has said hello.
        """
        if self.workers:
            windowed: WindowedSink = sink  # type: ignore[assignment]
            self._pool = IngestPool(
                self.workers, windowed, self.limits, self.idle_timeout, self._allocate_rows
            )
            self._pool.start()
        socket = self._context.socket(zmq.PULL)
        socket.setsockopt(zmq.MAXMSGSIZE, self.limits.max_frame_bytes + MAXMSGSIZE_SLACK)
        socket.setsockopt(zmq.RCVHWM, self._rcvhwm)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            if self._secure is not None:
                self._secure(socket)
            socket.bind(self.address)
        except zmq.ZMQError:
            socket.close()
            if self._pool is not None:
                self._pool.stop(1.0)
            raise
        self.address = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._socket = socket
        self._worker.start(lambda: self._run(sink), f"zmq-{self.address}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop receiving; the streams still up are reported down, then the socket is closed."""
        if self._pool is not None:
            self._pool.end_relay()
        self._worker.stop(timeout)
        if self._pool is not None:
            self._pool.stop(timeout)

    def _run(self, sink: SourceSink) -> None:
        assert self._socket is not None
        socket = self._socket
        if self._pool is not None:
            try:
                self._pool.relay(socket)
            finally:
                socket.close()
            return
        receiver = FrameReceiver(self.limits, self.idle_timeout)
        try:
            while not self._worker.stopping.is_set():
                if socket.poll(POLL_MS):
                    # Drain what is waiting before looking at idle streams again.
                    while not self._worker.stopping.is_set():
                        try:
                            parts = recv_frames(socket)
                        except zmq.Again:
                            break
                        receiver.handle(sink, parts, time.monotonic())
                receiver.expire(sink, time.monotonic())
        finally:
            receiver.close(sink, "stopped", "source stopped")
            socket.close()
