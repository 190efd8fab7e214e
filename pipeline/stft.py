"""A streaming short-time Fourier transform: blocks of any length in, magnitude frames out.

The rolling tempo and key estimators are fed whatever blocks a stream delivers
(a daemon message, a decoded file chunk), yet must see the same frames whether
a signal arrives in one piece or in a thousand: the framer keeps the samples
of an unfinished frame between calls, so frame ``i`` always starts at sample
``i * hop`` of the stream (no centring pad: a stream has no known start to pad).
Non-finite samples count as silence, so one bad block cannot poison the state.
"""

from __future__ import annotations

import functools
from typing import Generic, Protocol, TypeVar

import numpy as np
import scipy.fft

E = TypeVar("E")


@functools.lru_cache(maxsize=16)
def periodic_hann(n: int) -> np.ndarray:
    """The periodic Hann window of STFT frames (``scipy.signal.get_window("hann", n)``).

    One read-only array per length, shared by every caller: the daemon makes a tracker per
    stream, and a window of its own each was 34 KiB a stream (issue 18, "Per-stream memory").
    """
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)
    window.setflags(write=False)
    return window


def mono_block(samples: np.ndarray) -> np.ndarray:
    """A block as float32 ``(samples,)``; a ValueError for anything but mono (mix down first)."""
    block = np.asarray(samples, dtype=np.float32)
    if block.ndim != 1:
        raise ValueError(f"expected a mono block of shape (samples,), got {block.shape}")
    return block


class StreamingStft:
    """Magnitude spectra ``(frames, n_fft // 2 + 1)`` of frames ``n_fft`` long every ``hop`` samples."""

    def __init__(self, n_fft: int, hop: int) -> None:
        if n_fft < 2 or not 1 <= hop <= n_fft:
            raise ValueError(f"need n_fft >= 2 and 1 <= hop <= n_fft, got n_fft={n_fft}, hop={hop}")
        self.n_fft = n_fft
        self.hop = hop
        self.window = periodic_hann(n_fft)
        self._pending = np.zeros(0, np.float32)
        #: non-finite samples seen (replaced by zeros)
        self.bad_samples = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """The magnitude frames completed by ``samples`` (mono, any length), float32, possibly none."""
        block = mono_block(samples)
        finite = np.isfinite(block)
        if not finite.all():
            self.bad_samples += int(block.size - np.count_nonzero(finite))
            block = np.where(finite, block, np.float32(0.0))
        buffer = np.concatenate([self._pending, block]) if self._pending.size else block
        n = 0 if buffer.size < self.n_fft else (buffer.size - self.n_fft) // self.hop + 1
        self._pending = buffer[n * self.hop :].copy()
        if n == 0:
            return np.zeros((0, self.n_fft // 2 + 1), np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(buffer, self.n_fft)
        frames = windows[: (n - 1) * self.hop + 1 : self.hop]
        return np.abs(scipy.fft.rfft(frames * self.window, axis=-1)).astype(np.float32, copy=False)


class PendingBlocks:
    """Blocks held back until an analysis update is due, so that small blocks cost an append each.

    ``add`` says when the samples held would complete frame ``k * every`` of
    ``stft`` (counting what it has already framed), or when ``max_held`` samples
    are held (memory: a daemon holds this for every stream, and a second of audio
    is framed as cheaply in one piece as in several); ``take`` hands them over as
    one array.  Results are the same as framing every block as it comes.
    """

    def __init__(self, stft: StreamingStft, every: int, max_held: int | None = None) -> None:
        self.stft = stft
        self.every = every
        self.max_held = max_held
        self._blocks: list[np.ndarray] = []
        self._held = 0
        self._total = 0  # samples handed over so far

    def add(self, samples: np.ndarray) -> bool:
        """Hold ``samples``; True when an update is due.

        A view of a larger array is copied, so that holding it does not keep that array alive
        (the daemon's trackers get the last hop of each window: holding the view held the window).
        """
        block = mono_block(samples)
        if block.base is not None:
            block = block.copy()
        self._blocks.append(block)
        self._held += block.size
        if self.max_held is not None and self._held >= self.max_held:
            return True
        framed = 0 if self._total < self.stft.n_fft else (self._total - self.stft.n_fft) // self.stft.hop + 1
        due = (framed // self.every + 1) * self.every  # the frame count of the next update
        return self._total + self._held >= (due - 1) * self.stft.hop + self.stft.n_fft

    @property
    def received(self) -> int:
        """Samples added so far, held or handed over."""
        return self._total + self._held

    def take(self) -> np.ndarray:
        """Everything held, in order, as one array."""
        out = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)
        self._blocks, self._total, self._held = [], self._total + self._held, 0
        return out


class FrameAnalysis(Protocol):
    """A streaming analysis of a :class:`StreamingStft`'s frames: one value (or row) per frame."""

    stft: StreamingStft
    frame_rate: float

    def push(self, samples: np.ndarray) -> np.ndarray: ...


class RollingEstimate(Generic[E]):
    """A rolling estimate of one stream: an analysis' frames over the last ``context_seconds``, re-estimated
    every ``update_seconds`` of audio once ``min_seconds`` have arrived.

    The base of the streaming tempo and key trackers: :meth:`push` successive
    mono blocks, read :attr:`estimate`.  Update instants depend on the audio's
    length only, never on block sizes, and blocks wait unprocessed until an
    update is due or a second of audio is held (:class:`PendingBlocks`), so a
    small block costs a list append and the analysis runs on a second or more
    of audio at a time.  A subclass says what an
    estimate is (:meth:`_estimate`) and what "none yet" is (``empty``).
    """

    def __init__(
        self,
        analysis: FrameAnalysis,
        frame_shape: tuple[int, ...],
        dtype: type[np.floating],
        empty: E,
        context_seconds: float,
        update_seconds: float,
        min_seconds: float,
    ) -> None:
        if not 0 < min_seconds <= context_seconds or update_seconds <= 0:
            raise ValueError("need 0 < min_seconds <= context_seconds and update_seconds > 0")
        self.analysis = analysis
        rate = analysis.frame_rate
        self.context = max(1, int(round(context_seconds * rate)))
        self.update_frames = max(1, int(round(update_seconds * rate)))
        self.min_frames = max(1, int(round(min_seconds * rate)))
        self._empty = empty
        self._ring = np.zeros((self.context, *frame_shape), dtype)
        self._filled = 0
        self._frames = 0
        # A second of audio at most waits for the next update (analysis.stft.hop * frame_rate: the rate).
        self._waiting = PendingBlocks(analysis.stft, self.update_frames, int(round(rate * analysis.stft.hop)))
        self.estimate = empty

    @property
    def frame_rate(self) -> float:
        return self.analysis.frame_rate

    @property
    def samples_pushed(self) -> int:
        """Samples fed so far, whether analysed yet or held until the next update."""
        return self._waiting.received

    def push(self, samples: np.ndarray) -> E | None:
        """Feed a block; returns the new estimate when this block completed an update, else None."""
        if not self._waiting.add(samples):
            return None
        return self._process(self._waiting.take())

    def finish(self) -> E:
        """An estimate from everything pushed so far (for a clip that ends between updates)."""
        self._process(self._waiting.take())
        if self._frames % self.update_frames:
            self.estimate = self._update()
        return self.estimate

    def _process(self, samples: np.ndarray) -> E | None:
        frames = self.analysis.push(samples)
        # Only the last update a block completes is computed: an estimate depends on the
        # context at its instant alone, so skipping the ones nobody saw changes nothing.
        last = (self._frames + len(frames)) // self.update_frames * self.update_frames - self._frames
        if last <= 0:
            self._append(frames)
            return None
        self._append(frames[:last])
        self.estimate = self._update()
        self._append(frames[last:])
        return self.estimate

    def _append(self, frames: np.ndarray) -> None:
        k = min(len(frames), self.context)
        if k:
            self._ring = np.roll(self._ring, -k, axis=0)
            self._ring[-k:] = frames[len(frames) - k :]
        self._filled = min(self.context, self._filled + len(frames))
        self._frames += len(frames)

    def _update(self) -> E:
        if self._filled < self.min_frames:
            return self._empty
        return self._estimate(self._ring[-self._filled :], self._filled / self.frame_rate)

    def _estimate(self, context: np.ndarray, seconds: float) -> E:
        """The estimate from the context's frames (``seconds`` of audio, at least ``min_seconds``)."""
        raise NotImplementedError
