"""The results the ingest processes send the daemon: one codec, used at both ends.

A results message is ``[header]`` or ``[header, windows]``: ``header`` is a
JSON list of results, each an object with ``type`` and the named fields of its
class below; ``windows`` holds the float32 samples of every window the
message's :class:`Push` results list, one after another (``(n, window_samples)``),
in the order of their :attr:`Push.windows`.  :func:`encode` and :func:`decode`
are the only code that reads or writes the header; the processes are always
of one version (the daemon spawns them), so the format has no version of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypedDict

import numpy as np

from genretag.daemon.silence import State, StateChange
from genretag.daemon.stream import PushResult, Window


class WindowStamp(TypedDict):
    """A :class:`~genretag.daemon.stream.Window` without its samples."""

    pos: float
    arrival_time: float
    silent: bool


class GateChange(TypedDict):
    """A :class:`~genretag.daemon.silence.StateChange`."""

    state: State
    pos: float


@dataclass(frozen=True, slots=True)
class Hello:
    """A process is ready: at its start, and after a restart."""

    process: int  # its index among the pool's processes: the workers', then the router's


@dataclass(frozen=True, slots=True)
class Bye:
    """Every stream of the process was reported down; it exits."""

    process: int


@dataclass(frozen=True, slots=True)
class Up:
    stream: str


@dataclass(frozen=True, slots=True)
class Down:
    """The stream went down, after its last :class:`Push`."""

    stream: str
    reason: str  # the event's reason word
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SourceError:
    """A refused message or chunk: ``sink.error(stream, kind, message)`` in the daemon."""

    stream: str
    kind: str  # an ErrorKind's value (JSON carries the word; the pool makes it an ErrorKind again)
    message: str


@dataclass(frozen=True, slots=True)
class Push:
    """A :class:`~genretag.daemon.stream.PushResult` of one stream, its samples in the message's last part."""

    stream: str
    pos: float
    silence_seconds: float
    windows: list[WindowStamp]
    changes: list[GateChange]

    @classmethod
    def of(cls, stream: str, result: PushResult) -> Push:
        windows: list[WindowStamp] = [
            {"pos": w.pos, "arrival_time": w.arrival_time, "silent": w.silent} for w in result.windows
        ]
        changes: list[GateChange] = [{"state": c.state, "pos": c.pos} for c in result.changes]
        return cls(stream, result.pos, result.silence_seconds, windows, changes)

    def result(self, samples: Iterator[np.ndarray]) -> PushResult:
        """The push result again, each window's samples the next of ``samples``."""
        windows = [Window(next(samples), w["pos"], w["arrival_time"], w["silent"]) for w in self.windows]
        changes = [StateChange(c["state"], c["pos"]) for c in self.changes]
        return PushResult(windows, changes, self.pos, self.silence_seconds)


Result = Hello | Bye | Up | Down | SourceError | Push

_TYPES: dict[str, type[Result]] = {
    "hello": Hello,
    "bye": Bye,
    "up": Up,
    "down": Down,
    "error": SourceError,
    "push": Push,
}
_NAMES = {cls: (name, tuple(f.name for f in fields(cls))) for name, cls in _TYPES.items()}


def encode(results: Sequence[Result]) -> bytes:
    """A message's header: ``results`` as compact JSON."""
    return json.dumps([_fields(result) for result in results], separators=(",", ":")).encode()


def decode(header: bytes | memoryview) -> list[Result]:
    """The results of a header :func:`encode` wrote (``KeyError`` or ``TypeError`` for anything else)."""
    items: list[dict[str, Any]] = json.loads(bytes(header))
    return [_TYPES[item.pop("type")](**item) for item in items]


def window_count(results: Sequence[Result]) -> int:
    """The windows ``results`` list: the rows of the message's samples part."""
    return sum(len(result.windows) for result in results if isinstance(result, Push))


def _fields(result: Result) -> dict[str, Any]:
    tag, names = _NAMES[type(result)]
    return {"type": tag, **{name: getattr(result, name) for name in names}}
