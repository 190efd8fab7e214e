"""Ingest worker processes behind one ZeroMQ source: routing, results, restarts.

Decoding, mixing, resampling, the silence gate and windowing cost the daemon
per message and per sample; in one thread they top out at a few thousand
streams, while one GPU scores several times the windows
(``benchmarks/RESULTS.md``, "Daemon end to end").  With
``zmq:...?workers=N`` the source's receiver thread only relays: a ZeroMQ
proxy, which runs without the interpreter lock, passes every message to a
router process (:mod:`~genretag.daemon.ingest.router`) that sends it, by a hash of
its stream id, to one of N worker processes
(:mod:`~genretag.daemon.ingest.worker`); every stream stays on one
worker, so its state lives there and its results come back in order.  A
collector thread applies the results to the daemon's :class:`WindowedSink`:
windows to the batcher, gate changes, up, down, errors.  The daemon's
process then spends its lock on results and scoring only.

The processes talk over ``ipc://`` sockets in a private (0700) temporary
directory.  A worker that dies is reported (``genretag_source_errors_total``
with kind ``ingest_worker``), its streams go down, and it is started again;
their next messages bring them back up, positions carrying on.  A router
that dies is reported (kind ``ingest_router``) and started again; the
messages it held are lost (the workers count the gaps as ``seq_gap``).

What the sockets hold is bounded by explicit high-water marks, in messages,
at both ends of each: ``AUDIO_HWM`` producers' messages on the relay and in
each worker's inbox, ``RESULTS_HWM`` results messages from each worker (see
:mod:`~genretag.daemon.ingest.sockets`).  libzmq's default of 1,000
was no bound in practice for results: a message carries up to 64 windows,
12 MB for the bundled models, so a collector that fell behind could let them
hold tens of GB.  No socket between
the processes loses a message: a full one makes its sender wait, which backs
up through the worker, the router and the relay to the producers' socket,
where a producer waits (``genretag send``) or drops and the daemon counts the
gap (``seq_gap``, per stream).  Load is shed in one place, where every loss is
counted per stream: the batcher, which drops windows that waited too long
(``stale``) or do not fit (``queue_full``).  Short queues after the router,
which stamps the arrival time, also leave the latency budget to the batcher:
a window held up in a deep socket would reach it stale, its ingest work done
for nothing.  The relay's proxy sends without a timeout: with one, it gave
up once the router had been busy that long, and the producers waited for good.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zmq

from genretag.daemon.ingest import router as ingest_router
from genretag.daemon.ingest import worker as ingest_worker
from genretag.daemon.ingest.results import (
    Bye,
    Down,
    Hello,
    Push,
    Result,
    SourceError,
    Up,
    decode,
    window_count,
)
from genretag.daemon.ingest.router import RouterConfig, worker_of
from genretag.daemon.ingest.sockets import AUDIO_HWM, MAX_WINDOWS_PER_MESSAGE, POLL_MS, RESULTS_HWM
from genretag.daemon.ingest.worker import WorkerConfig
from genretag.daemon.protocol import ErrorKind, Limits
from genretag.daemon.sources.base import RowAllocator, SourceSink, StreamState, plain_rows
from genretag.daemon.stream import PushResult, WindowerSettings

log = logging.getLogger(__name__)

START_SECONDS = 60.0  # a worker must say hello within this (a cold start imports numpy, soxr, zmq)
RESTART_EVERY_SECONDS = 1.0  # a worker that keeps dying is restarted at most this often
IO_THREADS = 2  # libzmq's own threads for the relay and the results: one each, roughly
RING_MESSAGE_ROWS = MAX_WINDOWS_PER_MESSAGE + 64  # windows of one result message, beyond those held


class WindowedSink(SourceSink, Protocol):
    """A sink that also takes windows made elsewhere (the daemon's Tagger)."""

    @property
    def windowing(self) -> WindowerSettings: ...

    @property
    def windows_held(self) -> int:
        """The most windows the sink keeps at once (queued and in the batch being scored)."""

    def windowed(self, stream: str, result: PushResult) -> None: ...

    def state(
        self, stream: str, state: StreamState, reason: str = "", detail: str = "", *, remote: bool = False
    ) -> None: ...


class WindowRing:
    """Where the collector receives windows: rows of one buffer, reused in turn.

    Windows received one after another land in consecutive rows, and the batcher
    takes them in that order, so a batch can be a view of the ring (no copy, with
    the rows of an aligned ``allocate``: see :data:`RowAllocator`).  A row is reused
    after ``rows`` newer windows; ``rows`` exceeds the windows the sink holds at once, so a row is never
    rewritten while its window waits or is being scored.
    """

    def __init__(self, rows: int, width: int, allocate: RowAllocator = plain_rows) -> None:
        self.rows = allocate(rows, width)
        # Touched now, once: left to first use, every window of the ring's first lap page-faulted its
        # rows in, in the collector thread, and a GPU run with a 65536-window queue (a 12 GB ring) lost
        # 7-14 % of its throughput to that.  Size the ring through batch.queue_size.
        self.rows.fill(0.0)
        self._next = 0

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` consecutive rows (from the first row again if fewer are left at the end)."""
        if self._next + n > len(self.rows):
            self._next = 0
        rows = self.rows[self._next : self._next + n]
        self._next += n
        return rows


@dataclass
class _Process:
    """A worker or the router, and what the pool knows of it."""

    name: str
    target: Callable[[Any], None]
    config: WorkerConfig | RouterConfig
    error_kind: ErrorKind  # the source error its death counts as
    process: Any = None  # multiprocessing.Process
    started: float = 0.0
    streams: set[str] = field(default_factory=set)  # up, as the worker reported them
    said_bye: bool = False
    reported_pid: int | None = None  # the dead process already reported


class IngestPool:
    """N worker processes and a router for one source; see the module docstring.

    :meth:`relay` runs on the source's receiver thread; results are applied on
    the pool's collector thread; :meth:`start`, :meth:`end_relay` and
    :meth:`stop` on the caller's.
    """

    def __init__(
        self,
        workers: int,
        sink: WindowedSink,
        limits: Limits,
        idle_timeout: float,
        allocate: RowAllocator = plain_rows,
    ) -> None:
        self._sink = sink
        self._allocate = allocate
        # Its own context: the daemon's has one I/O thread, which at 10,000 streams ran at 83 % (top -H)
        # carrying the producers' TCP, this relay and the workers' windows back (1.3 GB/s of windows alone,
        # by arithmetic: 6,667 windows/s of 190 KB).
        self._context: zmq.Context[Any] = zmq.Context(io_threads=IO_THREADS)
        self._dir = Path(tempfile.mkdtemp(prefix="genretag-ingest-"))  # mkdtemp: 0700
        self._outbox, self._relay_endpoint = f"ipc://{self._dir}/out", f"ipc://{self._dir}/relay"
        inboxes = tuple(f"ipc://{self._dir}/in-{k}" for k in range(workers))
        self._workers = [
            _Process(
                f"genretag-ingest-{k}",
                ingest_worker.run,
                WorkerConfig(k, inboxes[k], self._outbox, sink.windowing, limits, idle_timeout),
                ErrorKind.INGEST_WORKER,
            )
            for k in range(workers)
        ]
        router = RouterConfig(workers, self._relay_endpoint, inboxes, self._outbox)
        self._router = _Process("genretag-ingest-router", ingest_router.run, router, ErrorKind.INGEST_ROUTER)
        self._processes = [*self._workers, self._router]
        # + room for one message being received, twice: rows are skipped at the ring's end
        self._ring = WindowRing(
            sink.windows_held + 2 * RING_MESSAGE_ROWS, sink.windowing.spec.window_samples, allocate
        )
        self._mp = multiprocessing.get_context("spawn")  # fork would copy a process that runs TF/JAX threads
        self._out: zmq.Socket[Any] | None = None
        self._relay: zmq.Socket[Any] | None = None
        self._control: tuple[zmq.Socket[Any], zmq.Socket[Any]] | None = None  # (the proxy's end, ours)
        self._stopping = threading.Event()
        self._collector = threading.Thread(target=self._collect, name="genretag-ingest-results", daemon=True)

    def start(self) -> None:
        """Bind the sockets, start the processes and wait for each one's hello."""
        self._out = self._context.socket(zmq.PULL)
        self._out.setsockopt(zmq.RCVHWM, RESULTS_HWM)
        self._out.bind(self._outbox)
        self._relay = self._context.socket(zmq.PUSH)
        self._relay.setsockopt(zmq.SNDHWM, AUDIO_HWM)
        self._relay.setsockopt(zmq.LINGER, 1000)
        self._relay.bind(self._relay_endpoint)
        proxy_end, our_end = self._context.socket(zmq.PAIR), self._context.socket(zmq.PAIR)
        proxy_end.bind(f"inproc://genretag-ingest-control-{id(self)}")
        our_end.connect(f"inproc://genretag-ingest-control-{id(self)}")
        self._control = (proxy_end, our_end)
        for process in self._processes:
            self._spawn(process)
        waiting, deadline = len(self._processes), time.monotonic() + START_SECONDS
        while waiting:
            if self._out.poll(POLL_MS):
                waiting -= isinstance(decode(self._out.recv())[0], Hello)
                continue
            dead = [p for p in self._processes if p.process.exitcode is not None]
            if dead or time.monotonic() > deadline:
                self.stop(1.0)
                why = f"exited with {dead[0].process.exitcode}" if dead else f"silent for {START_SECONDS:g} s"
                raise RuntimeError(f"{dead[0].name if dead else 'ingest process'} did not start: {why}")
        log.info(
            "ingest processes started: workers (pids %s), router (pid %d)",
            " ".join(str(w.process.pid) for w in self._workers),
            self._router.process.pid,
        )
        self._collector.start()

    def relay(self, frontend: zmq.Socket[Any]) -> None:
        """Pass every message of ``frontend`` to the router until :meth:`end_relay` (blocks).

        A ZeroMQ proxy does it, in C without the interpreter lock.  It stops
        reading while the router's queue is full, which backs up to the
        producers as the in-process source does.
        """
        assert self._relay is not None and self._control is not None
        zmq.proxy_steerable(frontend, self._relay, None, self._control[0])

    def end_relay(self) -> None:
        """Make :meth:`relay` return (at once, or as soon as it starts)."""
        if self._control is not None:
            self._control[1].send(b"TERMINATE")

    def stop(self, timeout: float = 5.0) -> None:
        """After :meth:`relay` has returned: ask every process to report its streams down and exit;
        wait for that, then clean up."""
        self._stopping.set()
        if self._relay is not None:
            # Only now: the proxy sends with the socket's timeout too, and gave up (its thread ended, the
            # producers blocked for good) when the router had been busy for that long.
            self._relay.setsockopt(zmq.SNDTIMEO, 1000)
            try:
                self._relay.send(b"")  # after every message relayed before it
            except zmq.ZMQError:  # no router (dead): the workers are stopped by the kill below
                pass
        if self._collector.is_alive():
            self._collector.join(timeout)
        for entry in self._processes:
            if entry.process is not None:
                entry.process.join(max(0.1, timeout / 4))
                if entry.process.is_alive():
                    entry.process.kill()
                    entry.process.join(1.0)
        sockets = [self._out, self._relay, *(self._control or ())]
        for socket in sockets:
            if socket is not None:
                socket.close(linger=0)
        self._context.term()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _spawn(self, entry: _Process) -> None:
        entry.process = self._mp.Process(
            target=entry.target, args=(entry.config,), daemon=True, name=entry.name
        )
        entry.process.start()
        entry.started = time.monotonic()
        entry.said_bye = False

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
                        self._apply_message(decode(header))
                    except Exception:  # noqa: BLE001  (a bug here must not stop every stream)
                        log.exception("ingest results not applied: %.200r", header)
                    while self._out.getsockopt(zmq.RCVMORE):  # whatever of the message is left
                        self._out.recv()
            if (now := time.monotonic()) >= next_check:  # waitpid per worker: not after every message
                next_check = now + POLL_MS / 1000
                self._check_workers()
            if self._stopping.is_set():
                deadline = min(deadline, time.monotonic() + 10.0)
                if (
                    all(p.said_bye or not p.process.is_alive() for p in self._processes)
                    or time.monotonic() > deadline
                ):
                    return

    def _apply_message(self, results: list[Result]) -> None:
        """Apply one message's results in order; their windows arrive in one part, into the ring."""
        n = window_count(results)
        rows = iter(self._receive_windows(n) if n else ())
        for result in results:
            self._apply(result, rows)

    def _receive_windows(self, n: int) -> np.ndarray:
        assert self._out is not None
        # A message holds at most MAX_WINDOWS_PER_MESSAGE plus one frame's worth; only a frame limit
        # raised far beyond the default's 40-odd windows needs rows of its own.
        rows = self._ring.take(n) if n <= RING_MESSAGE_ROWS else self._allocate(n, self._ring.rows.shape[1])
        if not self._out.getsockopt(zmq.RCVMORE):
            raise RuntimeError("ingest worker sent results listing windows but no windows")
        size = self._out.recv_into(memoryview(rows).cast("B"))  # type: ignore[arg-type]
        if size != rows.nbytes:  # the worker windows with the same settings; anything else is a bug
            raise RuntimeError(f"ingest worker sent {size} bytes of windows, expected {rows.nbytes}")
        return rows

    def _apply(self, result: Result, rows: Iterator[np.ndarray]) -> None:
        """Apply one result; a push takes its windows' samples from ``rows``."""
        sink = self._sink
        match result:
            case Push():
                sink.windowed(result.stream, result.result(rows))
            case Up(stream):
                self._worker_for(stream).streams.add(stream)
                sink.state(stream, "up", remote=True)
            case Down(stream, reason, detail):
                self._worker_for(stream).streams.discard(stream)
                sink.state(stream, "down", reason, detail, remote=True)
            case SourceError(stream, kind, message):
                sink.error(stream, ErrorKind(kind), message)
            case Hello(process):  # a restart
                entry = self._processes[process]
                log.info("%s started again (pid %d)", entry.name, entry.process.pid)
            case Bye(process):
                self._processes[process].said_bye = True

    def _worker_for(self, stream: str) -> _Process:
        return self._workers[worker_of(stream.encode(), len(self._workers))]

    def _check_workers(self) -> None:
        """Report a process that died; start it again unless stopping (at most every
        RESTART_EVERY_SECONDS)."""
        for entry in self._processes:
            process = entry.process
            if process.is_alive() or entry.said_bye:
                continue
            if entry.reported_pid != process.pid:
                entry.reported_pid = process.pid
                self._report_death(entry)
            if not self._stopping.is_set() and time.monotonic() - entry.started >= RESTART_EVERY_SECONDS:
                self._spawn(entry)

    def _report_death(self, entry: _Process) -> None:
        process = entry.process
        log.error(
            "%s (pid %s) exited with %s; its %d streams go down and it is restarted",
            entry.name,
            process.pid,
            process.exitcode,
            len(entry.streams),
        )
        self._sink.error("?", entry.error_kind, f"{entry.name} exited with {process.exitcode}")
        for stream in sorted(entry.streams):
            self._sink.state(stream, "down", "worker_died", "ingest worker died", remote=True)
        entry.streams.clear()
