"""Ingest worker processes behind one ZeroMQ source: routing, results, restarts.

Decoding, mixing, resampling, the silence gate and windowing cost the daemon
per message and per sample; in one thread they top out near 5,000 streams
(1 s messages at 16 kHz on one core of the GPU box), while one GPU scores
ten times the windows.  With ``zmq:...?workers=N`` the source's receiver
thread only routes each message, by a hash of its stream id, to one of N
worker processes (:mod:`genretag.daemon.sources.ingest_worker`); every stream
stays on one worker, so its state lives there and its results come back in
order.  A collector thread applies the results to the daemon's
:class:`WindowedSink`: windows to the batcher, gate changes, up, down, errors.

The processes talk over ``ipc://`` sockets in a private (0700) temporary
directory.  A worker that dies is reported (``genretag_source_errors_total``
with kind ``ingest_worker``), its streams go down, and it is started again;
their next messages bring them back up, positions carrying on.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zmq

from genretag.daemon.protocol import Limits
from genretag.daemon.silence import StateChange
from genretag.daemon.sources.base import SourceSink, StreamState
from genretag.daemon.sources.ingest_worker import ARRIVAL, MAX_WINDOWS_PER_MESSAGE, WorkerConfig, run
from genretag.daemon.sources.zmq import POLL_MS, send_frames
from genretag.daemon.stream import PushResult, Window, WindowerSettings
from genretag.models.staging import aligned_empty

log = logging.getLogger(__name__)

START_SECONDS = 60.0  # a worker must say hello within this (a cold start imports numpy, soxr, zmq)
RESTART_EVERY_SECONDS = 1.0  # a worker that keeps dying is restarted at most this often
RING_MESSAGE_ROWS = MAX_WINDOWS_PER_MESSAGE + 64  # windows of one result message, beyond those held


class WindowedSink(SourceSink, Protocol):
    """A sink that also takes windows made elsewhere (the daemon's Tagger)."""

    @property
    def windowing(self) -> WindowerSettings: ...

    @property
    def windows_held(self) -> int:
        """The most windows the sink keeps at once (queued and in the batch being scored)."""

    def windowed(self, stream: str, result: PushResult) -> None: ...

    def state(self, stream: str, state: StreamState, reason: str = "", *, remote: bool = False) -> None: ...


class WindowRing:
    """Where the collector receives windows: rows of one aligned buffer, reused in turn.

    Windows received one after another land in consecutive rows, and the batcher
    takes them in that order, so a batch is a view of the ring (no copy, see
    :mod:`genretag.models.staging`).  A row is reused after ``rows`` newer windows;
    ``rows`` exceeds the windows the sink holds at once, so a row is never
    rewritten while its window waits or is being scored.
    """

    def __init__(self, rows: int, width: int) -> None:
        self.rows = aligned_empty(rows, width)
        # Touched now, once: left to first use, every window of the ring's first lap page-faulted its
        # rows in, in the collector thread, and a GPU run with a 65536-window queue (a 12 GB ring) lost
        # 7-14 % of its throughput to that.  Size the ring through batch.queue_size.
        self.rows.fill(0.0)
        self._next = 0

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` consecutive rows (from the first row again if fewer are left at the end)."""
        if self._next + n > len(self.rows):
            self._next = 0
        rows = self.rows[self._next:self._next + n]
        self._next += n
        return rows


def worker_of(stream_id: bytes | memoryview, workers: int) -> int:
    """The worker that handles ``stream_id`` (its UTF-8 bytes), the same for every message."""
    return zlib.crc32(stream_id) % workers


@dataclass
class _Worker:
    config: WorkerConfig
    process: Any = None  # multiprocessing.Process
    started: float = 0.0
    streams: set[str] = field(default_factory=set)  # up, as the worker reported them
    said_bye: bool = False
    reported_pid: int | None = None  # the dead process already reported


class IngestPool:
    """N worker processes for one source; see the module docstring.

    :meth:`route` runs on the source's receiver thread; results are applied on
    the pool's collector thread; :meth:`start` and :meth:`stop` on the caller's.
    """

    def __init__(self, workers: int, sink: WindowedSink, limits: Limits, idle_timeout: float,
                 context: zmq.Context[Any]) -> None:
        self._sink = sink
        self._context = context
        self._dir = Path(tempfile.mkdtemp(prefix="genretag-ingest-"))  # mkdtemp: 0700
        outbox = f"ipc://{self._dir}/out"
        self._workers = [_Worker(WorkerConfig(k, f"ipc://{self._dir}/in-{k}", outbox, sink.windowing, limits,
                                              idle_timeout)) for k in range(workers)]
        # + room for one message being received, twice: rows are skipped at the ring's end
        self._ring = WindowRing(sink.windows_held + 2 * RING_MESSAGE_ROWS, sink.windowing.spec.window_samples)
        self._mp = multiprocessing.get_context("spawn")  # fork would copy a process that runs TF/JAX threads
        self._out: zmq.Socket[Any] | None = None
        self._inboxes: list[zmq.Socket[Any]] = []
        self._stopping = threading.Event()
        self._collector = threading.Thread(target=self._collect, name="genretag-ingest-results", daemon=True)

    def start(self) -> None:
        """Bind the sockets, start the workers and wait for each one's hello."""
        self._out = self._context.socket(zmq.PULL)
        self._out.bind(self._workers[0].config.outbox)
        for worker in self._workers:
            inbox = self._context.socket(zmq.PUSH)
            inbox.setsockopt(zmq.SNDTIMEO, POLL_MS)
            inbox.setsockopt(zmq.LINGER, 0)
            inbox.bind(worker.config.inbox)
            self._inboxes.append(inbox)
            self._spawn(worker)
        waiting, deadline = len(self._workers), time.monotonic() + START_SECONDS
        while waiting:
            if self._out.poll(POLL_MS):
                waiting -= json.loads(self._out.recv())[0]["k"] == "hello"
                continue
            dead = [w for w in self._workers if w.process.exitcode is not None]
            if dead or time.monotonic() > deadline:
                self.stop(1.0)
                why = f"exited with {dead[0].process.exitcode}" if dead else f"silent for {START_SECONDS:g} s"
                raise RuntimeError(f"ingest worker did not start: {why}")
        log.info("%d ingest worker processes started", len(self._workers))
        self._collector.start()

    def route(self, parts: list[Any], stopping: threading.Event) -> bool:
        """Send one producer message to its stream's worker; False if ``stopping`` interrupted it.

        Blocks while the worker's queue is full, which backs up to the producers as
        the in-process source does.  Every message goes by its first part, malformed
        ones too, so that the worker refuses them in order with the stream's other
        messages (a stream's errors are labelled with it once it is up).  The arrival
        time appended here makes it at least two parts: never the one-part "stop".
        """
        inbox = self._inboxes[worker_of(parts[0].buffer, len(self._inboxes))]
        parts.append(ARRIVAL.pack(time.monotonic()))
        while True:
            try:
                send_frames(inbox, parts)
                return True
            except zmq.Again:  # the worker is busy, or dead and about to be restarted
                if stopping.is_set():
                    return False

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every worker to report its streams down and exit; wait for that, then clean up."""
        self._stopping.set()
        for inbox in self._inboxes:
            try:
                inbox.send(b"")
            except zmq.ZMQError:  # a dead worker: the collector reports its streams down
                pass
        if self._collector.is_alive():
            self._collector.join(timeout)
        for worker in self._workers:
            if worker.process is not None:
                worker.process.join(max(0.1, timeout / 4))
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join(1.0)
        for socket in [*self._inboxes, *([self._out] if self._out is not None else [])]:
            socket.close(linger=0)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _spawn(self, worker: _Worker) -> None:
        worker.process = self._mp.Process(target=run, args=(worker.config,), daemon=True,
                                          name=f"genretag-ingest-{worker.config.index}")
        worker.process.start()
        worker.started = time.monotonic()
        worker.said_bye = False

    def _collect(self) -> None:
        """The collector thread: apply results; notice dead workers; end when all said bye."""
        assert self._out is not None
        next_check, deadline = float("-inf"), float("inf")
        while True:
            if self._out.poll(POLL_MS):
                while True:
                    try:
                        header = self._out.recv(flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        self._apply_message(json.loads(header))
                    except Exception:  # noqa: BLE001  (a bug here must not stop every stream)
                        log.exception("ingest results not applied: %.200r", header)
                    while self._out.getsockopt(zmq.RCVMORE):  # whatever of the message is left
                        self._out.recv()
            if (now := time.monotonic()) >= next_check:  # waitpid per worker: not after every message
                next_check = now + POLL_MS / 1000
                self._check_workers()
            if self._stopping.is_set():
                deadline = min(deadline, time.monotonic() + 10.0)
                if all(w.said_bye or not w.process.is_alive() for w in self._workers) \
                        or time.monotonic() > deadline:
                    return

    def _apply_message(self, results: list[dict[str, Any]]) -> None:
        """Apply one message's results in order; their windows arrive in one part, into the ring."""
        n = sum(len(result["w"]) for result in results if result["k"] == "push")
        rows = iter(self._receive_windows(n) if n else ())
        for result in results:
            self._apply(result, rows)

    def _receive_windows(self, n: int) -> np.ndarray:
        assert self._out is not None
        # A message holds at most MAX_WINDOWS_PER_MESSAGE plus one frame's worth; only a frame limit
        # raised far beyond the default's 40-odd windows needs rows of its own.
        rows = self._ring.take(n) if n <= RING_MESSAGE_ROWS else aligned_empty(n, self._ring.rows.shape[1])
        if not self._out.getsockopt(zmq.RCVMORE):
            raise RuntimeError("ingest worker sent results listing windows but no windows")
        size = self._out.recv_into(memoryview(rows).cast("B"))  # type: ignore[arg-type]
        if size != rows.nbytes:  # the worker windows with the same settings; anything else is a bug
            raise RuntimeError(f"ingest worker sent {size} bytes of windows, expected {rows.nbytes}")
        return rows

    def _apply(self, header: dict[str, Any], rows: Iterator[np.ndarray]) -> None:
        """Apply one result; a push takes its windows' samples from ``rows``."""
        kind, stream = header["k"], header["s"]
        sink = self._sink
        if kind == "push":
            windows = [Window(next(rows), pos, arrival, silent) for pos, arrival, silent in header["w"]]
            changes = [StateChange(state, pos) for state, pos in header["c"]]
            sink.windowed(stream, PushResult(windows, changes, header["p"], header["q"]))
        elif kind == "up":
            self._worker_for(stream).streams.add(stream)
            sink.state(stream, "up", remote=True)
        elif kind == "down":
            self._worker_for(stream).streams.discard(stream)
            sink.state(stream, "down", header["r"], remote=True)
        elif kind == "error":
            sink.error(stream, header["e"], header["m"])
        elif kind == "bye":
            self._workers[header["i"]].said_bye = True

    def _worker_for(self, stream: str) -> _Worker:
        return self._workers[worker_of(stream.encode(), len(self._workers))]

    def _check_workers(self) -> None:
        """Report a worker that died; start it again unless stopping (at most every RESTART_EVERY_SECONDS)."""
        for worker in self._workers:
            process = worker.process
            if process.is_alive() or worker.said_bye:
                continue
            if worker.reported_pid != process.pid:
                worker.reported_pid = process.pid
                self._report_death(worker)
            if not self._stopping.is_set() and time.monotonic() - worker.started >= RESTART_EVERY_SECONDS:
                self._spawn(worker)

    def _report_death(self, worker: _Worker) -> None:
        k, process = worker.config.index, worker.process
        log.error("ingest worker %d (pid %s) exited with %s; its %d streams go down and it is restarted",
                  k, process.pid, process.exitcode, len(worker.streams))
        self._sink.error("?", "ingest_worker", f"ingest worker {k} exited with {process.exitcode}")
        for stream in sorted(worker.streams):
            self._sink.state(stream, "down", "ingest worker died", remote=True)
        worker.streams.clear()
