"""The contract between audio sources and the daemon.

A source owns its I/O thread(s) and pushes decoded PCM chunks to a sink
callback; it never calls the model and never blocks on it.  One source may
feed one stream (mic, file, url) or many (a ZeroMQ socket carrying many
named streams).  The daemon's sink is cheap and thread-safe.

Sources report state changes (``up``, ``down``) and problems (decode errors,
reconnects, refused frames) through the same sink so that everything a
source sees ends up in a metric or an event.

A source hands over only valid audio: checked once, where it enters the
daemon, against the configured :class:`~genretag.daemon.protocol.Limits`
(:func:`~genretag.daemon.protocol.decode_frame` for ZeroMQ messages,
:func:`deliver` for the chunks of a file or a sound card).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from genretag.daemon.protocol import DEFAULT_LIMITS, ErrorKind, FrameError, Limits, check_chunk

StreamState = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """PCM for one stream: int16 or float32, shape ``(frames,)`` or ``(frames, channels)``."""

    stream: str
    samples: np.ndarray
    sample_rate: int
    arrival_time: float  # time.monotonic() when the bytes arrived
    #: Audio someone listens to as it happens (mic, radio, zmq producers).  A file's audio is not: it is
    #: tagged in full however late, so the batcher's age bound (``batch.max_age_ms``) spares its windows.
    live: bool = True


class SourceSink(Protocol):
    """What a source talks to (implemented by the daemon)."""

    def audio(self, chunk: Chunk) -> None:
        """New audio, already checked (see the module docstring); must not block for long (the daemon
        copies into per-stream buffers)."""

    def state(self, stream: str, state: StreamState, reason: str = "", detail: str = "") -> None:
        """A stream went up or down (connection lost, ffmpeg exited, device gone, end of file).

        ``reason`` is the short machine-readable word published with the ``down``
        event (one of :data:`genretag.daemon.events.DOWN_REASONS`, or ``http_NNN``);
        ``detail`` is the human-readable rest, for the log.  A source reports
        ``down`` after its first failed attempt even if it was never up, and then
        once per outage, not once per retry.
        """

    def error(self, stream: str, kind: ErrorKind, message: str) -> None:
        """Something was refused or failed (``kind`` is the metric label, e.g. ``decode``,
        ``reconnect``, ``bad_header``); the source carries on."""


class Source(Protocol):
    """A running audio source; ``start`` returns at once, ``stop`` joins its threads."""

    name: str  # the configured stream id (or the socket address for multi-stream sources)

    def start(self, sink: SourceSink) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...


class SourceWorker:
    """A source's background thread and the event that asks it to stop."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, target: Callable[[], None], name: str) -> None:
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Set the stop event and wait up to ``timeout`` seconds for the thread to finish; False if it
        still runs."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True


RowAllocator = Callable[[int, int], np.ndarray]
"""``allocate(rows, width)``: an uninitialised C-contiguous float32 ``(rows, width)`` array for windows
received from ingest workers (:mod:`genretag.daemon.ingest`).  The daemon passes the predictor's staging
allocator (:func:`genretag.models.staging.aligned_empty`), whose alignment lets a batch of consecutive rows
reach the model without a copy."""


def plain_rows(rows: int, width: int) -> np.ndarray:
    """A :data:`RowAllocator` without alignment: correct with any predictor, which then copies each batch."""
    return np.empty((rows, width), np.float32)


@dataclass(frozen=True)
class BuildEnv:
    """What the daemon gives every source it builds, besides the source's own options (``from_config``)."""

    limits: Limits = DEFAULT_LIMITS
    #: zmq: prepares the socket before it binds, e.g. as a CURVE server
    secure: Callable[[Any], None] | None = None
    #: zmq: with workers, makes the buffer the workers' windows are received into
    allocate_rows: RowAllocator = plain_rows


def deliver(sink: SourceSink, chunk: Chunk, limits: Limits) -> None:
    """Hand a decoded chunk to ``sink`` after its one check against ``limits``
    (:func:`~genretag.daemon.protocol.check_chunk`).

    A refused chunk (NaN/Inf samples, a rate or channel count out of bounds) is
    counted as ``bad_audio`` instead, and the stream carries on with its next chunk.
    """
    try:
        check_chunk(chunk.samples, chunk.sample_rate, limits)
    except FrameError as err:
        sink.error(chunk.stream, ErrorKind.BAD_AUDIO, str(err))
        return
    sink.audio(chunk)
