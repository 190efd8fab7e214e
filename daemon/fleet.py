"""A fleet of daemons: which daemon tags which stream.

Streams are sharded over N daemons by a stable hash of the stream id, the way
Prometheus shards scrape targets with the ``hashmod`` relabel action: the MD5
of the id, its last 8 bytes read as a big-endian unsigned integer, modulo N.
The same function in ``serve`` (which streams a daemon takes), ``send`` (which
daemon a stream goes to) and ``fleet plan`` (the table an operator checks) means
they can never disagree, and a Prometheus ``hashmod`` over the ``stream`` label
with the same modulus lands on the same shard.

A daemon knows its place from ``[fleet]`` ``shards`` and ``index`` (``--shard-index``
or ``GENRETAG_SHARD_INDEX``: the ordinal of a Kubernetes StatefulSet pod, the
instance of a systemd template unit ``genretag@N``).  With one shard (the default)
every stream is its own.  Changing N moves about ``1 - 1/N'`` of the streams
(modulo hashing, as Prometheus does; :func:`moves` lists them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


def shard_of(stream: str, shards: int) -> int:
    """The shard (0..shards-1) of a stream id: Prometheus' ``hashmod`` of the id."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    digest = hashlib.md5(stream.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % shards


@dataclass(frozen=True)
class Shard:
    """One daemon's place in the fleet: it tags the streams whose shard is ``index``."""

    shards: int = 1
    index: int = 0

    def __post_init__(self) -> None:
        if self.shards < 1 or not 0 <= self.index < self.shards:
            raise ValueError(f"shard index must be 0..{self.shards - 1}, got {self.index}")

    def owns(self, stream: str) -> bool:
        return self.shards == 1 or shard_of(stream, self.shards) == self.index


def plan(streams: Iterable[str], shards: int) -> dict[int, list[str]]:
    """Each shard's streams (every shard listed, in order; streams in the order given)."""
    out: dict[int, list[str]] = {i: [] for i in range(shards)}
    for stream in streams:
        out[shard_of(stream, shards)].append(stream)
    return out


def moves(streams: Iterable[str], before: int, after: int) -> list[tuple[str, int, int]]:
    """``(stream, old shard, new shard)`` of each stream that moves when N goes ``before`` -> ``after``."""
    return [
        (stream, old, new)
        for stream in streams
        if (old := shard_of(stream, before)) != (new := shard_of(stream, after))
    ]
