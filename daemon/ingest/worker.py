"""One ingest worker process: decodes and windows its share of a ZeroMQ source's streams.

Started by :class:`~genretag.daemon.ingest.pool.IngestPool` (``spawn``: a fresh
interpreter that imports numpy, soxr and pyzmq, never the model's framework).
It receives the producers' messages unchanged from the router process
(:mod:`~genretag.daemon.ingest.router`), runs the same
:class:`~genretag.daemon.ingest.receiver.FrameReceiver` and
:class:`~genretag.daemon.stream.StreamWindower` the in-process source runs,
and sends the results back in stream order, several to a message, in the
codec of :mod:`~genretag.daemon.ingest.results`.

The router appends the message's arrival time (``ARRIVAL``, a packed double)
as a last part, so latency counts from there; a one-part message means "stop".
Both of the worker's sockets have explicit high-water marks (``AUDIO_HWM``,
``RESULTS_HWM``; see :mod:`~genretag.daemon.ingest.pool` for why):
when the daemon takes results slower than they come, the worker waits to
send them, and stops reading its inbox meanwhile.  The worker ignores SIGINT
and SIGTERM (a Ctrl-C or systemd's stop reaches the whole process group; the
daemon stops its workers itself, after the sources) and exits on its own if
the daemon is gone.  Arrival times are ``time.monotonic()``, one clock for
every process of the machine.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from genretag.daemon.ingest.receiver import FrameReceiver
from genretag.daemon.ingest.results import Bye, Down, Hello, Push, Result, SourceError, Up, encode
from genretag.daemon.ingest.sockets import (
    ARRIVAL,
    AUDIO_HWM,
    MAX_WINDOWS_PER_MESSAGE,
    POLL_MS,
    RESULTS_HWM,
    daemon_pid,
    recv_frames,
)
from genretag.daemon.protocol import ErrorKind, Limits
from genretag.daemon.sources.base import Chunk, StreamState
from genretag.daemon.stream import BadAudio, PushResult, StreamWindower, WindowerSettings


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, passed to the new process at its start."""

    index: int
    inbox: str  # endpoint the daemon PUSHes this worker's messages to
    outbox: str  # endpoint the worker PUSHes its results to
    settings: WindowerSettings
    limits: Limits
    idle_timeout: float


class _ForwardingSink:
    """The :class:`~genretag.daemon.sources.base.SourceSink` of a worker: windows here, results home.

    Results are gathered and sent by :meth:`flush`, many in one message whose
    windows travel as one part: the daemon receives them with two calls instead
    of one per window, each of which waits for the daemon's GIL.
    """

    def __init__(self, out: zmq.Socket[Any], settings: WindowerSettings, parent: int) -> None:
        self._out = out
        self._parent = parent  # the daemon's pid
        self._settings = settings
        self._windowers: dict[str, StreamWindower] = {}
        self._results: list[Result] = []
        self._windows: list[np.ndarray] = []

    @property
    def pending_windows(self) -> int:
        return len(self._windows)

    def audio(self, chunk: Chunk) -> None:
        windower = self._windowers.get(chunk.stream)
        if windower is None:
            windower = self._windowers[chunk.stream] = self._settings.new_windower()
        try:
            result = windower.push(chunk.samples, chunk.sample_rate, chunk.arrival_time)
        except BadAudio as err:
            self.error(chunk.stream, ErrorKind.BAD_AUDIO, str(err))
            return
        self._add_push(chunk.stream, result)

    def state(self, stream: str, state: StreamState, reason: str = "", detail: str = "") -> None:
        if state == "up":
            self._results.append(Up(stream))
            return
        windower = self._windowers.pop(stream, None)
        if windower is not None:
            self._add_push(stream, windower.flush(), always=True)
        self._results.append(Down(stream, reason, detail))

    def error(self, stream: str, kind: str, message: str) -> None:
        self._results.append(SourceError(stream, kind, message))

    def send(self, result: Result) -> None:
        """Send one result at once, after whatever is pending."""
        self._results.append(result)
        self.flush()

    def flush(self) -> None:
        """Send the gathered results: ``[header]`` or ``[header, windows]``.

        Waits while the results socket is full (the daemon is behind), unless the daemon is gone.
        """
        if not self._results:
            return
        parts: list[Any] = [encode(self._results)]
        if self._windows:
            parts.append(np.stack(self._windows))
        self._results, self._windows = [], []
        while True:
            try:
                self._out.send_multipart(parts, copy=False)  # the socket's SNDTIMEO bounds each try
                return
            except zmq.Again:
                if os.getppid() != self._parent:
                    return

    def _add_push(self, stream: str, result: PushResult, *, always: bool = False) -> None:
        """Gather what a push produced; one without windows or gate changes only moves the position,
        which the next result (or the flush before ``down``) carries anyway, so it is not sent."""
        if not (always or result.windows or result.changes):
            return
        self._results.append(Push.of(stream, result))
        self._windows.extend(w.samples for w in result.windows)
        if len(self._windows) >= MAX_WINDOWS_PER_MESSAGE:  # e.g. many streams flushed by one idle scan
            self.flush()


def run(config: WorkerConfig) -> None:
    """The worker process's main function (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = daemon_pid()
    context = zmq.Context()
    inbox = context.socket(zmq.PULL)
    inbox.setsockopt(zmq.RCVHWM, AUDIO_HWM)
    inbox.connect(config.inbox)
    out = context.socket(zmq.PUSH)
    out.setsockopt(zmq.SNDHWM, RESULTS_HWM)
    out.setsockopt(zmq.SNDTIMEO, POLL_MS)
    out.setsockopt(zmq.LINGER, 10_000)  # the last results and the bye must reach the daemon
    out.connect(config.outbox)
    sink = _ForwardingSink(out, config.settings, parent)
    receiver = FrameReceiver(config.limits, config.idle_timeout)
    sink.send(Hello(config.index))
    try:
        _serve(inbox, receiver, sink, parent)
        receiver.close(sink, "stopped", "source stopped")
        sink.send(Bye(config.index))
    finally:
        inbox.close(linger=0)
        out.close(linger=None if os.getppid() == parent else 0)  # no one reads a gone daemon's results
        context.term()


def _serve(inbox: zmq.Socket[Any], receiver: FrameReceiver, sink: _ForwardingSink, parent: int) -> None:
    """Handle messages until the daemon (pid ``parent``) says stop or is gone.

    Results go home whenever the inbox is empty (no latency added) or
    ``MAX_WINDOWS_PER_MESSAGE`` windows are waiting.
    """
    while os.getppid() == parent:
        if inbox.poll(POLL_MS):
            while sink.pending_windows < MAX_WINDOWS_PER_MESSAGE:
                try:
                    parts = recv_frames(inbox)
                except zmq.Again:
                    break
                if len(parts) == 1:
                    return
                receiver.handle(sink, parts[:-1], ARRIVAL.unpack(parts[-1].buffer)[0])
        receiver.expire(sink, time.monotonic())
        sink.flush()
