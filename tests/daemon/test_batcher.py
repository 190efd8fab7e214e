"""The dynamic batcher: batch closing, bounded queue and age, ordered swaps, surviving a failing model."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from genretag.daemon.batcher import Batcher
from genretag.daemon.stream import Window


class FakePredictor:
    """Scores every window ``[tag, 1 - tag]``; records batch sizes; optionally slow or failing."""

    def __init__(self, tag: float = 0.0, delay: float = 0.0, fail: bool = False) -> None:
        self.manifest = SimpleNamespace(labels=["a", "b"], heads={})
        self.tag, self.delay, self.fail = tag, delay, fail
        self.batches: list[int] = []

    def predict(self, windows: np.ndarray) -> np.ndarray:
        self.batches.append(len(windows))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model exploded")
        return np.tile(np.array([self.tag, 1 - self.tag], np.float32), (len(windows), 1))

    def predict_outputs(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        return {"genre": self.predict(windows)}


def window(pos: float, age: float = 0.0) -> Window:
    """A window whose audio arrived ``age`` seconds ago."""
    return Window(np.zeros(16, np.float32), pos, time.monotonic() - age, False)


class Recorder:
    def __init__(self) -> None:
        self.results: list[tuple[str, float, float]] = []  # stream, pos, score of "a"
        self.latencies: list[float] = []  # arrival of each scored window's audio to its result, seconds
        self.drops: list[tuple[str, str]] = []
        self.done = threading.Event()
        self.expected = 0

    def result(self, stream: str, w: Window, scores: np.ndarray, heads: object) -> None:
        self.results.append((stream, w.pos, float(scores[0])))
        self.latencies.append(time.monotonic() - w.arrival_time)
        if len(self.results) >= self.expected:
            self.done.set()

    def drop(self, stream: str, reason: str) -> None:
        self.drops.append((stream, reason))


def make(predictor: FakePredictor, rec: Recorder, **kwargs: object) -> Batcher:
    return Batcher(predictor, rec.result, on_drop=rec.drop, **kwargs)  # type: ignore[arg-type]


def test_batch_closes_at_max_size_then_at_max_wait() -> None:
    predictor, rec = FakePredictor(), Recorder()
    batcher = make(predictor, rec, max_batch_size=4, max_wait_ms=400)
    for i in range(10):
        batcher.put("s", window(i))
    rec.expected = 10
    started = time.monotonic()
    batcher.start()
    assert rec.done.wait(5)
    elapsed = time.monotonic() - started
    batcher.stop()
    assert predictor.batches == [4, 4, 2]  # two full batches at once, the rest after max_wait
    assert 0.3 < elapsed < 3, elapsed
    assert [pos for _, pos, _ in rec.results] == list(range(10))


def test_a_lone_window_waits_at_most_max_wait() -> None:
    predictor, rec = FakePredictor(), Recorder()
    batcher = make(predictor, rec, max_batch_size=64, max_wait_ms=50)
    batcher.start()
    rec.expected = 1
    started = time.monotonic()
    batcher.put("s", window(0))
    assert rec.done.wait(5)
    assert 0.04 < time.monotonic() - started < 1.0
    batcher.stop()


def test_a_batch_filling_while_the_thread_waits_closes_at_once() -> None:
    # put() wakes the inference thread only for a first window and a full batch: the full batch must
    # still close at once, not at max_wait, and windows behind a control item wait for it.
    predictor, rec = FakePredictor(), Recorder()
    batcher = make(predictor, rec, max_batch_size=4, max_wait_ms=3000, max_age_ms=0)
    batcher.start()
    rec.expected = 4
    started = time.monotonic()
    for i in range(4):
        batcher.put("s", window(i))
        time.sleep(0.05)  # the thread is waiting on the first window's deadline by now
    assert rec.done.wait(5)
    assert time.monotonic() - started < 1.5
    marks: list[int] = []
    rec.done.clear()
    rec.expected = 8
    batcher.put("s", window(4))
    batcher.call(lambda: marks.append(len(rec.results)))
    for i in range(5, 8):
        batcher.put("s", window(i))
    assert rec.done.wait(10)
    batcher.stop()
    assert predictor.batches == [4, 1, 3] and marks == [5]


def test_full_queue_drops_the_oldest_and_counts_per_stream() -> None:
    predictor, rec = FakePredictor(), Recorder()
    batcher = make(predictor, rec, queue_size=3, max_wait_ms=1)
    for i, stream in enumerate(["x", "y", "x", "y", "z"]):
        batcher.put(stream, window(i))  # not started: nothing is consumed
    assert batcher.depth == 3
    assert rec.drops == [("x", "queue_full"), ("y", "queue_full")]
    rec.expected = 3
    batcher.start()
    assert rec.done.wait(5)
    batcher.stop()
    assert [(s, pos) for s, pos, _ in rec.results] == [("x", 2), ("y", 3), ("z", 4)]


def test_stale_windows_are_dropped_oldest_first_and_counted_per_stream() -> None:
    predictor, rec = FakePredictor(), Recorder()
    batcher = make(predictor, rec, max_wait_ms=1, max_age_ms=200)
    marks: list[int] = []
    batcher.put("x", window(0, age=1.0))
    batcher.call(lambda: marks.append(len(rec.drops)))  # between stale windows: never dropped, kept in order
    batcher.put("y", window(1, age=1.0))
    batcher.put("x", window(2, age=0.5))
    batcher.put("y", window(3))
    batcher.put("x", window(4))
    rec.expected = 2
    batcher.start()
    assert rec.done.wait(5)
    batcher.stop()
    assert marks == [1]
    assert rec.drops == [("x", "stale"), ("y", "stale"), ("x", "stale")]
    assert [(s, pos) for s, pos, _ in rec.results] == [("y", 3), ("x", 4)]
    assert predictor.batches == [2]  # the stale windows never reached the model


def test_a_files_windows_are_never_stale() -> None:
    """A file's audio is tagged however late (live=False); the live window of the same age is dropped."""
    predictor, rec = FakePredictor(), Recorder()
    batcher = make(predictor, rec, max_wait_ms=1, max_age_ms=200)
    batcher.put("file", window(0, age=5.0), live=False)
    batcher.put("radio", window(1, age=5.0))
    batcher.put("file", window(2, age=1.0), live=False)
    rec.expected = 2
    batcher.start()
    assert rec.done.wait(5)
    batcher.stop()
    assert rec.drops == [("radio", "stale")]
    assert [(s, pos) for s, pos, _ in rec.results] == [("file", 0), ("file", 2)]


def test_past_capacity_the_scored_windows_stay_within_the_age_bound() -> None:
    # A model of 40 windows/s (4 per 0.1 s call) fed 100 windows/s: without an age bound the backlog would
    # grow by 60 windows, 1.5 s of the model's time, every second.  With one, each scored window waited at
    # most max_age before its batch formed, plus that batch's call; the rest is dropped as stale, per
    # stream, and stream order holds.
    predictor, rec = FakePredictor(delay=0.1), Recorder()
    batcher = make(predictor, rec, max_batch_size=4, max_wait_ms=10, max_age_ms=300)
    batcher.start()
    streams, put = ["a", "b", "c", "d"], 0
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        for stream in streams:
            batcher.put(stream, window(put))
            put += 1
        time.sleep(0.04)
    time.sleep(0.5)  # what is still queued becomes stale or gets scored
    batcher.stop()
    stale = [stream for stream, reason in rec.drops if reason == "stale"]
    assert len(rec.results) + len(rec.drops) == put
    assert len(stale) > put / 3 and {reason for _, reason in rec.drops} <= {"stale", "shutdown"}
    assert set(stale) == set(streams)  # every stream pays its share
    assert max(rec.latencies) < 0.3 + 0.1 + 0.25, max(rec.latencies)  # max_age, a call, slack: a busy box
    for stream in streams:
        positions = [pos for s, pos, _ in rec.results if s == stream]
        assert positions == sorted(positions)


def test_swap_takes_effect_in_queue_order_without_losing_a_window() -> None:
    old, new, rec = FakePredictor(tag=0.0), FakePredictor(tag=1.0), Recorder()
    swaps: list[tuple[object, object]] = []
    batcher = Batcher(
        old,
        rec.result,
        max_batch_size=64,
        max_wait_ms=1,  # type: ignore[arg-type]
        on_swap=lambda a, b: swaps.append((a, b)),
    )
    for i in range(3):
        batcher.put("s", window(i))
    batcher.swap(new)  # type: ignore[arg-type]
    for i in range(3, 5):
        batcher.put("s", window(i))
    rec.expected = 5
    batcher.start()
    assert rec.done.wait(5)
    batcher.stop()
    assert [(pos, a) for _, pos, a in rec.results] == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1)]
    assert old.batches == [3] and new.batches == [2]  # no batch spans the swap
    assert swaps == [(old, new)] and batcher.predictor is new


def test_a_failing_model_costs_its_batch_only() -> None:
    broken, good, rec = FakePredictor(fail=True), FakePredictor(tag=1.0), Recorder()
    errors: list[Exception] = []
    batcher = make(broken, rec, max_wait_ms=1, on_error=errors.append)
    batcher.start()
    batcher.put("s", window(0))
    batcher.put("t", window(1))
    batcher.swap(good)  # type: ignore[arg-type]
    rec.expected = 1
    batcher.put("s", window(2))
    assert rec.done.wait(5)
    assert batcher.alive
    batcher.stop()
    assert batcher.errors == 1 and [str(e) for e in errors] == ["model exploded"]
    assert sorted(rec.drops) == [("s", "inference_error"), ("t", "inference_error")]
    assert rec.results == [("s", 2, 1.0)]


def test_stop_finishes_the_batch_in_flight_and_runs_pending_controls() -> None:
    predictor, rec = FakePredictor(delay=0.3), Recorder()
    batcher = make(predictor, rec, max_batch_size=2, max_wait_ms=1)
    batcher.start()
    batcher.put("s", window(0))
    batcher.put("s", window(1))
    time.sleep(0.1)  # the first batch is in flight
    batcher.put("s", window(2))
    ran: list[str] = []
    batcher.call(lambda: ran.append("final event"))
    batcher.stop()
    assert [pos for _, pos, _ in rec.results] == [0, 1]
    assert rec.drops == [("s", "shutdown")] and ran == ["final event"]
    batcher.put("s", window(3))  # after stop: refused and counted, never blocks
    assert rec.drops[-1] == ("s", "shutdown")


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Batcher(FakePredictor(), lambda *_: None, max_batch_size=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_age_ms"):  # a lone window would be stale when its batch closes
        Batcher(FakePredictor(), lambda *_: None, max_wait_ms=500, max_age_ms=500)  # type: ignore[arg-type]
