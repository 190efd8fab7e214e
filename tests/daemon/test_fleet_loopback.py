"""A fleet on loopback: 3 daemons, 60 streams, one daemon stopped and restarted.

Every daemon runs ``serve --shards 3 --shard-index N`` with its own zmq:, publish
and metrics ports; producers route each stream to its shard, as ``genretag send``
with three ``--to`` does; one ``genretag subscribe`` connected to the three
publishers merges their events.  Checked: every stream is tagged by exactly one
daemon, its own; stopping daemon 1 (SIGTERM, as systemd or Kubernetes stop it)
publishes ``down`` for exactly its streams; the restarted daemon 1 takes them
back (``up`` for exactly those); the others never see a stream of another shard.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.daemon import SR, Daemon, Producer, clip, free_port, genretag

from genretag.daemon.fleet import shard_of

SHARDS = 3
STREAMS = [f"radio{k:02d}" for k in range(60)]
CHUNK_S = 0.5


class Feeder:
    """Real-time audio for every stream, each to its shard's daemon, until stopped."""

    def __init__(self, ports: list[int]) -> None:
        self.producers = [Producer(f"tcp://127.0.0.1:{port}") for port in ports]
        self.audio = {
            s: clip("electronic" if k % 2 else "classical", 12.0, seed=k) for k, s in enumerate(STREAMS)
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        step, sent, start = int(CHUNK_S * SR), 0, time.monotonic()
        while not self._stop.is_set():
            for stream, audio in self.audio.items():
                at = (sent * step) % (audio.size - step)
                self.producers[shard_of(stream, SHARDS)].frame(stream, audio[at : at + step])
            sent += 1
            self._stop.wait(max(0.0, start + sent * CHUNK_S - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for producer in self.producers:
            producer.close()


def start(index: int, ports: dict[str, list[int]], artifact: Path) -> Daemon:
    return Daemon(
        "--model",
        artifact,
        "--shards",
        SHARDS,
        "--shard-index",
        index,
        "--source",
        f"zmq:tcp://127.0.0.1:{ports['audio'][index]}?idle=2",
        "--publish",
        f"tcp://127.0.0.1:{ports['events'][index]}",
        "--metrics",
        f"127.0.0.1:{ports['metrics'][index]}",
        "--print",
        ready_timeout=120,
    )


def streams_with(events: list[dict[str, Any]], **match: str) -> set[str]:
    return {e["stream"] for e in events if all(e.get(k) == v for k, v in match.items())}


@pytest.mark.slow
def test_three_daemons_sixty_streams_one_restarted(artifact: Path) -> None:
    ports = {kind: [free_port() for _ in range(SHARDS)] for kind in ("audio", "events", "metrics")}
    own = {i: {s for s in STREAMS if shard_of(s, SHARDS) == i} for i in range(SHARDS)}
    assert all(own.values())
    daemons = [start(i, ports, artifact) for i in range(SHARDS)]
    subscriber = genretag("subscribe", *(f"tcp://127.0.0.1:{p}" for p in ports["events"]), "--json")
    merged: list[dict[str, Any]] = []
    threading.Thread(
        target=lambda: merged.extend(json.loads(line) for line in subscriber.stdout), daemon=True
    ).start()
    time.sleep(1.0)  # the subscriber's connections reach the publishers before the streams start
    feeder = Feeder(ports["audio"])
    try:
        for i, daemon in enumerate(daemons):
            daemon.wait_for(
                lambda d=daemon, i=i: streams_with(d.events, type="label") == own[i], 60, "labels"
            )
        # Each daemon tags exactly its own streams, and no other shard's stream reached it.
        for i, daemon in enumerate(daemons):
            assert streams_with(daemon.events) == own[i]
            assert daemon.metric("genretag_source_errors_total", kind="other_shard") == 0
        before = len(merged)
        assert daemons[1].stop() == 0
        down = streams_with(merged[before:], type="state", state="down")
        deadline = time.monotonic() + 10
        while down != own[1] and time.monotonic() < deadline:
            time.sleep(0.2)
            down = streams_with(merged[before:], type="state", state="down")
        assert down == own[1]
        restarted = len(merged)
        daemons[1] = start(1, ports, artifact)
        daemons[1].wait_for(
            lambda: streams_with(daemons[1].events, type="label") == own[1], 60, "labels back"
        )
        up = streams_with(merged[restarted:], type="state", state="up")
        assert up == own[1]
        # Through it all, each stream's events came from one daemon: its own.
        publishers: dict[str, set[int]] = defaultdict(set)
        for i, daemon in enumerate(daemons):
            for event in daemon.events:
                publishers[event["stream"]].add(i)
        assert all(publishers[s] == {shard_of(s, SHARDS)} for s in STREAMS)
        assert streams_with(merged, type="label") == set(STREAMS)
    finally:
        feeder.close()
        subscriber.terminate()
        for daemon in daemons:
            if daemon.proc.poll() is None:
                daemon.stop()


def test_send_routes_a_stream_to_its_daemon(tmp_path: Path) -> None:
    """`genretag send` with one --to per daemon sends the stream to its shard's address only."""
    import soundfile as sf
    import zmq

    from genretag.daemon.protocol import decode_frame

    path = tmp_path / "clip.wav"
    sf.write(path, 0.1 * np.ones(SR // 2, np.float32), SR, subtype="PCM_16")
    context: zmq.Context[Any] = zmq.Context()
    pulls = [context.socket(zmq.PULL) for _ in range(SHARDS)]
    try:
        for pull in pulls:
            pull.bind("tcp://127.0.0.1:*")
        addresses = [pull.getsockopt_string(zmq.LAST_ENDPOINT) for pull in pulls]
        for stream in ("radio00", "radio01", "radio02", "radio07"):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "genretag.cli.main",
                    "send",
                    str(path),
                    "--stream",
                    stream,
                    "--rate",
                    "0",
                ]
                + [arg for a in addresses for arg in ("--to", a)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert out.returncode == 0, out.stderr
            got = [
                i for i, pull in enumerate(pulls) if pull.poll(2000 if i == shard_of(stream, SHARDS) else 0)
            ]
            assert got == [shard_of(stream, SHARDS)], (stream, got)
            while pulls[got[0]].poll(200):
                assert decode_frame(pulls[got[0]].recv_multipart()).stream_id == stream
    finally:
        context.destroy(linger=0)
