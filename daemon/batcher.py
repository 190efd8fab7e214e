"""One dynamic batcher for the windows of all streams (TF Serving / Triton style).

Running the model once per window costs a fixed overhead per call (Python,
framework dispatch, feature set-up) that dwarfs the arithmetic of one window;
batching the windows of N streams makes N streams cost far less than N times
one.  A batch closes when it holds ``max_batch_size`` windows or when its
oldest window has waited ``max_wait_ms``, whichever comes first, so a lone
stream is never held back longer than ``max_wait_ms``.

Threading: producers (the sources' I/O threads) call :meth:`Batcher.put`,
:meth:`Batcher.call` and :meth:`Batcher.swap`, which never block on the
model: they take a short lock, append and return.  One inference thread
takes batches, runs the predictor and delivers each window's scores to the
``on_result`` callback, in queue order.  Every callback therefore runs on the
inference thread, which makes it the single owner of whatever the callbacks
touch (per-stream smoothers, the event publisher).

The queue is bounded twice, and both bounds drop the *oldest* windows (the
newest audio is the most useful to a live tagger), telling ``on_drop`` their
stream, so every loss is counted per stream:

* in memory: beyond ``queue_size`` windows, :meth:`put` drops the oldest
  (reason ``queue_full``);
* in time: as the inference thread forms a batch, it drops the windows whose
  audio arrived more than ``max_age_ms`` ago (reason ``stale``) instead of
  scoring them.  Past capacity, what is scored stays timely: it waited at most
  ``max_age_ms`` before its batch formed, plus that batch's inference.  The age
  counts from the window's ``arrival_time`` (at the source, or at the ingest
  router), not from :meth:`put`, so time spent in ingest workers and their
  sockets counts too, as it does for the user.

Why an age, rather than a queue bound that follows the model's speed
(windows per second x target latency, re-estimated as it goes)?  That speed
moves with the batch size, a reload's model, and whatever else runs on the
machine; a bound that lags it either scores late or drops windows that would
have made it.  A window's age is measured, exact per window, needs no estimate
and no tuning beyond the target itself, and sees the wait before :meth:`put`
that no bound on this queue can (CoDel's lesson: bound the time spent queued,
not the queue's length).  The count bound stays as the bound on memory.
Dropping while forming a batch costs nothing extra: stale windows are at the
head of the queue, taken off on the way to the fresh ones.  A file's windows
are not live (``put(..., live=False)``): they are tagged however late, and
only the count bound applies to them.  Producers that send faster than real
time on purpose (``genretag send --rate 0``) look live: run their daemon with
``max_age_ms = 0`` (no age bound) and a queue that holds their windows.

Control items (:meth:`call`, :meth:`swap`) are never dropped and do not count
towards the bound: there are only a few per stream state change, and losing
one would lose an event or a model swap.

Items are handled strictly in the order they were queued (a drop removes
windows, it never reorders the others), and a batch never spans a control
item.  That ordering is what makes a model swap atomic: the windows queued
before :meth:`swap` are scored by the old model, those after by the new one,
none is lost, and no batch mixes the two.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from genretag.daemon.stream import Window
from genretag.models.artifact import GENRE, output_labels
from genretag.models.predictor import Predictor

log = logging.getLogger(__name__)

ResultCallback = Callable[[str, Window, np.ndarray, Mapping[str, np.ndarray]], None]
DropCallback = Callable[[str, str], None]
BatchCallback = Callable[[int, float], None]
SwapCallback = Callable[[Predictor, Predictor], None]
ErrorCallback = Callable[[Exception], None]


def _ignore(*_: object) -> None:
    """Default for the optional callbacks."""


@dataclass(frozen=True, slots=True)
class _WindowItem:
    stream: str
    window: Window
    queued_at: float  # time.monotonic()
    live: bool  # held to the age bound


@dataclass(frozen=True, slots=True)
class _Control:
    action: Callable[[], None]


class Batcher:
    """Collects windows of all streams into batches and scores them on one thread.

    Parameters
    ----------
    predictor : the model; replaced between batches by :meth:`swap`.
    on_result : ``on_result(stream, window, scores, heads)`` for every scored window,
        ``scores`` being the ``(n_labels,)`` row of the genre scores and ``heads`` the
        window's row of each analysis head's scores, by head name (empty for a genre-only model).
    max_batch_size : a batch closes at this many windows.
    max_wait_ms : ... or when its first window has waited this long.
    queue_size : windows held at most; beyond it the oldest is dropped.
    max_age_ms : a window whose audio arrived longer ago than this when its batch
        forms is dropped rather than scored; 0: no age bound.  More than
        ``max_wait_ms`` (else a lone window could never be scored).
    on_drop : ``on_drop(stream, reason)`` per lost window; reasons ``queue_full``,
        ``stale`` (older than ``max_age_ms``), ``inference_error`` (the predictor
        failed on its batch) and ``shutdown`` (still queued at :meth:`stop`).
    on_batch : ``on_batch(size, seconds)`` after each successful predictor call.
    on_swap : ``on_swap(old, new)`` on the inference thread when a swap takes effect.
    on_error : ``on_error(exception)`` when the predictor fails on a batch (then dropped).
    """

    def __init__(
        self,
        predictor: Predictor,
        on_result: ResultCallback,
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 50.0,
        queue_size: int = 1024,
        max_age_ms: float = 500.0,
        on_drop: DropCallback = _ignore,
        on_batch: BatchCallback = _ignore,
        on_swap: SwapCallback = _ignore,
        on_error: ErrorCallback = _ignore,
    ) -> None:
        if max_batch_size < 1 or max_wait_ms < 0 or queue_size < 1:
            raise ValueError("max_batch_size and queue_size must be >= 1, max_wait_ms >= 0")
        if max_age_ms and max_age_ms <= max_wait_ms:
            raise ValueError(
                f"max_age_ms must be 0 (no age bound) or more than max_wait_ms "
                f"({max_wait_ms:g}), got {max_age_ms:g}"
            )
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self.max_age = max_age_ms / 1000.0
        self._on_result, self._on_drop = on_result, on_drop
        self._on_batch, self._on_swap, self._on_error = on_batch, on_swap, on_error
        self._queue: deque[_WindowItem | _Control] = deque()
        self._windows = 0  # window items in the queue (control items do not count)
        self._controls = 0  # control items in the queue: while there are none, no scan is needed
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="genretag-inference", daemon=True)
        self.batches = 0
        self.errors = 0

    @property
    def depth(self) -> int:
        """Windows waiting for the model."""
        return self._windows

    @property
    def alive(self) -> bool:
        """The inference thread is running (for the systemd watchdog)."""
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def put(self, stream: str, window: Window, *, live: bool = True) -> None:
        """Queue a window without blocking; drops (and reports) the oldest one when full.

        A window that is not ``live`` (a file's) is never dropped as stale.
        """
        dropped: list[str] = []
        with self._cond:
            reason = "shutdown" if self._stopping else "queue_full"
            if self._stopping:
                dropped.append(stream)
            else:
                while self._windows >= self.queue_size:
                    dropped.append(self._drop_oldest())
                self._queue.append(_WindowItem(stream, window, time.monotonic(), live))
                self._windows += 1
                # Wake the inference thread only when it has something new to decide: a first window
                # starts the max_wait clock, a full batch closes it.  Waking it for every window made it
                # rescan the queue thousands of times a second under load.
                if self._windows == 1 or self._windows >= self.max_batch_size:
                    self._cond.notify()
        for lost in dropped:  # outside the lock: the callback may take its own locks
            self._on_drop(lost, reason)

    def call(self, action: Callable[[], None]) -> None:
        """Run ``action()`` on the inference thread once everything queued before it is done."""
        with self._cond:
            self._queue.append(_Control(action))
            self._controls += 1
            self._cond.notify()

    def swap(self, predictor: Predictor) -> None:
        """Score every window queued from now on with ``predictor`` (see the module docstring)."""
        self.call(lambda: self._swap(predictor))

    def stop(self, timeout: float = 10.0) -> bool:
        """Finish the batch in flight, drop the windows still queued, run the control items, join.

        The remaining windows are dropped rather than scored so that shutdown is
        prompt even with a full queue and a slow model; control items still run,
        so final state events are published.  False if the thread was still
        busy after ``timeout`` seconds (a batch of a slow model; it is a daemon
        thread and does not keep the process alive).
        """
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _drop_oldest(self) -> str:
        """Remove the oldest window item (caller holds the lock); return its stream."""
        for i, item in enumerate(self._queue):
            if isinstance(item, _WindowItem):
                del self._queue[i]
                self._windows -= 1
                return item.stream
        raise AssertionError("no window to drop")  # only called while _windows > 0

    def _swap(self, predictor: Predictor) -> None:
        old, self.predictor = self.predictor, predictor
        self._on_swap(old, predictor)

    def _take(self) -> list[_WindowItem] | _Control | None:
        """Wait for the next batch or control item; None once stopped and empty."""
        with self._cond:
            while True:
                if self._stopping:
                    return self._take_after_stop()
                if self._queue:
                    head = self._queue[0]
                    if isinstance(head, _Control):
                        self._controls -= 1
                        return self._queue.popleft()  # type: ignore[return-value]
                    ready = self._ready_windows()
                    deadline = head.queued_at + self.max_wait
                    now = time.monotonic()
                    if ready >= self.max_batch_size or now >= deadline or ready < len(self._queue):
                        batch, stale = self._pop_batch(now)
                        if stale:
                            self._report_drops(stale, "stale")
                        if batch:
                            return batch
                        continue  # every window it looked at was stale: look again
                    self._cond.wait(deadline - now)
                else:
                    self._cond.wait()

    def _take_after_stop(self) -> _Control | None:
        """Drop windows (reported after the lock is released) until a control item or the end."""
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Control):
                self._controls -= 1
                return item
            self._windows -= 1
            self._report_drops([item.stream], "shutdown")
        return None

    def _report_drops(self, streams: list[str], reason: str) -> None:
        """Tell ``on_drop`` with the lock released (the callback may take its own locks); caller holds it."""
        self._cond.release()
        try:
            for stream in streams:
                self._on_drop(stream, reason)
        finally:
            self._cond.acquire()

    def _ready_windows(self) -> int:
        """Window items at the head of the queue, up to the first control item or the batch size."""
        if not self._controls:
            return min(self._windows, self.max_batch_size)
        n = 0
        for item in self._queue:
            if isinstance(item, _Control) or n == self.max_batch_size:
                break
            n += 1
        return n

    def _pop_batch(self, now: float) -> tuple[list[_WindowItem], list[str]]:
        """Take up to ``max_batch_size`` windows off the head of the queue, up to the first control item,
        less the stale ones (older than ``max_age`` at ``now``), whose streams come second.

        The queue is in arrival order, near enough (windows of ingest workers interleave), so the
        stale windows are the oldest; one stale behind a fresh one goes at the next batch.
        """
        oldest = now - self.max_age if self.max_age else -math.inf
        queue = self._queue
        batch: list[_WindowItem] = []
        stale: list[str] = []
        while queue and len(batch) < self.max_batch_size:
            item = queue[0]
            if isinstance(item, _Control):
                break
            queue.popleft()
            self._windows -= 1
            if item.live and item.window.arrival_time < oldest:
                stale.append(item.stream)
            else:
                batch.append(item)
        return batch, stale

    def _run(self) -> None:
        while (work := self._take()) is not None:
            if isinstance(work, _Control):
                try:
                    work.action()
                except Exception:  # noqa: BLE001  (a failing hook must not stop inference)
                    log.exception("control action failed")
                continue
            self._score(work)

    def _score(self, batch: list[_WindowItem]) -> None:
        """Run the predictor on one batch; on any failure count it and drop the batch."""
        predictor = self.predictor
        started = time.perf_counter()
        try:
            outputs = predictor.predict_outputs([item.window.samples for item in batch])
            _check_outputs(outputs, output_labels(predictor.manifest), len(batch))
        except Exception as err:  # noqa: BLE001  (the model must never take the daemon down)
            self.errors += 1
            log.error("inference failed on a batch of %d windows, dropped: %r", len(batch), err)
            self._on_error(err)
            for item in batch:
                self._on_drop(item.stream, "inference_error")
            return
        self.batches += 1
        self._on_batch(len(batch), time.perf_counter() - started)
        scores = outputs.pop(GENRE)
        for i, (item, row) in enumerate(zip(batch, scores, strict=True)):
            try:
                self._on_result(
                    item.stream, item.window, row, {name: out[i] for name, out in outputs.items()}
                )
            except Exception:  # noqa: BLE001
                log.exception("result handler failed for stream %r", item.stream)


def _check_outputs(outputs: Mapping[str, np.ndarray], expected: Mapping[str, list[str]], n: int) -> None:
    """Every output the manifest names, ``(n, its labels)`` and finite, or ValueError."""
    for name, labels in expected.items():
        out = outputs.get(name)
        if out is None or out.shape != (n, len(labels)) or not np.isfinite(out).all():
            got = "no output" if out is None else f"shape {out.shape}"
            raise ValueError(
                f"predictor returned {got} for {name!r} (expected ({n}, {len(labels)})) or non-finite scores"
            )
