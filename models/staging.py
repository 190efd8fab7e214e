"""A reusable, aligned input buffer for batched inference.

A serving process scores thousands of windows a second.  Stacking a batch into
a fresh array and handing that to TensorFlow, which copies it again into its
own tensor, cost more than the model (``benchmarks/RESULTS.md``, "What limits
it").  Here a batch is copied once, into a buffer that lives as long as its
predictor, at an address TensorFlow adopts through DLPack without a copy.
TensorFlow aborts the process (not an exception) on a tensor that is not
64-byte aligned, so the alignment is made here and checked before any array
is handed over.

Windows that already lie in consecutive rows of one aligned buffer (the
daemon's ingest workers deliver them so, :class:`~genretag.daemon.ingest.pool.WindowRing`)
are not copied at all: the batch is a view of those rows.  Copying a window is
one numpy call that releases and retakes the GIL, and in a daemon whose other
threads are busy each retake waits for a thread switch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ALIGN_BYTES = 64


def aligned_empty(rows: int, width: int) -> np.ndarray:
    """An uninitialised C-contiguous float32 ``(rows, width)`` array that starts ``ALIGN_BYTES``-aligned."""
    nbytes = rows * width * 4
    raw = np.empty(nbytes + ALIGN_BYTES, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN_BYTES
    return raw[start : start + nbytes].view(np.float32).reshape(rows, width)


def is_aligned(x: np.ndarray) -> bool:
    """True if ``x`` is a C-contiguous float32 array TensorFlow may adopt without copying."""
    return x.dtype == np.float32 and x.flags.c_contiguous and x.ctypes.data % ALIGN_BYTES == 0


def _address(x: np.ndarray) -> int:
    return int(x.__array_interface__["data"][0])


def consecutive_rows(windows: Sequence[np.ndarray], rows: int) -> np.ndarray | None:
    """``(rows, width)`` view of the buffer whose consecutive rows ``windows`` are, or None.

    None unless every window is a contiguous float32 row of one buffer, each
    right after the one before, the first aligned, and ``rows`` rows from the
    first still inside the buffer (the rows past ``len(windows)`` pad the batch).
    """
    first = windows[0]
    owner = first.base
    if owner is None or first.dtype != np.float32 or first.ndim != 1 or not first.flags.c_contiguous:
        return None
    start, stride = _address(first), first.nbytes
    if start % ALIGN_BYTES:
        return None
    for i, window in enumerate(windows):
        if window.base is not owner or window.nbytes != stride or _address(window) != start + i * stride:
            return None
    try:
        owner_view = memoryview(owner).cast("B")  # type: ignore[arg-type]
    except (TypeError, ValueError):  # not a plain contiguous buffer
        return None
    offset = start - _address(np.frombuffer(owner_view, np.uint8))
    if not 0 <= offset <= len(owner_view) - rows * stride:
        return None
    return np.ndarray((rows, len(first)), np.float32, buffer=owner_view, offset=offset)


class StagingBuffer:
    """Copies a batch of windows into one reused aligned buffer (not thread-safe: one caller at a time).

    The buffer grows to the largest batch seen and is replaced when the window
    width changes.  Rows past the batch (``rows > len(windows)``, for backends
    that pad batches to a fixed set of shapes) keep whatever an earlier batch
    left there, always audio this predictor has already accepted: rows are
    scored independently and the caller drops their scores, so zeroing them
    would only cost a write per row.
    """

    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None

    def stage(self, windows: np.ndarray | Sequence[np.ndarray], rows: int) -> np.ndarray:
        """Return an aligned ``(rows, width)`` array whose first ``len(windows)`` rows are ``windows``.

        ``windows`` is a 2-D array or a sequence of equal-length 1-D arrays; a
        2-D float32 array that is already aligned and needs no extra rows is
        returned as it is.
        """
        if isinstance(windows, np.ndarray) and len(windows) == rows and is_aligned(windows):
            return windows
        if not isinstance(windows, np.ndarray) and (view := consecutive_rows(windows, rows)) is not None:
            return view
        n = len(windows)
        width = len(windows[0])
        buffer = self._buffer
        if buffer is None or buffer.shape[1] != width or len(buffer) < rows:
            buffer = self._buffer = aligned_empty(max(rows, 0 if buffer is None else len(buffer)), width)
            buffer[:] = 0.0  # the padding rows of the first batches hold silence, not uninitialised memory
        if isinstance(windows, np.ndarray):
            buffer[:n] = windows
        else:
            np.stack(windows, out=buffer[:n])
        return buffer[:rows]
