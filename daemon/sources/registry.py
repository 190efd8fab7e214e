"""Source kinds: one entry each (name, options class, source class), and specs to running sources.

A source is configured as a spec, ``kind:target`` (the command line's
``--source``, a ``[[source]]`` table's ``spec``), plus the kind's options: keys
of the ``[[source]]`` table, or, for the kinds whose target has no query of its
own (file, zmq), ``?key=value`` after the target::

    file:PATH[?rate=R&loop=0|1]   an audio file, paced at R x real time (0: as fast as possible)
    zmq:tcp://HOST:PORT[?idle=S&workers=N]
                                  a ZeroMQ PULL socket carrying many named streams; a stream is
                                  down after S seconds without a message (default 5); N > 0
                                  decodes and windows in N processes (default 0: in the daemon's)
    url:http(s)://...             an internet radio stream through ffmpeg (the URL is passed whole)
    mic:[DEVICE]                  a sound card input: index, name substring, or empty for the default

A kind is a module holding its options, a typed dataclass (:class:`~.file.FileConfig`,
:class:`~.zmq.ZmqConfig`, :class:`~.url.UrlConfig`, :class:`~.mic.MicConfig`), its source
class (built by ``from_config``), its target check and its stream naming; and one
:class:`SourceKind` in :data:`KINDS` that names them.  Options are checked by one validator
(:mod:`genretag.daemon.options`), as the config's sections are.

:func:`parse_source` checks everything that can be checked without opening
anything, so ``genretag check-config`` reports a bad spec or option before the
daemon starts.  PortAudio is loaded only when a ``mic:`` source opens its device
(:mod:`~genretag.daemon.sources.devices`), so a daemon without one needs none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

from genretag.daemon.options import Problem, build_options, check_options, fields_of
from genretag.daemon.protocol import MAX_STREAM_ID_CHARS
from genretag.daemon.sources.base import BuildEnv, Source
from genretag.daemon.sources.file import FileConfig, FileSource, check_path
from genretag.daemon.sources.mic import MicConfig, MicSource, mic_stream_name
from genretag.daemon.sources.url import UrlConfig, UrlSource, check_url, url_stream_id
from genretag.daemon.sources.zmq import MAX_WORKERS, ZmqConfig, ZmqSource, check_endpoint

__all__ = [
    "KINDS",
    "MAX_WORKERS",
    "SourceKind",
    "SourceSpec",
    "build_source",
    "default_name",
    "parse_source",
    "parse_spec",
    "split_kind",
    "url_stream_id",
]


class SourceClass(Protocol):
    """A source class as the registry builds it."""

    @classmethod
    def from_config(cls, name: str, target: str, config: Any, env: BuildEnv) -> Source: ...


@dataclass(frozen=True)
class SourceKind:
    """One kind of source: its name (the spec's ``kind:``), its options class and its source class."""

    name: str
    config: type[Any]  # a frozen dataclass of options (genretag.daemon.options)
    source: type[SourceClass]
    check_target: Callable[[str], str]  # the target normalised, or ValueError
    stream_name: Callable[[str], str]  # the stream id without a configured ``name`` (before sanitising)
    query: bool = True  # options may follow the target as ``?key=value`` (url: the query is the URL's)
    path: bool = False  # the target is a file path (relative to the config file, must exist)
    multi_stream: bool = False  # feeds many streams named by their producers; binds a socket (curve keys)

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(fields_of(self.config))


KINDS: dict[str, SourceKind] = {
    kind.name: kind
    for kind in (
        SourceKind("file", FileConfig, FileSource, check_path, lambda path: Path(path).stem, path=True),
        SourceKind("zmq", ZmqConfig, ZmqSource, check_endpoint, lambda endpoint: endpoint, multi_stream=True),
        SourceKind("url", UrlConfig, UrlSource, check_url, url_stream_id, query=False),
        SourceKind("mic", MicConfig, MicSource, lambda device: device, mic_stream_name, query=False),
    )
}


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source: ``kind``, ``target`` (path, endpoint, URL or device), the ``options`` given (checked,
    from the spec's query and the table) and ``config``, the kind's options class with them applied."""

    kind: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)
    config: Any = None

    def with_target(self, target: str) -> SourceSpec:
        return SourceSpec(self.kind, target, self.options, self.config)

    @property
    def source_kind(self) -> SourceKind:
        return KINDS[self.kind]


def split_kind(spec: str) -> tuple[SourceKind, str]:
    """The kind of ``spec`` and the rest (target and query); ValueError for an unknown kind."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS:
        raise ValueError(f"{spec!r} is not KIND:TARGET with KIND one of {', '.join(k + ':' for k in KINDS)}")
    return KINDS[kind], rest


def parse_source(
    spec: str, table: Mapping[str, Any] | None = None
) -> tuple[SourceSpec | None, list[Problem]]:
    """Parse ``spec`` and the kind's options in ``table`` (TOML values): the spec and every problem.

    A problem's key is ``spec`` for the spec (its query's options included: ``idle must be ...``) or the
    option's name for a table key.  The spec is None when it has a problem.
    """
    try:
        kind, rest = split_kind(spec)
        target, query = rest, ""
        if kind.query:
            head, sep, tail = rest.rpartition("?")
            if sep and "=" in tail:
                target, query = head, tail
        target = kind.check_target(target)
    except ValueError as err:
        return None, [("spec", str(err))]
    known = ", ".join(kind.options) or "none"
    given = dict(parse_qsl(query, keep_blank_values=True))
    table = dict(table or {})
    from_query, query_problems = check_options(kind.config, given, text=True)
    from_table, table_problems = check_options(kind.config, table)
    problems = [
        (
            "spec",
            f"unknown {kind.name}: option {key!r} (allowed: {known})"
            if key not in kind.options
            else f"{key} {message}",
        )
        for key, message in query_problems
    ]
    problems += [
        (
            key,
            f"unknown key (known: spec, name, allow_public, curve_secret_key, curve_clients, "
            f"and for {kind.name}: sources: {known})"
            if key not in kind.options
            else message,
        )
        for key, message in table_problems
    ]
    problems += [(key, "is given in the spec's query too") for key in sorted(set(table) & set(given))]
    if problems:
        return None, problems
    options = {**from_query, **from_table}
    config, cross = build_options(kind.config, options)
    if cross:
        return None, [
            (key, message) if key in table else ("spec", f"{key} {message}") for key, message in cross
        ]
    return SourceSpec(kind.name, target, options, config), []


def parse_spec(spec: str, table: Mapping[str, Any] | None = None) -> SourceSpec:
    """Parse and check a ``kind:target`` spec (and table options); ``ValueError`` says what is wrong."""
    parsed, problems = parse_source(spec, table)
    if parsed is None:
        raise ValueError("; ".join(m if k == "spec" else f"{k}: {m}" for k, m in problems))
    return parsed


def default_name(spec: SourceSpec) -> str:
    """A stream id for a single-stream source without a configured ``name`` (zmq: the endpoint).

    Sanitised to the stream-id rules (:func:`~genretag.daemon.protocol.check_stream_id`):
    whitespace runs become ``-``, other unprintable characters go, at most
    ``MAX_STREAM_ID_CHARS`` characters.
    """
    base = KINDS[spec.kind].stream_name(spec.target)
    cleaned = "".join(ch for ch in re.sub(r"\s+", "-", base.strip()) if ch.isprintable())
    return cleaned[:MAX_STREAM_ID_CHARS].rstrip("-") or spec.kind


def build_source(spec: SourceSpec, name: str, env: BuildEnv | None = None) -> Source:
    """A ready-to-start source for ``spec``, feeding stream ``name`` (zmq: producers name their streams)."""
    kind = KINDS[spec.kind]
    config = spec.config if spec.config is not None else kind.config()
    return kind.source.from_config(name, spec.target, config, env or BuildEnv())
