"""The ingest results codec: what a worker encodes, the daemon decodes to the same results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genretag.daemon.ingest.results import (
    Bye,
    Down,
    Hello,
    Push,
    SourceError,
    Up,
    decode,
    encode,
    window_count,
)
from genretag.daemon.silence import StateChange
from genretag.daemon.stream import PushResult, Window


def test_every_result_comes_back_equal_with_named_fields() -> None:
    samples = np.arange(12, dtype=np.float32).reshape(3, 4)
    pushed = PushResult(
        [Window(samples[k], 1.5 + k, 10.0 + k, k == 2) for k in range(3)],
        [StateChange("silence", 3.25), StateChange("active", 4.0)],
        4.5,
        0.75,
    )
    results = [
        Hello(0),
        Up("a"),
        Push.of("a", pushed),
        SourceError("a", "seq_gap", "1 message(s) lost"),
        Push.of("b", PushResult(pos=2.0)),
        Down("a", "idle", "no message for 5 s"),
        Bye(1),
    ]
    header = encode(results)
    assert decode(header) == results
    assert window_count(decode(header)) == 3
    first_push = json.loads(header)[2]
    assert first_push["type"] == "push" and first_push["stream"] == "a"
    assert set(first_push) == {"type", "stream", "pos", "silence_seconds", "windows", "changes"}
    assert first_push["windows"][2] == {"pos": 3.5, "arrival_time": 12.0, "silent": True}
    again = decode(header)[2]
    assert isinstance(again, Push)
    rebuilt = again.result(iter(samples))
    assert rebuilt.pos == 4.5 and rebuilt.silence_seconds == 0.75 and rebuilt.changes == pushed.changes
    for got, want in zip(rebuilt.windows, pushed.windows, strict=True):
        assert (got.pos, got.arrival_time, got.silent) == (want.pos, want.arrival_time, want.silent)
        np.testing.assert_array_equal(got.samples, want.samples)


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(KeyError):
        decode(b'[{"type":"nope","stream":"a"}]')
