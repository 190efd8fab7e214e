"""A thread-safe :class:`~genretag.daemon.sources.base.SourceSink` that records what a source reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from genretag.daemon.sources.base import Chunk, StreamState


class RecordingSink:
    """Keeps states and errors with their ``time.monotonic()``, and the first ``keep_chunks`` chunks.

    ``keep_chunks`` bounds memory for sources that deliver faster than real time
    (the unpaced ALSA test device); ``chunk_count`` still counts every chunk.
    """

    def __init__(self, keep_chunks: int | None = None) -> None:
        self._cond = threading.Condition()
        self._keep = keep_chunks
        self.chunks: list[Chunk] = []
        self.chunk_count = 0
        self.states: list[tuple[float, StreamState, str, str]] = []  # (time, state, reason, detail)
        self.errors: list[tuple[float, str, str]] = []

    def audio(self, chunk: Chunk) -> None:
        with self._cond:
            self.chunk_count += 1
            if self._keep is None or len(self.chunks) < self._keep:
                self.chunks.append(chunk)
            self._cond.notify_all()

    def state(self, stream: str, state: StreamState, reason: str = "", detail: str = "") -> None:
        with self._cond:
            self.states.append((time.monotonic(), state, reason, detail))
            self._cond.notify_all()

    def error(self, stream: str, kind: str, message: str) -> None:
        with self._cond:
            self.errors.append((time.monotonic(), kind, message))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[RecordingSink], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (checked under the lock); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def state_names(self) -> list[str]:
        with self._cond:
            return [s for _, s, _, _ in self.states]

    def audio_after(self, t: float) -> np.ndarray:
        """Samples of the kept chunks that arrived after monotonic time ``t``, concatenated."""
        with self._cond:
            parts = [c.samples for c in self.chunks if c.arrival_time > t]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def seconds_after(self, t: float) -> float:
        """Seconds of audio among the kept chunks that arrived after ``t``."""
        with self._cond:
            return sum(len(c.samples) / c.sample_rate for c in self.chunks if c.arrival_time > t)
