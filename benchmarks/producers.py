"""Load generator: P forked processes, each pushing many real-time PCM streams into a daemon's ZeroMQ source.

One process per stream is too heavy for hundreds of streams on a few cores, so
each producer process drives its share of the streams from one loop: every
stream has its own clock phase (spread evenly over a chunk period, so sends are
smooth rather than bursts), its own ``seq`` numbering and its own position in
the music, and is sent with the real protocol (:func:`encode_frame`) over one
PUSH socket per process.  At ``rate`` 0 the loop sends as fast as the socket
takes messages (the PUSH socket blocks at its high-water mark: back-pressure,
never loss).

Each process reports how late its sends were against their schedule, so a
benchmark can tell a daemon that keeps up from producers that did not.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from genretag.daemon.protocol import encode_frame


@dataclass(frozen=True)
class LoadSpec:
    """What every producer process sends."""

    address: str
    audio: list[np.ndarray]  # int16 mono clips at ``sample_rate``, looped
    sample_rate: int
    chunk_seconds: float = 0.1
    rate: float = 1.0  # 1: real time; 0: as fast as possible
    seconds: float = 30.0  # how long each stream is sent
    prefix: str = "s"
    preroll_seconds: float = 0.0  # see :func:`_run`: the model's hop spreads window completions evenly


@dataclass(frozen=True)
class ProducerReport:
    """What one producer process did."""

    messages: int
    audio_seconds: float
    late_p99_s: float  # lateness of sends against their schedule
    late_max_s: float
    cpu_seconds: float


def _run(spec: LoadSpec, streams: range, start_at: float, conn: Connection) -> None:
    import zmq

    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 10_000)
    sock.connect(spec.address)
    step = int(round(spec.chunk_seconds * spec.sample_rate))
    period = step / spec.sample_rate
    ids = [f"{spec.prefix}{i}" for i in streams]
    clips = [spec.audio[i % len(spec.audio)] for i in streams]
    offsets = [(i * 7919 * step) % max(1, clip.size - step) for i, clip in zip(streams, clips, strict=True)]
    phases = [k * period / len(ids) for k in range(len(ids))]
    # Each stream first sends a pre-roll of its own length (spread evenly over 0..preroll_seconds by the
    # golden ratio), so that streams complete their windows at different moments; without it every stream
    # completes one on the same chunks, and a measured interval holds one window per stream more or less
    # depending on where it starts.
    prerolls = [int(((i * 0.6180339887) % 1.0) * spec.preroll_seconds * spec.sample_rate) for i in streams]
    late: list[float] = []
    messages, tick = 0, 0
    cpu0 = time.process_time()
    while time.monotonic() < start_at:
        time.sleep(0.001)
    end = start_at + spec.seconds
    while True:
        base = start_at + tick * period
        if spec.rate > 0 and base >= end:
            break
        for k, (sid, clip) in enumerate(zip(ids, clips, strict=True)):
            if spec.rate > 0:
                due = base + phases[k] / spec.rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                else:
                    late.append(now - due)
            if tick == 0 and prerolls[k]:
                sock.send_multipart(encode_frame(sid, clip[: prerolls[k]], spec.sample_rate, 0))
            at = (offsets[k] + tick * step) % (clip.size - step)
            sock.send_multipart(encode_frame(sid, clip[at : at + step], spec.sample_rate, tick + 1))
            messages += 1
        tick += 1
        if spec.rate <= 0 and time.monotonic() >= end:
            break
    sock.close(linger=5000)
    ctx.term()
    lateness = np.asarray(late or [0.0])
    conn.send(
        ProducerReport(
            messages,
            messages * period,
            float(np.percentile(lateness, 99)),
            float(lateness.max()),
            time.process_time() - cpu0,
        )
    )
    conn.close()


class ProducerGroup:
    """``processes`` forked producers sharing ``n_streams`` streams; :meth:`join` collects their reports."""

    def __init__(self, spec: LoadSpec, n_streams: int, processes: int, delay: float = 1.0) -> None:
        processes = max(1, min(processes, n_streams))
        bounds = np.linspace(0, n_streams, processes + 1).astype(int)
        start_at = time.monotonic() + delay  # all processes start their clocks together
        self.ends_at = start_at + spec.seconds  # when real-time producers send their last message
        ctx = mp.get_context("fork")
        self._pipes: list[Connection] = []
        self.procs: list[Any] = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_run, args=(spec, range(int(lo), int(hi)), start_at, send), daemon=True)
            proc.start()
            send.close()
            self._pipes.append(recv)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def join(self, timeout: float) -> list[ProducerReport]:
        """Wait for every process; a process that does not report in time is killed and left out."""
        reports = []
        deadline = time.monotonic() + timeout
        for pipe, proc in zip(self._pipes, self.procs, strict=True):
            if pipe.poll(max(0.0, deadline - time.monotonic())):
                reports.append(pipe.recv())
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
        return reports
