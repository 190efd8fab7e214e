"""The daemon's ``url:`` ffmpeg is killed: that stream reconnects, the others never notice.

``tests/daemon/test_url_source.py`` kills the ffmpeg of a lone ``UrlSource``
against Icecast; this test does it inside a running daemon that also tags a
ZeroMQ stream and a file, to show the outage stays in its own stream.  The
radio is a small HTTP server on loopback that plays an MP3 in a loop at its
bitrate after a 10 s connect burst, as Icecast does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import soundfile as sf
from helpers.daemon import SR, Daemon, Producer, clip, expected_windows, free_port

pytestmark = pytest.mark.slow  # a minute of real-time radio, like the Icecast tests

MP3_RATE, MP3_BYTES_PER_SECOND = 22050, 8000  # 64 kbit/s CBR
BURST_SECONDS = 10


def _raw_mp3(path: Path) -> bytes:
    """20 s of electronic music as bare MPEG frames (no ID3 or Xing header), so copies loop cleanly."""
    wav = path.with_suffix(".wav")
    sf.write(wav, clip("electronic", 20, seed=11), SR)
    subprocess.run(
        [
            shutil.which("ffmpeg") or "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(wav),
            "-ar",
            str(MP3_RATE),
            "-codec:a",
            "libmp3lame",
            "-b:a",
            "64k",
            "-id3v2_version",
            "0",
            "-write_xing",
            "0",
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()


@pytest.fixture
def radio(tmp_path: Path) -> Iterator[str]:
    """URL of an endless MP3 stream paced at its bitrate."""
    mp3 = _raw_mp3(tmp_path / "radio.mp3")
    stopping = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            sent, start = 0, time.monotonic()
            piece = MP3_BYTES_PER_SECOND // 10
            try:
                while not stopping.is_set():
                    at = sent % len(mp3)
                    chunk = mp3[at : at + piece]
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    due = start + sent / MP3_BYTES_PER_SECOND - BURST_SECONDS
                    time.sleep(max(0.0, due - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *_: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/radio.mp3"
    stopping.set()
    server.shutdown()
    server.server_close()


def _ffmpeg_children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if comm == "ffmpeg" and int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def _states(daemon: Daemon, stream: str) -> list[str]:
    return [e["state"] for e in daemon.stream_events(stream, "state")]


def test_killed_ffmpeg_reconnects_and_other_streams_never_notice(
    artifact: Path, radio: str, tmp_path: Path
) -> None:
    port = free_port()
    loop = tmp_path / "loop.flac"
    sf.write(loop, clip("classical", 5, seed=12), SR)
    steady_audio = clip("classical", 40, seed=13)
    with Daemon(
        "--model",
        artifact,
        "--source",
        f"url:{radio}",
        "--source",
        f"file:{loop}?loop=1",
        "--source",
        f"zmq:tcp://127.0.0.1:{port}?idle=2",
        "--print",
        "--publish",
        "tcp://127.0.0.1:*",
        "--metrics",
        "127.0.0.1:0",
    ) as daemon:
        station = radio.removeprefix("http://")  # the url: source's stream id: host, port and mount
        producer = Producer(f"tcp://127.0.0.1:{port}")
        feeder = threading.Thread(target=producer.send, args=("steady", steady_audio), kwargs={"rate": 1})
        feeder.start()
        try:
            daemon.wait_for(lambda: bool(daemon.labels(station)), 60, "the radio's label")
            killed = _ffmpeg_children(daemon.proc.pid)
            assert len(killed) == 1, killed
            os.kill(killed[0], signal.SIGKILL)
            daemon.wait_for(
                lambda: _states(daemon, station)[-2:] == ["down", "up"], 60, "the radio to come back"
            )
            daemon.wait_for(
                lambda: len(daemon.labels(station)) == 2, 60, "the radio's label after the outage"
            )
            assert _ffmpeg_children(daemon.proc.pid) not in ([], killed)
        finally:
            feeder.join()
        producer.close()
        daemon.wait_for(lambda: _states(daemon, "steady")[-1:] == ["down"], 30, "the zmq stream to end")
        m = daemon.metric
        assert m("genretag_source_reconnects_total", stream=station) >= 1
        assert m("genretag_windows_processed_total", stream="steady") == expected_windows(len(steady_audio))
        for other in ("steady", "loop"):
            assert m("genretag_source_errors_total", stream=other) == 0, other
        assert m("genretag_windows_dropped_total") == 0
        assert daemon.stop() == 0
    assert _states(daemon, station) == ["up", "down", "up", "down"]
    reasons = [e["reason"] for e in daemon.stream_events(station, "state")]
    assert reasons == ["audio", "error", "audio", "stopped"]  # ffmpeg killed: "error"
    assert daemon.labels(station) == ["electronic", "electronic"]
    assert _states(daemon, "steady") == ["up", "down"]
    assert _states(daemon, "loop") == ["up", "down"]  # the looping file never paused
    assert daemon.labels("steady") == ["classical"]
    assert daemon.labels("loop") == ["classical"]
