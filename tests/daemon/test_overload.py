"""Past capacity the real daemon sheds the oldest windows, counts them per stream, scores the rest in time.

Unit tests of the drop rule are in ``test_batcher.py`` and the ingest sockets' bounds in
``test_ingest_workers.py``; this is the daemon as a subprocess, overloaded for real: many streams' audio
arrives at once, far more than the model scores within ``batch.max_age_ms`` at any speed it may have.
The overload at 1.5x capacity with the bundled model is measured by ``make bench-overload``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.daemon import SR, Daemon, Producer, clip, expected_windows, free_port

MakeProducer = Callable[[str], Producer]
STREAMS, SECONDS = 16, 30
MAX_AGE_S = 0.3


@pytest.mark.slow
def test_an_overloaded_daemon_drops_stale_windows_per_stream_and_scores_the_rest_in_time(
    artifact: Path, tmp_path: Path, producer_factory: MakeProducer
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(f"[batch]\nmax_batch_size = 16\nmax_age_ms = {MAX_AGE_S * 1000:g}\n")
    port = free_port()
    streams = [f"s{i:02d}" for i in range(STREAMS)]
    audio = {
        name: clip(("classical", "electronic")[i % 2], SECONDS, seed=i) for i, name in enumerate(streams)
    }
    with Daemon(
        "--config",
        config,
        "--model",
        artifact,
        "--source",
        f"zmq:tcp://127.0.0.1:{port}?idle=1",
        "--print",
        "--publish",
        "tcp://127.0.0.1:*",
        "--metrics",
        "127.0.0.1:0",
    ) as daemon:
        producer = producer_factory(f"tcp://127.0.0.1:{port}")
        step = SR // 10
        for k in range(0, SECONDS * SR, step):  # 8 minutes of audio in a burst: ~900 windows at once
            for name in streams:
                producer.frame(name, audio[name][k : k + step])
        daemon.wait_for(
            lambda: all(
                [e["state"] for e in daemon.stream_events(n, "state")][-1:] == ["down"] for n in streams
            ),
            60,
            "every stream to end",
        )
        m = daemon.metric
        per_stream = expected_windows(SECONDS * SR)
        for name in streams:
            scored = m("genretag_windows_processed_total", stream=name)
            stale = m("genretag_windows_dropped_total", stream=name, reason="stale")
            assert scored + stale == per_stream, (name, scored, stale)  # every window scored or counted
            assert stale > 0, name
        assert m("genretag_windows_dropped_total") == m("genretag_windows_dropped_total", reason="stale")
        dropped, scored = m("genretag_windows_dropped_total"), m("genretag_windows_processed_total")
        latency = "genretag_end_to_end_latency_seconds"
        within = m(f"{latency}_bucket", le="1.0")
        print(
            f"\n{STREAMS * per_stream} windows at once: {scored:.0f} scored, {dropped:.0f} stale; "
            f"latency of the scored: mean {m(f'{latency}_sum') / scored * 1000:.0f} ms, "
            f"{within:.0f} within 1 s, {m(f'{latency}_bucket', le='0.5'):.0f} within 0.5 s"
        )
        assert within == m(f"{latency}_count") == scored  # max_age + a batch of 16 + events: far below 1 s
        assert daemon.stop() == 0
