"""The ``url:`` source against a real Icecast server on loopback, fed by ffmpeg as a source client.

Needs the Debian packages ``icecast2`` and ``ffmpeg``.  Every server,
source client and stream runs on 127.0.0.1 at ports the OS picks; the
backoff settings are small so that each outage scenario takes seconds.
"""

from __future__ import annotations

import grp
import http.client
import http.server
import logging
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.recording_sink import RecordingSink

from genretag.daemon.sources.url import PROTOCOL_WHITELIST, UrlSource, check_url, classify_end, redact

pytestmark = pytest.mark.slow

TONE_HZ = 1000.0
SOURCE_PASSWORD = "src-secret"
FAST = {
    "backoff_initial": 0.2,
    "backoff_factor": 2.0,
    "backoff_max": 0.8,
    "backoff_jitter": 0.0,
    "connect_seconds": 10.0,
    "stall_seconds": 2.0,
}

ICECAST_XML = """<icecast>
  <location>loopback</location><admin>test@localhost</admin>
  <limits><clients>16</clients><sources>4</sources><source-timeout>10</source-timeout></limits>
  <authentication><source-password>{password}</source-password>
    <admin-user>admin</admin-user><admin-password>admin-secret</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <paths><basedir>/usr/share/icecast2</basedir><logdir>{logdir}</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot></paths>
  <logging><accesslog>-</accesslog><errorlog>-</errorlog><loglevel>2</loglevel></logging>
  <security><chroot>0</chroot>{changeowner}</security>
</icecast>
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _changeowner() -> str:
    """Icecast refuses to run as root; as root it binds, then switches to an unprivileged user."""
    if os.geteuid() != 0:
        return ""
    for user in ("icecast2", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        group = grp.getgrgid(entry.pw_gid).gr_name
        return f"<changeowner><user>{user}</user><group>{group}</group></changeowner>"
    raise RuntimeError("running as root and neither user icecast2 nor nobody exists")


class Icecast:
    """One icecast2 server process (restartable on the same port) and its ffmpeg source client."""

    def __init__(self, tmp_path: Path, tone: Path) -> None:
        self.port = _free_port()
        self.tone = tone
        self.config = tmp_path / "icecast.xml"
        self.log = tmp_path / "icecast.log"
        self.config.write_text(
            ICECAST_XML.format(
                password=SOURCE_PASSWORD, port=self.port, logdir=tmp_path, changeowner=_changeowner()
            )
        )
        self.url = f"http://127.0.0.1:{self.port}/live.mp3"
        self.server: subprocess.Popen[bytes] | None = None
        self.source: subprocess.Popen[bytes] | None = None

    def start_server(self) -> None:
        with self.log.open("ab") as log:
            self.server = subprocess.Popen(
                ["icecast2", "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_port(self.port)

    def start_source(self) -> None:
        """ffmpeg encodes the looped tone to MP3 in real time and pushes it to the mount."""
        self.source = subprocess.Popen(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(self.tone),
                "-c:a",
                "libmp3lame",
                "-b:a",
                "64k",
                "-content_type",
                "audio/mpeg",
                "-f",
                "mp3",
                f"icecast://source:{SOURCE_PASSWORD}@127.0.0.1:{self.port}/live.mp3",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._mount_live():
            assert time.monotonic() < deadline, "the source client did not bring up the mount"
            time.sleep(0.05)

    def _mount_live(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/live.mp3")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def kill_source(self) -> None:
        _kill(self.source)
        self.source = None

    def kill_server(self) -> None:
        _kill(self.server)
        self.server = None

    def close(self) -> None:
        self.kill_source()
        self.kill_server()


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of a pure tone: a whole number of cycles, so that it loops without a click."""
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    sr = 44100
    t = np.arange(2 * sr) / sr
    sf.write(path, 0.5 * np.sin(2 * np.pi * TONE_HZ * t), sr, subtype="PCM_16")
    return path


@pytest.fixture
def icecast(tmp_path: Path, tone: Path) -> Iterator[Icecast]:
    server = Icecast(tmp_path, tone)
    server.start_server()
    server.start_source()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def sources() -> Iterator[list[UrlSource]]:
    """UrlSources to stop after the test, whatever happened."""
    started: list[UrlSource] = []
    yield started
    for src in started:
        src.stop(5.0)


def _start(sources: list[UrlSource], url: str, **options: float) -> tuple[UrlSource, RecordingSink]:
    src = UrlSource("radio", url, **{**FAST, **options})  # type: ignore[arg-type]
    sink = RecordingSink()
    sources.append(src)
    src.start(sink)
    return src, sink


def _up_times(n: int) -> Callable[[RecordingSink], bool]:
    """A predicate: the source has reported ``up`` ``n`` times."""
    return lambda sink: sink.state_names().count("up") == n


def _dominant_hz(samples: np.ndarray, sr: int) -> float:
    mono = samples.astype(np.float64) if samples.ndim == 1 else samples.astype(np.float64).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.argmax(spectrum) * sr / len(mono))


def _assert_tone(sink: RecordingSink, since: float, sr: int) -> None:
    """At least a second of loud audio arrived after ``since`` and it is the source's tone."""
    assert sink.wait_for(lambda s: s.seconds_after(since) >= 1.2, 10), "audio did not flow"
    audio = sink.audio_after(since)[-sr:]
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 0.2 * 32767
    assert abs(_dominant_hz(audio, sr) - TONE_HZ) < 3


def _reconnect_delays(sink: RecordingSink) -> list[float]:
    return [
        float(m.group(1))
        for _, kind, msg in sink.errors
        if kind == "reconnect" and (m := re.search(r"reconnecting in ([\d.]+) s", msg))
    ]


def _wait_pid(src: UrlSource) -> int:
    deadline = time.monotonic() + 5
    while (pid := src.pid) is None:
        assert time.monotonic() < deadline, "ffmpeg did not start"
        time.sleep(0.01)
    return pid


def _ffmpeg_children() -> list[int]:
    """Our own ffmpeg decoders still alive (recognised by their output to the pipe)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == os.getpid() and b"pipe:1" in cmdline and b"-protocol_whitelist" in cmdline:
            found.append(int(entry.name))
    return found


def test_delivers_decoded_audio_from_icecast(icecast: Icecast, sources: list[UrlSource]) -> None:
    src, sink = _start(sources, icecast.url)
    assert sink.wait_for(_up_times(1), 15), (sink.states, sink.errors)
    up_at = sink.states[0][0]
    _assert_tone(sink, up_at, 44100)
    chunks = list(sink.chunks)
    assert all(c.stream == "radio" and c.sample_rate == 44100 for c in chunks)
    assert all(c.samples.dtype == np.int16 and c.samples.shape == (4410,) for c in chunks)
    arrivals = [c.arrival_time for c in chunks]
    assert arrivals == sorted(arrivals)
    # Real time after the connect burst: about one second of audio per second.
    t0 = time.monotonic()
    time.sleep(1.5)
    assert 1.0 <= sink.seconds_after(t0) <= 2.0
    assert src.pid is not None and not sink.errors


def test_source_client_leaves_and_returns(icecast: Icecast, sources: list[UrlSource]) -> None:
    src, sink = _start(sources, icecast.url)
    assert sink.wait_for(_up_times(1), 15), (sink.states, sink.errors)
    icecast.kill_source()  # Icecast drops the mount and its listeners
    assert sink.wait_for(lambda s: s.state_names()[-1:] == ["down"], 10)
    assert sink.wait_for(lambda s: len(_reconnect_delays(s)) >= 4, 10), sink.errors
    delays = _reconnect_delays(sink)
    assert delays[:4] == [0.2, 0.4, 0.8, 0.8]  # exponential, capped at backoff_max
    assert "404" in sink.errors[-1][2]  # the mount is gone while the server is up
    back = time.monotonic()
    icecast.start_source()
    assert sink.wait_for(_up_times(2), 15), (sink.states, sink.errors)
    assert sink.state_names() == ["up", "down", "up"]
    _assert_tone(sink, back, 44100)


def test_server_killed_and_restarted(icecast: Icecast, sources: list[UrlSource]) -> None:
    src, sink = _start(sources, icecast.url)
    assert sink.wait_for(_up_times(1), 15), (sink.states, sink.errors)
    icecast.kill_server()
    icecast.kill_source()
    assert sink.wait_for(lambda s: s.state_names()[-1:] == ["down"], 10)
    assert sink.wait_for(lambda s: len(_reconnect_delays(s)) >= 3, 15), sink.errors
    back = time.monotonic()
    icecast.start_server()
    icecast.start_source()
    assert sink.wait_for(_up_times(2), 15), (sink.states, sink.errors)
    assert sink.state_names() == ["up", "down", "up"]
    _assert_tone(sink, back, 44100)


def test_own_ffmpeg_killed_reconnects_in_stereo(icecast: Icecast, sources: list[UrlSource]) -> None:
    src, sink = _start(sources, icecast.url, sample_rate=48000, channels=2)
    pids = []
    for ups in (1, 2, 3):  # two outages in a row: each one is reported
        assert sink.wait_for(_up_times(ups), 15), (sink.states, sink.errors)
        pids.append(src.pid)
        if ups < 3:
            os.kill(_wait_pid(src), signal.SIGKILL)
    assert sink.state_names() == ["up", "down", "up", "down", "up"]
    assert sink.states[1][2] == sink.states[3][2] == "error"
    assert "killed by signal 9" in sink.states[1][3] and "killed by signal 9" in sink.states[3][3]
    assert None not in pids and len(set(pids)) == 3
    _assert_tone(sink, sink.states[4][0], 48000)
    assert sink.chunks[-1].samples.shape == (4800, 2) and sink.chunks[-1].sample_rate == 48000


def test_stop_is_prompt_and_leaves_no_ffmpeg(icecast: Icecast, sources: list[UrlSource]) -> None:
    src, sink = _start(sources, icecast.url)
    assert sink.wait_for(_up_times(1), 15), (sink.states, sink.errors)
    pid = src.pid
    t0 = time.monotonic()
    src.stop(5.0)
    assert time.monotonic() - t0 < 1.5
    assert src.pid is None and pid not in _ffmpeg_children()
    assert not any(t.name.startswith("url-radio") for t in threading.enumerate())
    assert sink.state_names() == ["up"]  # stopping is not an outage


def test_stop_during_backoff_is_prompt(sources: list[UrlSource]) -> None:
    src, sink = _start(
        sources, f"http://127.0.0.1:{_free_port()}/nothing.mp3", backoff_initial=30.0, backoff_max=30.0
    )
    assert sink.wait_for(lambda s: len(s.errors) == 1, 10)
    assert sink.state_names() == ["down"] and sink.states[0][2] == "connect_failed"
    assert "Connection refused" in sink.states[0][3]
    t0 = time.monotonic()
    src.stop(5.0)
    assert time.monotonic() - t0 < 0.5
    assert not _ffmpeg_children()


def test_stalled_stream_kills_ffmpeg(icecast: Icecast, sources: list[UrlSource]) -> None:
    """The source client freezes: Icecast keeps the mount and the connection but sends nothing."""
    src, sink = _start(sources, icecast.url)
    assert sink.wait_for(_up_times(1), 15), (sink.states, sink.errors)
    pid = src.pid
    assert icecast.source is not None and pid is not None
    icecast.source.send_signal(signal.SIGSTOP)
    assert sink.wait_for(lambda s: len(s.states) >= 2, 10)
    assert sink.states[1][1:] == ("down", "timeout", "stalled: no audio for 2 s")
    assert pid not in _ffmpeg_children()


class _SilentHandler(http.server.BaseHTTPRequestHandler):
    """Answers 200 audio/mpeg, then sends nothing: a server that hangs before the first byte."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.end_headers()
        self.wfile.flush()
        self.server.hold.wait(20)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_connect_timeout_kills_ffmpeg(sources: list[UrlSource]) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SilentHandler)
    server.hold = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src, sink = _start(sources, f"http://127.0.0.1:{server.server_port}/hang.mp3", connect_seconds=1.0)
        pid = _wait_pid(src)
        assert sink.wait_for(lambda s: bool(s.errors), 10)
        assert sink.states[0][1:] == ("down", "timeout", "no audio within 1 s of connecting")
        assert pid not in _ffmpeg_children()
        src.stop(5.0)
    finally:
        server.hold.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "/etc/passwd",
        "pipe:0",
        "concat:http://x/a.mp3|file:///etc/passwd",
        "subfile,,start,0,end,0,,:/etc/passwd",
        "data:audio/mpeg;base64,AAAA",
        "rtmp://example.org/live",
        "ftp://example.org/a.mp3",
        "hls+file:///tmp/a.m3u8",
        "http://",
        "http:///live.mp3",
        "http://example.org/a b.mp3",
        "http://example.org/a\n.mp3",
        "-i",
        "",
    ],
)
def test_refuses_anything_but_http_urls(url: str) -> None:
    with pytest.raises(ValueError, match="url source"):
        UrlSource("radio", url)


def test_url_checks_and_command() -> None:
    assert check_url("HTTPS://radio.example.org:8443/live.aac") == "https://radio.example.org:8443/live.aac"
    assert redact("http://user:pw@host:8000/live") == "http://user:***@host:8000/live"
    assert "file" not in PROTOCOL_WHITELIST.split(",")
    cmd = UrlSource("radio", "http://127.0.0.1:1/live.mp3", channels=2, sample_rate=48000).command()
    assert cmd[cmd.index("-protocol_whitelist") + 1] == PROTOCOL_WHITELIST
    assert cmd[cmd.index("-i") + 1] == "http://127.0.0.1:1/live.mp3"
    assert cmd[cmd.index("-ac") + 1] == "2" and cmd[cmd.index("-ar") + 1] == "48000"


def test_hls_playlist_cannot_reach_local_files(
    tmp_path: Path, tone: Path, sources: list[UrlSource], caplog: pytest.LogCaptureFixture
) -> None:
    """A playlist from the network naming a local file: ffmpeg's HLS demuxer would read it; the whitelist
    does not let it."""
    caplog.set_level(logging.DEBUG, logger="genretag.daemon.sources.url")
    segment = tmp_path / "secret.mp3"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(tone), "-c:a", "libmp3lame", str(segment)], check=True
    )
    (tmp_path / "live.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:2.0,\nfile://{segment}\n#EXT-X-ENDLIST\n"
    )
    handler = _directory_handler(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src, sink = _start(sources, f"http://127.0.0.1:{server.server_port}/live.m3u8")
        assert sink.wait_for(lambda s: bool(s.errors), 10)
        src.stop(5.0)
        assert sink.chunk_count == 0 and sink.state_names() == ["down"]
        assert "Protocol 'file' not on whitelist" in caplog.text
    finally:
        server.shutdown()
        server.server_close()


def _directory_handler(root: Path) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class _NotFoundHandler(http.server.BaseHTTPRequestHandler):
    """Every GET is 404: a mistyped mount, from the first attempt on."""

    def do_GET(self) -> None:
        self.send_error(404, "Not Found")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_found() -> Iterator[str]:
    """URL of a loopback HTTP server that answers 404 to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFoundHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/live"
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_answering_404_from_the_start_is_down_with_its_reason(
    not_found: str, sources: list[UrlSource]
) -> None:
    src, sink = _start(sources, not_found)
    assert sink.wait_for(lambda s: len(_reconnect_delays(s)) >= 3, 10), sink.errors
    assert [state[1:3] for state in sink.states] == [("down", "http_404")]  # once, not per attempt
    assert "Server returned 404 Not Found" in sink.states[0][3]


@pytest.mark.parametrize(
    ("code", "lines", "reason"),
    [
        (
            8,
            ["[http @ 0x1] HTTP error 404 Not Found", "http://h/live: Server returned 404 Not Found"],
            "http_404",
        ),
        (8, ["http://h/live: Server returned 403 Forbidden (access denied)"], "http_403"),
        (8, ["http://h/x: Server returned 5XX Server Error reply"], "http_5xx"),
        (1, ["http://h/x: Connection refused"], "connect_failed"),
        (
            1,
            ["[tcp @ 0x1] Failed to resolve hostname nowhere.invalid: Name or service not known"],
            "connect_failed",
        ),
        (1, ["http://h/x: Connection timed out"], "timeout"),
        (1, ["http://h/x: Invalid data found when processing input"], "decode_error"),
        (0, [], "eof"),
        (-9, [], "error"),
    ],
)
def test_why_ffmpeg_ended_as_a_reason_word(code: int, lines: list[str], reason: str) -> None:
    assert classify_end(code, lines) == reason
