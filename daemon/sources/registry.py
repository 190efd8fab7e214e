"""Source specs (``kind:target``) to running sources.

One small grammar for the command line (``--source``) and the config file
(``[[source]] spec``)::

    file:PATH[?rate=R&loop=0|1]   an audio file, paced at R x real time (0: as fast as possible)
    zmq:tcp://HOST:PORT[?idle=S&workers=N]
                                  a ZeroMQ PULL socket carrying many named streams; a stream is
                                  down after S seconds without a message (default 5); N > 0
                                  decodes and windows in N processes (default 0: in the daemon's)
    url:http(s)://...             an internet radio stream through ffmpeg (the URL is passed whole)
    mic:[DEVICE]                  a sound card input: index, name substring, or empty for the default

:func:`parse_spec` checks everything that can be checked without opening
anything, so ``genretag check-config`` reports a bad spec before the daemon
starts.  PortAudio is loaded only when a ``mic:`` source opens its device
(:mod:`~genretag.daemon.sources.devices`), so a daemon without one needs none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from genretag.daemon.ingest.pool import RowAllocator, plain_rows
from genretag.daemon.protocol import DEFAULT_LIMITS, MAX_STREAM_ID_CHARS, Limits
from genretag.daemon.sources.base import Source
from genretag.daemon.sources.file import FileSource
from genretag.daemon.sources.mic import MicSource
from genretag.daemon.sources.url import UrlSource, check_url
from genretag.daemon.sources.zmq import ZmqSource

KINDS = ("file", "zmq", "url", "mic")
_OPTIONS = {"file": ("rate", "loop"), "zmq": ("idle", "workers"), "url": (), "mic": ()}
MAX_WORKERS = 64
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed spec: ``kind``, ``target`` (path, endpoint, URL or device) and checked ``options``."""

    kind: str
    target: str
    options: dict[str, float | bool] = field(default_factory=dict)

    def with_target(self, target: str) -> SourceSpec:
        return SourceSpec(self.kind, target, self.options)


def _split_options(kind: str, rest: str) -> tuple[str, dict[str, float | bool]]:
    target, sep, query = rest.rpartition("?")
    if not sep or "=" not in query:
        return rest, {}
    options: dict[str, float | bool] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTIONS[kind]:
            allowed = ", ".join(_OPTIONS[kind]) or "none"
            raise ValueError(f"unknown {kind}: option {key!r} (allowed: {allowed})")
        if key == "loop":
            if value.lower() not in _TRUE + _FALSE:
                raise ValueError(f"loop must be 0 or 1, got {value!r}")
            options[key] = value.lower() in _TRUE
            continue
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {value!r}") from None
        if key == "rate" and not 0 <= number <= 1000:
            raise ValueError(f"rate must be 0 (as fast as possible) or a speed up to 1000, got {value}")
        if key == "idle" and not 0.1 <= number <= 3600:
            raise ValueError(f"idle must be 0.1..3600 seconds, got {value}")
        if key == "workers" and not (number.is_integer() and 0 <= number <= MAX_WORKERS):
            raise ValueError(f"workers must be a whole number 0..{MAX_WORKERS}, got {value}")
        options[key] = number
    return target, options


def parse_spec(spec: str) -> SourceSpec:
    """Parse and check a ``kind:target`` spec; ``ValueError`` says what is wrong."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS:
        raise ValueError(f"{spec!r} is not KIND:TARGET with KIND one of {', '.join(k + ':' for k in KINDS)}")
    if kind == "url":
        return SourceSpec(kind, check_url(rest))
    target, options = _split_options(kind, rest)
    if kind == "file" and not target:
        raise ValueError("file: needs a path")
    if kind == "zmq":
        parts = urlsplit(target)
        if parts.scheme not in ("tcp", "ipc") or not (parts.netloc or parts.path):
            raise ValueError(f"zmq: needs a tcp://HOST:PORT or ipc://PATH endpoint, got {target!r}")
    return SourceSpec(kind, target, options)


def bind_host(spec: SourceSpec) -> str | None:
    """The host a source binds on the network (zmq: tcp), for the loopback check; None if it binds none."""
    if spec.kind != "zmq" or not spec.target.startswith("tcp://"):
        return None
    return spec.target[len("tcp://"):].rpartition(":")[0]


def default_name(spec: SourceSpec) -> str:
    """A stream id for a single-stream source without a configured ``name`` (zmq: the endpoint).

    Sanitised to the stream-id rules (:func:`~genretag.daemon.protocol.check_stream_id`):
    whitespace runs become ``-``, other unprintable characters go, at most
    ``MAX_STREAM_ID_CHARS`` characters.
    """
    if spec.kind == "file":
        base = Path(spec.target).stem
    elif spec.kind == "url":
        base = url_stream_id(spec.target)
    elif spec.kind == "mic":
        base = f"mic-{spec.target}" if spec.target else "mic"
    else:
        base = spec.target
    cleaned = "".join(ch for ch in re.sub(r"\s+", "-", base.strip()) if ch.isprintable())
    return cleaned[:MAX_STREAM_ID_CHARS].rstrip("-") or spec.kind


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


def build_source(spec: SourceSpec, name: str, *, limits: Limits = DEFAULT_LIMITS,
                 secure: Callable[[Any], None] | None = None,
                 allocate_rows: RowAllocator = plain_rows) -> Source:
    """A ready-to-start source for ``spec``, feeding stream ``name`` (zmq: producers name their streams).

    ``secure`` (zmq: only) prepares the socket before it binds, e.g. as a CURVE server;
    ``allocate_rows`` (zmq: with workers) makes the buffer the workers' windows are received into.
    """
    if spec.kind == "file":
        return FileSource(name, Path(spec.target), rate=float(spec.options.get("rate", 1.0)),
                          loop=bool(spec.options.get("loop", False)), limits=limits)
    if spec.kind == "zmq":
        return ZmqSource(name, spec.target, limits=limits, idle_timeout=float(spec.options.get("idle", 5.0)),
                         workers=int(spec.options.get("workers", 0)), secure=secure,
                         allocate_rows=allocate_rows)
    if spec.kind == "url":
        return UrlSource(name, spec.target)
    device: str | int | None = int(spec.target) if spec.target.isdigit() else (spec.target or None)
    return MicSource(name, device, limits=limits)
