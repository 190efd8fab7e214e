"""Faults the daemon survives: a producer that vanishes and returns, a subscriber that never reads,
an artifact directory it cannot read at start.

The daemon runs as a subprocess with real ZeroMQ sockets on loopback (see
``tests/helpers/daemon.py``).  Faults already covered elsewhere are not
repeated here: the url source's ffmpeg killed (``tests/daemon/test_url_source.py``),
a corrupt model on SIGHUP and a garbage producer (``tests/daemon/test_serve.py``),
the disk filling during ``dataset build`` (``tests/training/test_dataset_build.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from helpers.daemon import SR, Daemon, Producer, clip, expected_windows, free_port

ANY_PORTS = ("--publish", "tcp://127.0.0.1:*", "--metrics", "127.0.0.1:0")
SECONDS, RATE = 60, 8  # audio per stream in the stuck-subscriber test, sent at RATE x real time


def _states(daemon: Daemon, stream: str) -> list[str]:
    return [e["state"] for e in daemon.stream_events(stream, "state")]


@pytest.mark.slow
def test_producer_disappears_and_returns(artifact: Path) -> None:
    """A producer dies and restarts (seq from 0): quickly, then after the idle timeout.

    The quick restart is counted as ``seq_restart`` and the stream stays up; the
    long absence takes the stream down and a new producer brings it up again.
    Not one window of the restarted stream is lost, and a second stream fed by
    another producer all along never notices.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    steady_audio = clip("classical", 24, seed=1)
    pieces = [clip("electronic", 4, seed=s) for s in (2, 3, 4)]
    with Daemon("--model", artifact, "--source", f"zmq:{address}?idle=1", "--print", *ANY_PORTS) as daemon:
        steady = Producer(address)
        feeder = threading.Thread(target=steady.send, args=("steady", steady_audio), kwargs={"rate": 2})
        feeder.start()
        try:
            for i, piece in enumerate(pieces):
                producer = Producer(address)  # a new process would be a new socket, seq from 0
                producer.send("radio", piece, rate=4)
                producer.close()  # the producer dies
                if i == 0:  # back at once: the stream never went down
                    assert _states(daemon, "radio") == ["up"]
                elif i == 1:  # gone for longer than idle=1: down, then up again with the next one
                    daemon.wait_for(lambda: _states(daemon, "radio")[-1:] == ["down"], 10, "radio down")
        finally:
            feeder.join()
        steady.close()
        daemon.wait_for(
            lambda: all(_states(daemon, s)[-1:] == ["down"] for s in ("radio", "steady")),
            30,
            "both streams to end",
        )
        radio_windows = expected_windows(sum(len(p) for p in pieces))  # the stream's audio is continuous
        assert daemon.metric("genretag_windows_processed_total", stream="radio") == radio_windows
        assert daemon.metric("genretag_source_errors_total", stream="radio", kind="seq_restart") == 1
        assert daemon.metric("genretag_windows_processed_total", stream="steady") == expected_windows(
            len(steady_audio)
        )
        assert daemon.metric("genretag_source_errors_total", stream="steady") == 0
        assert daemon.metric("genretag_windows_dropped_total") == 0
        assert daemon.stop() == 0
    assert _states(daemon, "radio") == ["up", "down", "up", "down"]
    assert _states(daemon, "steady") == ["up", "down"]
    assert daemon.labels("steady") == ["classical"]
    assert daemon.labels("radio") == ["electronic", "electronic"]


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def _reader(sub: zmq.Socket[Any], received: list[dict[str, Any]], done: threading.Event) -> None:
    while not done.is_set() or sub.poll(500):
        if sub.poll(100):
            received.append(json.loads(sub.recv_multipart()[1]))


@pytest.mark.slow
@pytest.mark.parametrize("nodrop", [False, True])
def test_stuck_subscriber_never_slows_tagging(
    artifact: Path, tmp_path: Path, context: zmq.Context[Any], nodrop: bool
) -> None:
    """A subscriber that never reads: the publisher never blocks, every window is scored.

    Events go out over ``ipc://``, whose socket buffer holds only a few hundred
    events (over TCP the kernel would first buffer megabytes), with a
    ``publish.hwm`` of 50: the stuck subscriber's queue is full after some 300
    of the 950 events, while one that reads keeps up with bursts of a batch.  By default libzmq drops
    the stuck subscriber's events without a trace and a second subscriber that
    reads gets every one of them; with ``publish.nodrop`` an event that does not
    fit is sent to nobody and counted in ``genretag_events_dropped_total``.
    """
    events_address = f"ipc://{tmp_path}/events"
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[publish]\naddress = "{events_address}"\nhwm = 50\nscores = true\nnodrop = {str(nodrop).lower()}\n'
    )
    port = free_port()
    streams = {f"s{i}": clip(("classical", "electronic")[i % 2], SECONDS, seed=i) for i in range(8)}
    with Daemon(
        "--config",
        config,
        "--model",
        artifact,
        "--source",
        f"zmq:tcp://127.0.0.1:{port}?idle=1",
        "--metrics",
        "127.0.0.1:0",
    ) as daemon:
        stuck = context.socket(zmq.SUB)
        stuck.setsockopt(zmq.RCVHWM, 1)
        stuck.connect(events_address)
        stuck.subscribe(b"")
        reading = context.socket(zmq.SUB)
        reading.connect(events_address)
        reading.subscribe(b"genretag.scores.")
        received: list[dict[str, Any]] = []
        done = threading.Event()
        reader = threading.Thread(target=_reader, args=(reading, received, done))
        reader.start()
        time.sleep(1.0)  # both subscriptions reach the daemon (ipc: at once; the slack is generous)
        producer = Producer(f"tcp://127.0.0.1:{port}")
        started = time.monotonic()
        step = SR // 10
        for k in range(0, SECONDS * SR, step):
            for name, audio in streams.items():
                producer.frame(name, audio[k : k + step])
            time.sleep(max(0.0, started + (k + step) / SR / RATE - time.monotonic()))
        total = len(streams) * expected_windows(SECONDS * SR)
        daemon.wait_for(
            lambda: (
                daemon.metric("genretag_windows_processed_total")
                + daemon.metric("genretag_windows_dropped_total")
                >= total
            ),
            60,
            "all windows",
        )
        elapsed = time.monotonic() - started
        producer.close()
        published = daemon.metric("genretag_events_published_total", type="scores")
        dropped = daemon.metric("genretag_events_dropped_total", type="scores")
        print(
            f"\nnodrop={nodrop}: {total} windows in {elapsed:.1f} s ({total / elapsed:.0f}/s) with a stuck "
            f"subscriber; scores events published {published:.0f}, dropped {dropped:.0f}"
        )
        assert daemon.metric("genretag_windows_processed_total") == total
        assert daemon.metric("genretag_windows_dropped_total") == 0
        assert published + dropped == total  # one scores event per window, each sent or counted
        time.sleep(1.0)  # the reading subscriber drains what is on its way
        done.set()
        reader.join()
        assert len(received) == published
        if nodrop:
            assert dropped > 0  # the stuck subscriber's queue filled; every loss is on the metric
        else:
            assert dropped == 0 and published == total  # its losses are its own
        assert daemon.stop() == 0


def _file_modes_bind() -> list[str]:
    """A command prefix under which file modes bind the daemon.

    Root ignores ``chmod 000`` (CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH bypass
    permission bits), so as root the daemon runs through ``setpriv`` without
    those two capabilities, as a unit with a narrowed CapabilityBoundingSet
    would; another user needs nothing.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to drop root's file-mode override")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


@pytest.mark.parametrize(
    ("damage", "route", "code", "expected"),
    [
        ("mode 000", "config", 1, "Permission denied"),
        ("mode 000", "flag", 2, "is not readable"),  # click checks a --model directory before anything runs
        ("manifest is a directory", "config", 1, "unreadable manifest"),
    ],
)
def test_unreadable_artifact_at_start_fails_clearly(
    artifact: Path, tmp_path: Path, damage: str, route: str, code: int, expected: str
) -> None:
    """The daemon cannot read its model at start: one clear line naming it, non-zero exit, no traceback.

    ``config`` names the model as a deployment does (``[model] path`` in the
    config file), so the artifact loader meets the damage; ``flag`` uses ``--model``.
    """
    model = tmp_path / "model"
    shutil.copytree(artifact, model)
    if damage == "mode 000":
        model.chmod(0o000)
    else:
        (model / "manifest.json").unlink()
        (model / "manifest.json").mkdir()
    config = tmp_path / "serve.toml"
    config.write_text(f'[model]\npath = "{model}"\n')
    how = ["--config", str(config)] if route == "config" else ["--model", str(model)]
    try:
        proc = subprocess.run(
            [
                *_file_modes_bind(),
                sys.executable,
                "-m",
                "genretag.cli.main",
                "serve",
                *how,
                "--source",
                "zmq:tcp://127.0.0.1:*",
                *ANY_PORTS,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        model.chmod(0o755)
    err = proc.stderr
    assert proc.returncode == code, err
    assert expected in err and str(model) in err and "Traceback" not in err, err
