"""``url:`` source: an internet radio stream (Icecast/Shoutcast MP3, AAC, Ogg; HLS) decoded by ffmpeg.

ffmpeg runs as a subprocess (never through a shell) and writes raw PCM to a
pipe: signed 16-bit native-endian, at a fixed rate and channel count chosen
here (default 44100 Hz mono), so that the stream's own format, which may
change when a station switches encoders, never reaches the daemon.  44100 Hz
is what nearly all radio streams carry, so ffmpeg's resampler is usually a
pass-through; mono because the model is mono, and ffmpeg's down-mix is the
same channel mean as the daemon's at half the bytes.

One supervisor thread per source runs ffmpeg, reads ~100 ms chunks off the
pipe, and hands them to the sink.  When ffmpeg exits, or the audio stops for
``stall_seconds`` (then ffmpeg is killed), the stream is reported ``down``
and a ``reconnect`` error is counted for each new attempt, which follows
exponential backoff; ``up`` comes with the first audio of a new connection.
The first audio of a connection may take longer, ``connect_seconds``: an MP3
stream joined in the middle of a frame, as Icecast serves it, is only
trusted by ffmpeg's format probe after about 200 frames (~5 s of audio),
which arrive at once only when the server's connect burst is large enough.
A second thread per ffmpeg drains its stderr, so ffmpeg can never block on
a full pipe, and keeps the last line as the reason it ended.  That reason
goes to the log; the ``down`` event gets a short word for it
(:func:`classify_end`: ``http_404``, ``connect_failed``, ``timeout``,
``eof``...), so a subscriber can tell a wrong URL from a network outage.
The first failed attempt reports ``down`` even if the stream was never up.

Only ``http`` and ``https`` URLs are accepted, and ffmpeg is confined to
network protocols with ``-protocol_whitelist``, so neither the configured
URL nor a playlist fetched from it can make ffmpeg read local files or run
other protocol handlers (``file:``, ``pipe:``, ``concat:``, ``subfile:`` ...).
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from genretag.daemon.options import Problem, check_built, option
from genretag.daemon.protocol import ErrorKind
from genretag.daemon.sources.backoff import Backoff, BackoffOptions
from genretag.daemon.sources.base import BuildEnv, Chunk, SourceSink, SourceWorker

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https")
# tls and tcp carry http(s); crypto is AES-128 encrypted HLS segments; httpproxy honours http_proxy.
PROTOCOL_WHITELIST = "http,https,tcp,tls,crypto,httpproxy"
# ffmpeg bridges a dropped connection itself for this long (no decoder restart for a blip);
# anything longer ends ffmpeg and the source's own, reported, backoff takes over.
FFMPEG_RECONNECT_SECONDS = 2
TERM_GRACE_SECONDS = 2.0  # SIGTERM, then SIGKILL after this long
KEPT_LINES = 5  # ffmpeg's last stderr lines searched for why it ended
_TICK = 0.25  # longest wait on the pipe before the stop flag and the timeouts are checked


# ffmpeg's words for a failed connection (libavformat http.c and network.c, strerror texts), first match wins.
_HTTP_STATUS = re.compile(r"Server returned (\d{3}|[45]XX)")
_CONNECT_FAILED = (
    "Connection refused",
    "Failed to resolve",
    "Name or service not known",
    "Temporary failure in name resolution",
    "No route to host",
    "Network is unreachable",
    "Connection reset",
    "SSL",
    "TLS",
    "certificate",
)
_DECODE_ERROR = ("Invalid data found", "could not find codec", "Error while decoding")


def classify_end(code: int, lines: list[str]) -> str:
    """The ``down`` reason word for an ffmpeg that ended with ``code`` after printing ``lines`` (stderr).

    ``http_404`` (any status ffmpeg names; ``http_4xx``/``http_5xx`` when it does
    not), ``timeout``, ``connect_failed``, ``decode_error``, ``eof`` for a clean end
    of stream, else ``error``.
    """
    text = "\n".join(lines)
    if match := _HTTP_STATUS.search(text):
        return f"http_{match.group(1).lower()}"
    if "timed out" in text:
        return "timeout"
    if any(word in text for word in _CONNECT_FAILED):
        return "connect_failed"
    if any(word in text for word in _DECODE_ERROR):
        return "decode_error"
    return "eof" if code == 0 else "error"


def check_url(url: str) -> str:
    """The URL with its scheme in lower case (as ffmpeg wants it); ValueError unless http(s) with a host.

    HLS needs no scheme of its own: ffmpeg recognises an ``.m3u8`` playlist
    by its content, so ``hls+http:`` and the like are refused with the rest.
    """
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValueError("url source: the URL contains whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise ValueError(
            f"url source: scheme {parts.scheme or '(none)'!r} refused in {redact(url)!r}: "
            "only http:// and https:// streams (Icecast, Shoutcast, HLS playlists) are allowed"
        )
    if not parts.hostname:
        raise ValueError(f"url source: no host in {redact(url)!r}")
    return parts.scheme.lower() + url[len(parts.scheme) :]


def url_stream_id(url: str) -> str:
    """``host[:port]/mount`` of a stream URL: two mounts of one server get two ids.

    The port shows only when the URL names one other than the scheme's default
    (Icecast's usual ``:8000`` keeps two servers on one host apart); user info,
    query and fragment are left out (they may hold credentials or tokens), and
    so are the path's outer slashes.  ``http://radio.example/live`` gives
    ``radio.example/live``.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "url").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets, or its port would read as part of it
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != {"http": 80, "https": 443}.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    mount = parts.path.strip("/")
    return f"{host}/{mount}" if mount else host


def redact(url: str) -> str:
    """``url`` without the password of its user info, for logs and events."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class UrlConfig(BackoffOptions):
    """The options of a ``url:`` source (``[[source]]`` keys); see :class:`UrlSource`."""

    sample_rate: int = option(44100, lambda v: 8000 <= v <= 192000, "must be 8000..192000 Hz")
    channels: int = option(1, lambda v: v in (1, 2), "must be 1 or 2")
    chunk_seconds: float = option(0.1, lambda v: 0.01 <= v <= 1.0, "must be 0.01..1 seconds")
    connect_seconds: float = option(20.0, lambda v: 0 < v <= 3600, "must be > 0 and at most 3600 seconds")
    stall_seconds: float = option(10.0, lambda v: 0 < v <= 3600, "must be > 0 and at most 3600 seconds")
    ffmpeg: str = "ffmpeg"

    def problems(self) -> list[Problem]:
        if min(self.connect_seconds, self.stall_seconds) <= self.chunk_seconds:
            key = "connect_seconds" if self.connect_seconds <= self.chunk_seconds else "stall_seconds"
            return [(key, f"must exceed chunk_seconds ({self.chunk_seconds:g})")]
        return super().problems()


class UrlSource:
    """Decodes one network stream with ffmpeg into one daemon stream, reconnecting until stopped.

    Parameters
    ----------
    name : stream id.
    url : ``http://`` or ``https://`` stream or HLS playlist (``.m3u8``).
    sample_rate : rate of the PCM ffmpeg delivers, Hz.
    channels : 1 (down-mixed by ffmpeg) or 2.
    chunk_seconds : audio per chunk handed to the sink.
    connect_seconds : no audio this long after ffmpeg started (connecting, probing the
        format) and it is killed.
    stall_seconds : the audio stops for this long and ffmpeg is killed.
    backoff_initial, backoff_factor, backoff_max, backoff_jitter, stable_seconds :
        delays between attempts, see :class:`~.backoff.Backoff`; a connection
        that stayed up ``stable_seconds`` starts the sequence again.
    ffmpeg : the ffmpeg executable (a name on PATH or a path).

    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        sample_rate: int = 44100,
        channels: int = 1,
        chunk_seconds: float = 0.1,
        connect_seconds: float = 20.0,
        stall_seconds: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_max: float = 60.0,
        backoff_jitter: float = 0.1,
        stable_seconds: float = 30.0,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        self.url = check_url(url)
        check_built(
            UrlConfig(
                sample_rate=sample_rate,
                channels=channels,
                chunk_seconds=chunk_seconds,
                connect_seconds=connect_seconds,
                stall_seconds=stall_seconds,
                backoff_initial=backoff_initial,
                backoff_factor=backoff_factor,
                backoff_max=backoff_max,
                backoff_jitter=backoff_jitter,
                stable_seconds=stable_seconds,
                ffmpeg=ffmpeg,
            ),
            f"url source {name!r}",
        )
        executable = shutil.which(ffmpeg)
        if executable is None:
            raise ValueError(f"url source {name!r}: {ffmpeg!r} not found; the url: source needs ffmpeg")
        self.name = name
        self.sample_rate = sample_rate
        self.channels = channels
        self.connect_seconds = connect_seconds
        self.stall_seconds = stall_seconds
        self._ffmpeg = executable
        self._chunk_bytes = max(1, round(sample_rate * chunk_seconds)) * channels * 2
        self._backoff = Backoff(backoff_initial, backoff_factor, backoff_max, backoff_jitter, stable_seconds)
        self._lock = threading.Lock()  # guards _proc against stop() racing a new attempt
        self._worker = SourceWorker()
        self._stopping = self._worker.stopping
        self._proc: subprocess.Popen[bytes] | None = None
        self._sink: SourceSink | None = None

    @classmethod
    def from_config(cls, name: str, target: str, config: UrlConfig, env: BuildEnv) -> UrlSource:
        """The source of a ``url:TARGET`` spec (:mod:`~genretag.daemon.sources.registry`)."""
        return cls(name, target, **asdict(config))

    @property
    def pid(self) -> int | None:
        """The running ffmpeg's process id (None between attempts), for diagnostics and tests."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def command(self) -> list[str]:
        """The ffmpeg argument vector (no shell ever sees it)."""
        fmt = "s16le" if sys.byteorder == "little" else "s16be"
        return [
            self._ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-protocol_whitelist",
            PROTOCOL_WHITELIST,
            "-reconnect",
            "1",
            "-reconnect_streamed",
            "1",
            "-reconnect_delay_max",
            str(FFMPEG_RECONNECT_SECONDS),
            "-i",
            self.url,
            "-vn",
            "-sn",
            "-dn",
            "-f",
            fmt,
            "-ac",
            str(self.channels),
            "-ar",
            str(self.sample_rate),
            "-flush_packets",
            "1",
            "pipe:1",
        ]

    def start(self, sink: SourceSink) -> None:
        """Start connecting in the background; everything that happens is reported through ``sink``."""
        if self._worker.started:
            raise RuntimeError(f"url source {self.name!r} already started")
        self._sink = sink
        self._worker.start(self._run, f"url-{self.name}")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate ffmpeg and join the supervisor within ``timeout`` seconds; reports nothing."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # EOF on the pipe wakes the supervisor, which reaps ffmpeg
        if not self._worker.stop(max(0.0, deadline - time.monotonic())):
            log.warning("url source %r did not stop within %.1f s", self.name, timeout)
            if proc is not None:
                proc.kill()

    def _run(self) -> None:
        assert self._sink is not None
        sink, down_reported = self._sink, False
        while not self._stopping.is_set():
            up_seconds, why, reason = self._attempt()
            if self._stopping.is_set():
                break
            if up_seconds is not None or not down_reported:  # report transitions, not every attempt
                sink.state(self.name, "down", why, reason)
                down_reported = True
            delay = self._backoff.next_delay(up_seconds or 0.0)
            log.warning("url source %r down: %s; reconnecting in %.1f s", self.name, reason, delay)
            sink.error(self.name, ErrorKind.RECONNECT, f"{reason}; reconnecting in {delay:.1f} s")
            self._stopping.wait(delay)

    def _attempt(self) -> tuple[float | None, str, str]:
        """Run one ffmpeg until it ends, stalls or the source stops.

        Returns how long audio flowed (None if it never did), why it ended as an
        event reason word, and in words.
        """
        with self._lock:
            if self._stopping.is_set():
                return None, "stopped", "stopped"
            try:
                proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            except OSError as err:
                return None, "error", f"cannot run ffmpeg: {err}"
            self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        last_lines: list[str] = []
        drain = threading.Thread(
            target=self._drain, args=(proc.stderr, last_lines), daemon=True, name=f"url-{self.name}-stderr"
        )
        drain.start()
        try:
            up_since, timed_out = self._pump(proc.stdout)
        finally:
            # Our end of stdout goes first: an ffmpeg blocked writing to a full pipe (nobody reads it once
            # the source stops) then fails with EPIPE and ends, instead of waiting for SIGKILL after the
            # grace time (the CI saw a 2 s stop).
            proc.stdout.close()
            _reap(proc)
            drain.join(TERM_GRACE_SECONDS)
            proc.stderr.close()
            with self._lock:
                self._proc = None
        up_seconds = time.monotonic() - up_since if up_since is not None else None
        if timed_out:
            return up_seconds, "timeout", timed_out
        code = proc.returncode
        status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        detail = f": {last_lines[-1]}" if last_lines else (": end of stream" if code == 0 else "")
        return up_seconds, classify_end(code, last_lines), f"ffmpeg ended ({status}){detail}"

    def _pump(self, pipe: IO[bytes]) -> tuple[float | None, str | None]:
        """Chunks from ffmpeg's stdout to the sink until EOF, a timeout or stop.

        Returns when audio began (None if never) and why it timed out (None if it did not).
        """
        assert self._sink is not None
        fd = pipe.fileno()
        frame_bytes = 2 * self.channels
        buf = bytearray(self._chunk_bytes)
        filled, up_since, started = 0, None, time.monotonic()
        last_data = started
        while not self._stopping.is_set():
            now = time.monotonic()
            if up_since is None and now - started >= self.connect_seconds:
                return None, f"no audio within {self.connect_seconds:g} s of connecting"
            if up_since is not None and now - last_data >= self.stall_seconds:
                return up_since, f"stalled: no audio for {self.stall_seconds:g} s"
            if not select.select([fd], [], [], _TICK)[0]:
                continue
            n = os.readv(fd, [memoryview(buf)[filled:]])
            if n == 0:
                break
            filled += n
            last_data = now = time.monotonic()
            if filled == len(buf):
                if up_since is None:
                    up_since = now
                    log.info("url source %r up: %s", self.name, redact(self.url))
                    self._sink.state(self.name, "up")
                self._emit(buf, now)
                buf, filled = bytearray(self._chunk_bytes), 0
        if up_since is not None and filled >= frame_bytes and not self._stopping.is_set():
            self._emit(buf[: filled - filled % frame_bytes], time.monotonic())
        return up_since, None

    def _emit(self, data: bytearray, arrival: float) -> None:
        assert self._sink is not None
        samples = np.frombuffer(data, dtype=np.int16)  # a fresh buffer per chunk: the array owns it
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels)
        # Valid by construction (int16, the rate and channels checked in __init__): nothing to check.
        self._sink.audio(Chunk(self.name, samples, self.sample_rate, arrival))

    def _drain(self, stderr: IO[bytes], last_lines: list[str]) -> None:
        """Read ffmpeg's stderr to its end so that ffmpeg never blocks on it; keep the last few lines."""
        secret, public = self.url, redact(self.url)
        for raw in stderr:
            line = raw.decode("utf-8", "replace").strip().replace(secret, public)
            if line:
                log.debug("url source %r: ffmpeg: %s", self.name, line)
                last_lines[:] = [*last_lines[-(KEPT_LINES - 1) :], line]


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """End ffmpeg if it still runs (SIGTERM, then SIGKILL) and collect its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(TERM_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()
