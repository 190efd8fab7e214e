"""``zmq:`` source: a bound ZeroMQ PULL socket carrying many named streams.

Producers (``genretag send``, GStreamer, a C program) PUSH messages in the
format of :mod:`genretag.daemon.protocol`.  One receiver thread decodes every
message; a bad message is reported through ``sink.error`` with the refusal's
``reason`` as the kind (and the stream id when it could be read, else
``"?"``) and the stream carries on with its next message.

``zmq.MAXMSGSIZE`` makes libzmq refuse a message part larger than
``max_frame_bytes`` + 1 KiB before buffering it, so a hostile producer cannot
make the daemon allocate gigabytes; libzmq then drops that producer's
connection (it reconnects by itself), which is invisible here.  Parts between
``max_frame_bytes`` and the slack are refused, and counted, as ``too_large``.

With curve keys (``secure``), producers without CURVE or with a key not on
the list are refused by libzmq before any message is read; they are counted
by :mod:`genretag.daemon.curve`, not here.

Per stream, a :class:`~genretag.daemon.protocol.SequenceTracker` counts lost
messages (``seq_gap``) and producer restarts (``seq_restart``); a stream is
``up`` from its first valid message and ``down`` after ``idle_timeout``
seconds without one, after which its bookkeeping is forgotten.

With ``workers`` > 0 the receiver thread only relays, through a ZeroMQ proxy
that holds no interpreter lock, to a router process that sends each message,
by a hash of its stream id, to one of that many ingest processes
(:mod:`genretag.daemon.sources.ingest_pool`), which decode and window it and
send the windows back.  One thread decoding and windowing every stream tops
out at a few thousand messages a second, well short of what one GPU scores.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from genretag.daemon.protocol import (
    DEFAULT_LIMITS,
    FrameError,
    Limits,
    SequenceTracker,
    check_stream_id,
    decode_frame,
)
from genretag.daemon.sources.base import Chunk, SourceSink, SourceWorker

if TYPE_CHECKING:
    from genretag.daemon.sources.ingest_pool import IngestPool, WindowedSink

log = logging.getLogger(__name__)

MAXMSGSIZE_SLACK = 1024
POLL_MS = 100  # how often the thread looks at the stop flag and idle streams


class FrameReceiver:
    """Decodes messages and keeps each stream's ``seq`` bookkeeping and idle clock.

    The part of the source that runs wherever the messages are decoded: in the
    source's own thread, or in each ingest worker process for its share of the streams.
    """

    def __init__(self, limits: Limits, idle_timeout: float) -> None:
        self.limits = limits
        self.idle_timeout = idle_timeout
        self._streams: dict[str, tuple[SequenceTracker, float]] = {}  # id -> (seq, last message time)
        self._next_expiry = 0.0

    def handle(self, sink: SourceSink, parts: list[Any], now: float) -> None:
        """One received message (``zmq.Frame`` parts) to ``sink``: audio, ``up``, or an error."""
        buffers = [part.buffer for part in parts]
        try:
            frame = decode_frame(buffers, self.limits)
        except FrameError as err:
            sink.error(stream_of(buffers), err.reason, str(err))
            return
        entry = self._streams.get(frame.stream_id)
        tracker = entry[0] if entry else SequenceTracker()
        self._streams[frame.stream_id] = (tracker, now)
        if entry is None:
            sink.state(frame.stream_id, "up")
        check = tracker.observe(frame.seq)
        if check.missed:
            sink.error(frame.stream_id, "seq_gap", f"{check.missed} message(s) lost before seq {frame.seq}")
        elif check.restart:
            sink.error(frame.stream_id, "seq_restart", f"seq went back to {frame.seq}: producer restarted")
        sink.audio(Chunk(frame.stream_id, frame.samples, frame.sr, now))

    def expire(self, sink: SourceSink, now: float) -> None:
        """Report streams idle for ``idle_timeout`` down, at most every ``POLL_MS``.

        The scan visits every stream: under load the socket empties many times a
        second, and scanning 10,000 streams each time cost more than their messages.
        """
        if now < self._next_expiry:
            return
        self._next_expiry = now + POLL_MS / 1000
        idle = [s for s, (_, last) in self._streams.items() if now - last > self.idle_timeout]
        for stream in idle:
            del self._streams[stream]
            sink.state(stream, "down", "idle", f"no message for {self.idle_timeout:g} s")

    def close(self, sink: SourceSink, reason: str, detail: str = "") -> None:
        """Report every stream down (``reason``: an event reason word) and forget them."""
        for stream in list(self._streams):
            sink.state(stream, "down", reason, detail)
        self._streams.clear()


class ZmqSource:
    """A PULL socket bound at ``address``; see the module docstring.

    ``address`` may use port ``*`` (``tcp://127.0.0.1:*``) to let the OS choose;
    :attr:`address` holds the bound endpoint after :meth:`start`.  ``secure`` is
    called with the socket before it binds, e.g. to make it a CURVE server
    (:meth:`genretag.daemon.curve.CurveGuard.server`).  ``workers`` > 0 decodes
    and windows in that many processes; the sink must then be a
    :class:`~genretag.daemon.sources.ingest_pool.WindowedSink` (the daemon's Tagger).
    """

    def __init__(self, name: str, address: str, *, limits: Limits = DEFAULT_LIMITS,
                 idle_timeout: float = 5.0, rcvhwm: int = 1000, workers: int = 0,
                 context: zmq.Context[Any] | None = None,
                 secure: Callable[[zmq.Socket[Any]], None] | None = None) -> None:
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
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket[Any] | None = None
        self._worker = SourceWorker()
        self._pool: IngestPool | None = None

    @property
    def windows_in_workers(self) -> bool:
        """Streams are windowed in worker processes, whose window geometry is fixed until a restart."""
        return self.workers > 0

    def start(self, sink: SourceSink) -> None:
        """Bind now (a bad or busy address raises ``zmq.ZMQError`` here) and start receiving.

        With workers, they are started first and this returns once each has said hello.
        """
        if self.workers:
            from genretag.daemon.sources.ingest_pool import IngestPool

            windowed: WindowedSink = sink  # type: ignore[assignment]
            self._pool = IngestPool(self.workers, windowed, self.limits, self.idle_timeout)
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


_NOBLOCK, _SNDMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE)


def recv_frames(socket: zmq.Socket[Any]) -> list[zmq.Frame]:
    """One multipart message as ``zmq.Frame`` parts, without blocking (``zmq.Again`` if none is waiting).

    ``recv_multipart`` does the same with a socket option read and flag-enum
    arithmetic per part, about three times the cost (``benchmarks/RESULTS.md``),
    which a receiver thread of 10,000 messages a second feels.
    """
    frame = socket.recv(_NOBLOCK, copy=False)
    parts = [frame]
    while frame.more:
        frame = socket.recv(0, copy=False)
        parts.append(frame)
    return parts


def send_frames(socket: zmq.Socket[Any], parts: list[Any]) -> None:
    """``send_multipart(parts, copy=False)`` at :func:`recv_frames`' price."""
    for part in parts[:-1]:
        socket.send(part, _SNDMORE, copy=False)
    socket.send(parts[-1], 0, copy=False)


def stream_of(parts: list[Any]) -> str:
    """The stream id of a refused message if it is a valid one, else ``"?"``."""
    if not parts:
        return "?"
    try:
        return check_stream_id(parts[0])
    except FrameError:
        return "?"
