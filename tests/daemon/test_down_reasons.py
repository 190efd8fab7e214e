"""A subscriber learns of sources that never deliver from the events alone (issue 14, points 2-4).

The daemon runs as a subprocess with a ``url:`` source whose server answers 404
from the first request (a real loopback HTTP server, the real ffmpeg) and a
``mic:`` source naming a device that does not exist (the real PortAudio, which
lists whatever this machine has, possibly nothing).
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.daemon import Daemon

ANY_PORTS = ("--publish", "tcp://127.0.0.1:*", "--metrics", "127.0.0.1:0")


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.send_error(404, "Not Found")

    def log_message(self, *_: object) -> None:
        """Quiet."""


@pytest.fixture
def missing_mount() -> Iterator[tuple[int, str]]:
    """(port, URL) of a mount on a loopback server that answers 404 to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port, f"http://127.0.0.1:{server.server_port}/live.mp3"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_sources_that_never_deliver_are_down_with_a_reason(
    artifact: Path, missing_mount: tuple[int, str]
) -> None:
    port, url = missing_mount
    radio = f"127.0.0.1:{port}/live.mp3"  # host and mount, not just "127.0.0.1"
    mic = "mic-NoSuchDevice"
    with Daemon(
        "--model", artifact, "--source", f"url:{url}", "--source", "mic:NoSuchDevice", "--print", *ANY_PORTS
    ) as daemon:
        daemon.wait_for(
            lambda: all(daemon.stream_events(s, "state") for s in (radio, mic)),
            30,
            "down events of both streams",
        )
        started = time.monotonic()
        daemon.wait_for(
            lambda: daemon.metric("genretag_source_errors_total", stream=mic, kind="device_missing") >= 2,
            30,
            "a retry of the mic",
        )
        daemon.wait_for(
            lambda: daemon.metric("genretag_source_reconnects_total", stream=radio) >= 2,
            30,
            "a retry of the radio",
        )
        assert time.monotonic() - started < 30
        for stream in (radio, mic):
            assert daemon.metric("genretag_stream_up", stream=stream) == 0, stream
        assert daemon.stop() == 0
    # one down per outage: not one per attempt, and not again at shutdown
    [radio_down], [mic_down] = (daemon.stream_events(s) for s in (radio, mic))
    assert (radio_down["state"], radio_down["reason"], radio_down["pos"]) == ("down", "http_404", 0.0)
    assert (mic_down["state"], mic_down["reason"]) == ("down", "device_missing")
    listings = [i for i, line in enumerate(daemon.log) if "input device 'NoSuchDevice' not found" in line]
    assert len(listings) == 1, daemon.log  # once, however often it retries
    assert "Input devices PortAudio lists" in daemon.log[listings[0]]
    assert daemon.log[listings[0] + 1].startswith("  "), daemon.log  # then the devices, one a line
