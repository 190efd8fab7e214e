"""Ingest worker processes (``zmq:...?workers=N``): real processes, real sockets, faults injected for real.

The behaviour of a daemon with workers matches the in-process source (the
parametrised tests of ``test_serve.py``); these tests cover what only workers
have: process lifetime, a worker that dies, and reloads they cannot follow.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_helpers import Daemon, Producer, clip, free_port

from genretag.daemon.sources.registry import parse_spec

MakeProducer = Callable[[str], Producer]
ANY_PORTS = ("--publish", "tcp://127.0.0.1:*", "--metrics", "127.0.0.1:0")


def ingest_workers(pid: int) -> list[int]:
    """Pids of the daemon's ingest worker processes (multiprocessing's resource tracker left out)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    workers = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:  # exited meanwhile
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            workers.append(child)
    return workers


def ingest_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("genretag-ingest-*")}


def test_workers_option_is_checked() -> None:
    assert parse_spec("zmq:tcp://127.0.0.1:5555?workers=4").options == {"workers": 4.0}
    for bad in ("-1", "65", "1.5", "many"):
        with pytest.raises(ValueError, match="workers"):
            parse_spec(f"zmq:tcp://127.0.0.1:5555?workers={bad}")


def test_a_killed_worker_is_counted_restarted_and_its_streams_come_back(
        artifact: Path, producer_factory: MakeProducer) -> None:
    port = free_port()
    dirs_before = ingest_dirs()
    streams = [f"s{i}" for i in range(6)]
    with Daemon("--model", artifact, "--source", f"zmq:tcp://127.0.0.1:{port}?idle=30&workers=2", "--print",
                *ANY_PORTS) as daemon:
        workers = ingest_workers(daemon.proc.pid)
        assert len(workers) == 2, workers
        assert len(ingest_dirs() - dirs_before) == 1  # the private socket directory
        producer = producer_factory(f"tcp://127.0.0.1:{port}")
        stop = threading.Event()

        def feed() -> None:  # every stream in real time, 0.1 s chunks, until told to stop
            audio = {name: clip("electronic", 60, seed=i) for i, name in enumerate(streams)}
            step, k, start = 800, 0, time.monotonic()
            while not stop.is_set() and k + step <= len(audio[streams[0]]):
                for name in streams:
                    producer.frame(name, audio[name][k:k + step])
                k += step
                time.sleep(max(0.0, start + k / 8000 - time.monotonic()))

        sender = threading.Thread(target=feed, daemon=True)
        sender.start()
        try:
            daemon.wait_for(lambda: all(daemon.stream_events(s, "label") for s in streams), 60, "labels")
            os.kill(workers[0], signal.SIGKILL)
            daemon.wait_for(lambda: daemon.metric("genretag_source_errors_total", kind="ingest_worker") == 1,
                            20, "the death to be counted")
            gone = [s for s in streams if daemon.stream_events(s, "state")[-1]["state"] == "down"]
            assert gone, "the dead worker's streams were not reported down"
            daemon.wait_for(lambda: len(ingest_workers(daemon.proc.pid)) == 2, 20, "the restart")
            assert workers[0] not in ingest_workers(daemon.proc.pid)
            scored = {s: daemon.metric("genretag_windows_processed_total", stream=s) for s in gone}
            daemon.wait_for(lambda: all(daemon.stream_events(s, "state")[-1]["state"] == "up" for s in gone),
                            20, "the streams to come back up")
            daemon.wait_for(lambda: all(daemon.metric("genretag_windows_processed_total", stream=s)
                                        > scored[s] + 2 for s in gone), 30, "windows after the restart")
            ups = [e["pos"] for e in daemon.stream_events(gone[0], "state") if e["state"] == "up"]
            assert len(ups) == 2 and ups[1] > ups[0] + 1, ups  # positions carry on, they do not restart
        finally:
            stop.set()
            sender.join(10)
        assert daemon.metric("genretag_windows_dropped_total") == 0
        assert any("ingest worker" in line and "exited" in line for line in daemon.log)
        survivors = ingest_workers(daemon.proc.pid)
        assert daemon.stop() == 0
    for name in streams:  # every stream still up was reported down at shutdown, once
        assert daemon.stream_events(name, "state")[-1]["state"] == "down"
    time.sleep(0.5)
    assert not [pid for pid in survivors if Path(f"/proc/{pid}").exists()], "workers outlived the daemon"
    assert ingest_dirs() == dirs_before


def test_reload_with_another_window_is_refused_with_workers(artifacts: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    """Workers window with the settings they started with: a reload that changes them is refused, clearly."""
    first, second = artifacts
    config = tmp_path / "serve.toml"
    port = free_port()

    def configure(model: Path, hop: str = "") -> None:
        config.write_text(f'[model]\npath = "{model}"\n[publish]\naddress = "tcp://127.0.0.1:*"\n'
                          f'[metrics]\naddress = "127.0.0.1:0"\n{hop}'
                          f'[[source]]\nspec = "zmq:tcp://127.0.0.1:{port}?workers=1"\n')

    configure(first)
    with Daemon("--config", config) as daemon:
        configure(second, "[window]\nhop_seconds = 0.25\n")
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: daemon.metric("genretag_model_reloads_total", result="failed") == 1, 30,
                        "the refused reload")
        assert any("reload refused" in line and "ingest worker" in line for line in daemon.log)
        configure(second)  # same window: fine
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: daemon.metric("genretag_model_reloads_total", result="ok") == 1, 30,
                        "the accepted reload")
        assert daemon.stop() == 0
