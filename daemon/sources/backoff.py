"""Exponential backoff with jitter for sources that reconnect (url streams, audio devices).

A station that is down for an hour should cost one connection attempt a
minute, not one a second; a stream that drops after hours of good service
should be retried at once.  Jitter spreads the retries of many streams that
lost the same server at the same moment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from genretag.daemon.options import Problem, option


@dataclass(slots=True)
class Backoff:
    """Delays ``initial * factor**n`` capped at ``maximum``, each shortened by up to ``jitter``.

    Jitter only shortens, so that delays at the cap stay spread out instead of
    piling up at ``maximum``.

    Parameters
    ----------
    initial : first delay in seconds.
    factor : growth per consecutive failure (>= 1).
    maximum : cap on any delay in seconds.
    jitter : relative spread in [0, 1): 0.1 draws each delay from ``[0.9 d, d]``.
    stable_seconds : a connection that stayed up at least this long resets the sequence.
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.1
    stable_seconds: float = 30.0
    _failures: int = field(default=0, init=False)
    _rng: random.Random = field(default_factory=random.Random, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff jitter must be in [0, 1), got {self.jitter}")
        if self.stable_seconds <= 0:
            raise ValueError(f"backoff stable_seconds must be > 0, got {self.stable_seconds}")

    def next_delay(self, up_seconds: float = 0.0) -> float:
        """The wait before the next attempt, given how long the last connection stayed up."""
        if up_seconds >= self.stable_seconds:
            self._failures = 0
        base = min(self.maximum, self.initial * self.factor ** min(self._failures, 64))
        self._failures += 1
        return base * self._rng.uniform(1 - self.jitter, 1)


@dataclass(frozen=True)
class BackoffOptions:
    """The retry options of a reconnecting source kind (url:, mic:), as config keys; see :class:`Backoff`."""

    backoff_initial: float = option(1.0, lambda v: 0 < v <= 3600, "must be > 0 and at most 3600 seconds")
    backoff_factor: float = option(2.0, lambda v: 1 <= v <= 100, "must be 1..100")
    backoff_max: float = option(60.0, lambda v: 0 < v <= 86400, "must be > 0 and at most 86400 seconds")
    backoff_jitter: float = option(0.1, lambda v: 0 <= v < 1, "must be in [0, 1)")
    stable_seconds: float = option(30.0, lambda v: 0 < v <= 86400, "must be > 0 and at most 86400 seconds")

    def problems(self) -> list[Problem]:
        if self.backoff_initial > self.backoff_max:
            return [
                (
                    "backoff_initial",
                    f"must be at most backoff_max ({self.backoff_max:g}), got {self.backoff_initial:g}",
                )
            ]
        return []
