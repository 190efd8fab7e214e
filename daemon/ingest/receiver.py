"""The frame receiver: producers' messages to a sink, with each stream's ``seq`` bookkeeping and idle clock.

It runs wherever the messages are decoded: in the ZeroMQ source's own thread
(:mod:`genretag.daemon.sources.zmq`), or in each ingest worker process for its
share of the streams (:mod:`~genretag.daemon.ingest.worker`).  A bad message is
reported through ``sink.error`` with the refusal's ``reason`` as the kind (and
the stream id when it could be read, else ``"?"``); the stream carries on with
its next message.  Per stream, a :class:`~genretag.daemon.protocol.SequenceTracker`
counts lost messages (``seq_gap``) and producer restarts (``seq_restart``); a
stream is ``up`` from its first valid message and ``down`` after
``idle_timeout`` seconds without one, after which its bookkeeping is forgotten.
"""

from __future__ import annotations

from typing import Any

from genretag.daemon.ingest.sockets import POLL_MS
from genretag.daemon.protocol import (
    ErrorKind,
    FrameError,
    Limits,
    SequenceTracker,
    check_stream_id,
    decode_frame,
)
from genretag.daemon.sources.base import Chunk, SourceSink


class FrameReceiver:
    """Decodes messages, keeps each stream's ``seq`` bookkeeping and idle clock (see the module docstring)."""

    def __init__(self, limits: Limits, idle_timeout: float) -> None:
        self.limits = limits
        self.idle_timeout = idle_timeout
        self._streams: dict[str, tuple[SequenceTracker, float]] = {}  # id -> (seq, last message time)
        self._next_expiry = 0.0

    def handle(self, sink: SourceSink, parts: list[Any], now: float) -> None:
        """One received message (``zmq.Frame`` parts) to ``sink``: audio, ``up``, or an error.

        :func:`~genretag.daemon.protocol.decode_frame` is the audio's one check against
        ``limits``: the chunk handed on is valid.
        """
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
            sink.error(
                frame.stream_id, ErrorKind.SEQ_GAP, f"{check.missed} message(s) lost before seq {frame.seq}"
            )
        elif check.restart:
            sink.error(
                frame.stream_id, ErrorKind.SEQ_RESTART, f"seq went back to {frame.seq}: producer restarted"
            )
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


def stream_of(parts: list[Any]) -> str:
    """The stream id of a refused message if it is a valid one, else ``"?"``."""
    if not parts:
        return "?"
    try:
        return check_stream_id(parts[0])
    except FrameError:
        return "?"
