"""Reconnect delays shared by the url: and mic: sources."""

from __future__ import annotations

import pytest

from genretag.daemon.sources.backoff import Backoff


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(initial=1.0, factor=2.0, maximum=5.0, jitter=0.0, stable_seconds=30.0)
    assert [b.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.next_delay(up_seconds=10.0) == 5.0  # a short-lived connection does not reset
    assert b.next_delay(up_seconds=30.0) == 1.0  # a stable one does
    jittery = Backoff(initial=1.0, factor=2.0, maximum=4.0, jitter=0.25)
    delays = [jittery.next_delay() for _ in range(200)]
    assert 0.75 <= delays[0] <= 1.0 and max(delays) <= 4.0 and min(delays[2:]) >= 3.0
    assert len({round(d, 6) for d in delays[2:]}) > 190  # spread out even at the cap
    with pytest.raises(ValueError):
        Backoff(initial=2.0, maximum=1.0)
