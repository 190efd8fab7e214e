"""Soak: streams come and go through one daemon for three minutes; its resources must not grow.

Generations of 60 ZeroMQ streams (new stream ids each time, from a new producer
connection) play 8 s of music in real time and vanish; after the idle timeout
they are down, and the next generation's streams take their slots (the stream
table holds ``limits.max_streams`` = 64, so every generation evicts the last
one's state: windowers, smoothers, metric series).  Three ``file:`` sources
loop all along.  The daemon's RSS, open file descriptors and threads are read
from ``/proc`` in each pause between generations, when no producer is
connected; after warm-up (the stream table full, every metric family in use)
they must stay put: RSS within +10 %, descriptors and threads exactly equal.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.daemon import LABELS, SR, Daemon, Producer, clip, free_port
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

STREAMS = 60  # per generation
PLAY_SECONDS, PAUSE_SECONDS = 8.0, 2.5  # the pause outlasts idle=1 s: every stream is down
GENERATIONS, WARMUP_GENERATIONS = 16, 3  # 16 x 10.5 s = 168 s
RSS_TOLERANCE = 0.10
# Windows scored by all streams ever: windows_processed_total{stream} loses the series of evicted streams.
SCORED = "genretag_inference_batch_size_sum"


def _proc_status(pid: int) -> dict[str, int]:
    """RSS (kB), open descriptors and threads of process ``pid``."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {
        "rss_kb": int(fields["VmRSS"].split()[0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


def _stream_label_values(daemon: Daemon) -> set[str]:
    return {
        s.labels["stream"]
        for f in text_string_to_metric_families(daemon.scrape())
        for s in f.samples
        if "stream" in s.labels
    }


def _play_generation(address: str, generation: int, audio: list[np.ndarray]) -> None:
    """One producer connection, ``STREAMS`` new stream ids, ``PLAY_SECONDS`` in real time."""
    producer = Producer(address)
    step, start = SR // 10, time.monotonic()
    for k in range(0, int(PLAY_SECONDS * SR), step):
        for i in range(STREAMS):
            producer.frame(f"g{generation:02d}-s{i:02d}", audio[i % len(audio)][k : k + step])
        time.sleep(max(0.0, start + (k + step) / SR - time.monotonic()))
    producer.close()


def test_soak_streams_come_and_go_without_growth(artifact: Path, tmp_path: Path) -> None:
    for i, genre in enumerate(LABELS):
        sf.write(tmp_path / f"loop{i}.flac", clip(genre, 7, seed=20 + i), SR)
    files = [arg for i in range(len(LABELS)) for arg in ("--source", f"file:{tmp_path}/loop{i}.flac?loop=1")]
    port = free_port()
    audio = [clip(LABELS[i % 3], PLAY_SECONDS, seed=i) for i in range(9)]
    samples: list[dict[str, int]] = []
    started = time.monotonic()
    with Daemon(
        "--model",
        artifact,
        "--source",
        f"zmq:tcp://127.0.0.1:{port}?idle=1",
        *files,
        "--publish",
        "tcp://127.0.0.1:*",
        "--metrics",
        "127.0.0.1:0",
    ) as daemon:
        for generation in range(GENERATIONS):
            _play_generation(f"tcp://127.0.0.1:{port}", generation, audio)
            time.sleep(PAUSE_SECONDS)
            samples.append(_proc_status(daemon.proc.pid))
            if generation == WARMUP_GENERATIONS - 1:
                windows_at_warmup = daemon.metric(SCORED)
        processed = daemon.metric(SCORED)
        dropped = daemon.metric("genretag_windows_dropped_total")
        labelled = _stream_label_values(daemon)
        refused = daemon.metric("genretag_streams_refused_total")
        assert daemon.stop() == 0
    elapsed = time.monotonic() - started
    print(
        f"\nsoak: {GENERATIONS} generations x {STREAMS} streams ({GENERATIONS * STREAMS} stream ids) + 3 "
        f"looped files in {elapsed:.0f} s; {processed:.0f} windows scored, {dropped:.0f} dropped"
    )
    for generation, s in enumerate(samples):
        print(
            f"  after generation {generation + 1:2d}: RSS {s['rss_kb'] / 1024:6.1f} MB, "
            f"{s['fds']} fds, {s['threads']} threads"
        )
    warm, end = samples[WARMUP_GENERATIONS - 1], samples[-1]
    assert refused == 0  # down streams gave up their slots to the new ones
    assert len(labelled) <= 64, sorted(labelled)  # evicted streams' metric series are gone
    assert processed - windows_at_warmup > 0.9 * (GENERATIONS - WARMUP_GENERATIONS) * STREAMS * 15
    assert end["rss_kb"] <= warm["rss_kb"] * (1 + RSS_TOLERANCE), (warm, end)
    assert end["fds"] == warm["fds"], (warm, end)
    assert end["threads"] == warm["threads"], (warm, end)
