"""Ingest worker processes (``zmq:...?workers=N``): real processes, real sockets, faults injected for real.

The behaviour of a daemon with workers matches the in-process source (the
parametrised tests of ``test_serve.py``); these tests cover what only workers
have: process lifetime, a worker or the router that dies, and reloads they
cannot follow.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq
from helpers.daemon import HOP_S, SR, WINDOW_S, Daemon, Producer, clip, expected_windows, free_port, genretag

from genretag.daemon.ingest.sockets import AUDIO_HWM, MAX_WINDOWS_PER_MESSAGE, RESULTS_HWM
from genretag.daemon.protocol import encode_frame
from genretag.daemon.sources.registry import parse_spec
from genretag.daemon.sources.zmq import ZmqSource
from genretag.daemon.stream import PushResult, WindowerSettings
from genretag.pipeline.audio import float_to_int16
from genretag.pipeline.windows import WindowSpec

MakeProducer = Callable[[str], Producer]
ANY_PORTS = ("--publish", "tcp://127.0.0.1:*", "--metrics", "127.0.0.1:0")


def ingest_processes(pid: int) -> list[int]:
    """Pids of the daemon's ingest workers and router (multiprocessing's resource tracker left out)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    processes = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:  # exited meanwhile
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            processes.append(child)
    return processes


def started_pids(daemon: Daemon) -> tuple[list[int], int]:
    """The worker pids and the router pid the daemon logged at its start."""
    line = next(line for line in daemon.log if "ingest processes started" in line)
    found = re.search(r"workers \(pids ([\d ]+)\), router \(pid (\d+)\)", line)
    assert found, line
    return [int(p) for p in found[1].split()], int(found[2])


def feed_in_real_time(producer: Producer, streams: list[str], stop: threading.Event) -> threading.Thread:
    """A thread sending every stream in real time (0.1 s chunks of 8 kHz audio) until ``stop``."""

    def feed() -> None:
        audio = {name: clip("electronic", 60, seed=i) for i, name in enumerate(streams)}
        step, k, start = 800, 0, time.monotonic()
        while not stop.is_set() and k + step <= len(audio[streams[0]]):
            for name in streams:
                producer.frame(name, audio[name][k : k + step])
            k += step
            time.sleep(max(0.0, start + k / 8000 - time.monotonic()))

    sender = threading.Thread(target=feed, daemon=True)
    sender.start()
    return sender


def ingest_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("genretag-ingest-*")}


def test_workers_option_is_checked() -> None:
    assert parse_spec("zmq:tcp://127.0.0.1:5555?workers=4").options == {"workers": 4.0}
    for bad in ("-1", "65", "1.5", "many"):
        with pytest.raises(ValueError, match="workers"):
            parse_spec(f"zmq:tcp://127.0.0.1:5555?workers={bad}")


@pytest.mark.slow
def test_a_killed_worker_is_counted_restarted_and_its_streams_come_back(
    artifact: Path, producer_factory: MakeProducer
) -> None:
    port = free_port()
    dirs_before = ingest_dirs()
    streams = [f"s{i}" for i in range(6)]
    with Daemon(
        "--model",
        artifact,
        "--source",
        f"zmq:tcp://127.0.0.1:{port}?idle=30&workers=2",
        "--print",
        *ANY_PORTS,
    ) as daemon:
        workers, router = started_pids(daemon)
        assert len(workers) == 2 and sorted(ingest_processes(daemon.proc.pid)) == sorted([*workers, router])
        assert len(ingest_dirs() - dirs_before) == 1  # the private socket directory
        stop = threading.Event()
        sender = feed_in_real_time(producer_factory(f"tcp://127.0.0.1:{port}"), streams, stop)
        try:
            daemon.wait_for(lambda: all(daemon.stream_events(s, "label") for s in streams), 60, "labels")
            os.kill(workers[0], signal.SIGKILL)
            daemon.wait_for(
                lambda: daemon.metric("genretag_source_errors_total", kind="ingest_worker") == 1,
                20,
                "the death to be counted",
            )
            gone = [s for s in streams if daemon.stream_events(s, "state")[-1]["state"] == "down"]
            assert gone, "the dead worker's streams were not reported down"
            daemon.wait_for(lambda: len(ingest_processes(daemon.proc.pid)) == 3, 20, "the restart")
            assert workers[0] not in ingest_processes(daemon.proc.pid)
            scored = {s: daemon.metric("genretag_windows_processed_total", stream=s) for s in gone}
            daemon.wait_for(
                lambda: all(daemon.stream_events(s, "state")[-1]["state"] == "up" for s in gone),
                20,
                "the streams to come back up",
            )
            daemon.wait_for(
                lambda: all(
                    daemon.metric("genretag_windows_processed_total", stream=s) > scored[s] + 2 for s in gone
                ),
                30,
                "windows after the restart",
            )
            ups = [e["pos"] for e in daemon.stream_events(gone[0], "state") if e["state"] == "up"]
            assert len(ups) == 2 and ups[1] > ups[0] + 1, ups  # positions carry on, they do not restart
        finally:
            stop.set()
            sender.join(10)
        assert daemon.metric("genretag_windows_dropped_total") == 0
        assert any(f"genretag-ingest-0 (pid {workers[0]}) exited" in line for line in daemon.log)
        survivors = ingest_processes(daemon.proc.pid)
        assert daemon.stop() == 0
    for name in streams:  # every stream still up was reported down at shutdown, once
        assert daemon.stream_events(name, "state")[-1]["state"] == "down"
    time.sleep(0.5)
    assert not [pid for pid in survivors if Path(f"/proc/{pid}").exists()], "workers outlived the daemon"
    assert ingest_dirs() == dirs_before


@pytest.mark.slow
def test_a_killed_router_is_counted_restarted_and_streams_carry_on(
    artifact: Path, producer_factory: MakeProducer
) -> None:
    """The router holds no stream state: its death loses the messages in it (counted as gaps by the
    workers), no stream goes down, and the restarted router routes every stream to the same worker."""
    port = free_port()
    streams = [f"r{i}" for i in range(4)]
    with Daemon(
        "--model",
        artifact,
        "--source",
        f"zmq:tcp://127.0.0.1:{port}?idle=30&workers=2",
        "--print",
        *ANY_PORTS,
    ) as daemon:
        workers, router = started_pids(daemon)
        stop = threading.Event()
        sender = feed_in_real_time(producer_factory(f"tcp://127.0.0.1:{port}"), streams, stop)
        try:
            daemon.wait_for(lambda: all(daemon.stream_events(s, "label") for s in streams), 60, "labels")
            os.kill(router, signal.SIGKILL)
            daemon.wait_for(
                lambda: daemon.metric("genretag_source_errors_total", kind="ingest_router") == 1,
                20,
                "the death to be counted",
            )
            daemon.wait_for(
                lambda: any("ingest-router started again" in line for line in daemon.log), 20, "the restart"
            )
            processes = ingest_processes(daemon.proc.pid)
            assert router not in processes and set(workers) <= set(processes), (workers, router, processes)
            scored = {s: daemon.metric("genretag_windows_processed_total", stream=s) for s in streams}
            daemon.wait_for(
                lambda: all(
                    daemon.metric("genretag_windows_processed_total", stream=s) > scored[s] + 2
                    for s in streams
                ),
                30,
                "windows after the restart",
            )
        finally:
            stop.set()
            sender.join(10)
        for name in streams:  # up once, never down while the router was away
            assert [e["state"] for e in daemon.stream_events(name, "state")] == ["up"], name
        assert daemon.metric("genretag_source_errors_total", kind="ingest_worker") == 0
        assert daemon.metric("genretag_windows_dropped_total") == 0
        assert daemon.stop() == 0


@pytest.mark.slow
def test_reload_with_another_window_is_refused_with_workers(
    artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    """Workers window with the settings they started with: a reload that changes them is refused, clearly."""
    first, second = artifacts
    config = tmp_path / "serve.toml"
    port = free_port()

    def configure(model: Path, hop: str = "") -> None:
        config.write_text(
            f'[model]\npath = "{model}"\n[publish]\naddress = "tcp://127.0.0.1:*"\n'
            f'[metrics]\naddress = "127.0.0.1:0"\n{hop}'
            f'[[source]]\nspec = "zmq:tcp://127.0.0.1:{port}?workers=1"\n'
        )

    configure(first)
    with Daemon("--config", config) as daemon:
        configure(second, "[window]\nhop_seconds = 0.25\n")
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(
            lambda: daemon.metric("genretag_model_reloads_total", result="failed") == 1,
            30,
            "the refused reload",
        )
        assert any("reload refused" in line and "ingest worker" in line for line in daemon.log)
        configure(second)  # same window: fine
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(
            lambda: daemon.metric("genretag_model_reloads_total", result="ok") == 1, 30, "the accepted reload"
        )
        assert daemon.stop() == 0


class StalledSink:
    """The daemon's side of an ingest pool (its Tagger) that takes no windows until :attr:`release` is set:
    a collector that has fallen behind, at its worst."""

    windows_held = 64

    def __init__(self) -> None:
        self.windowing = WindowerSettings(WindowSpec(SR, WINDOW_S, HOP_S))
        self.release = threading.Event()
        self.windows = 0
        self.states: list[tuple[str, str]] = []
        self.errors: list[str] = []

    def windowed(self, stream: str, result: PushResult) -> None:
        self.release.wait()
        self.windows += len(result.windows)

    def state(
        self, stream: str, state: str, reason: str = "", detail: str = "", *, remote: bool = False
    ) -> None:
        self.states.append((state, reason))

    def error(self, stream: str, kind: str, message: str) -> None:
        self.errors.append(kind)

    def audio(self, chunk: object) -> None:
        raise AssertionError("a source with workers sends windows, not audio")


@pytest.mark.slow
def test_a_stalled_daemon_backs_up_to_the_producer_holding_little_and_losing_nothing(tmp_path: Path) -> None:
    """The sockets between the ingest processes hold a bounded number of messages (explicit high-water
    marks; with libzmq's default of 1,000 at each end, results of 64 windows a message could hold tens of
    GiB): once they are full, the producer's sends wait.  Released, every message held comes through,
    windowed, none lost."""
    source = ZmqSource("z", f"ipc://{tmp_path}/in", workers=1, rcvhwm=10, idle_timeout=30)
    sink = StalledSink()
    source.start(sink)  # type: ignore[arg-type]
    context: zmq.Context[Any] = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 10)
    push.setsockopt(zmq.SNDTIMEO, 1000)
    push.connect(source.address)
    second = float_to_int16(clip("electronic", 1.0))  # 16 KB a message
    # Messages the chain may hold: the producer's and the source's queues, two audio hops (relay, inbox) of
    # AUDIO_HWM at each end, what the worker gathers and the results sockets hold (in windows, two a
    # message), and the kernel's socket buffers (about 200 KB a hop).
    bound = 10 + 10 + 4 * AUDIO_HWM + (2 + 2 * RESULTS_HWM) * MAX_WINDOWS_PER_MESSAGE // 2 + 100
    held = 0
    try:
        while held < 10 * bound:
            try:
                push.send_multipart(encode_frame("s", second, SR, held))
            except zmq.Again:  # waited a second: the chain is full
                break
            held += 1
        assert held < bound, f"{held} messages went in with the daemon's side stalled"
        time.sleep(1.0)  # a stall of seconds: nothing on the way may give up (the relay's proxy once did)
        sink.release.set()
        deadline = time.monotonic() + 30
        while sink.windows < expected_windows(held * SR) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sink.release.set()
        push.close(linger=0)
        context.term()
        source.stop()
    print(f"\n{held} messages ({held * second.nbytes // 1024} KiB) held with the daemon's side stalled")
    assert sink.windows == expected_windows(held * SR)
    assert sink.errors == [] and sink.states == [("up", ""), ("down", "stopped")]


@pytest.mark.slow
def test_ingest_processes_exit_when_the_daemon_dies_while_they_start(artifact: Path) -> None:
    """A daemon killed while its ingest processes still import leaves them to init.  They notice and exit
    (they once took the parent they saw when their main function began, init by then, and ran for ever)."""
    daemon = genretag(
        "serve", "--model", artifact, "--source", f"zmq:tcp://127.0.0.1:{free_port()}?workers=2", *ANY_PORTS
    )
    deadline = time.monotonic() + 60
    while not (started := ingest_processes(daemon.pid)):
        assert daemon.poll() is None and time.monotonic() < deadline, "no ingest process started"
        time.sleep(0.005)
    daemon.kill()
    daemon.wait()
    deadline = time.monotonic() + 10
    try:
        while (
            alive := [pid for pid in started if Path(f"/proc/{pid}").exists()]
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, f"ingest processes {alive} outlived their daemon"
    finally:
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
