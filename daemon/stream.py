"""Per-stream audio state: down-mix, streaming resampling, ring buffer, windows.

One :class:`StreamWindower` per stream holds everything that must survive from
one chunk to the next (soxr's streaming resampler, a fixed-size ring buffer,
the silence gate) and nothing about the model, in the way Essentia's streaming
mode keeps algorithm state apart from the network.  Chunks of any size go in;
complete windows at the model's rate come out, each stamped with its stream
position and the arrival time of the chunk that completed it.

Resampling one chunk at a time with a stream resampler gives bit-for-bit the
output of resampling the whole signal at once: no clicks at chunk boundaries
and no drift in positions.  The ring holds that output as int16, scaled and
rounded as the training shards hold audio (:func:`~genretag.pipeline.audio.float_to_int16`),
so per-stream state is half that of float32 and a window is what training saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import soxr

from genretag.daemon.silence import SilenceGate, StateChange
from genretag.pipeline.audio import INT16_SCALE, float_to_int16
from genretag.pipeline.windows import WindowSpec, frame_count

RESAMPLE_BLOCK_SECONDS = 0.05
"""The most input audio handed to the resampler in one call.

soxr's stream resampler keeps buffers as large as the largest chunk it was ever
given (44.1 -> 16 kHz: 137 KiB a stream after 0.05 s calls, 298 KiB after 0.5 s
ones), so a long message is fed to it in blocks of this length; its output is the
same.  Shorter blocks save little more memory (119 KiB at 0.02 s) for more CPU
(the windower's cost per stream and second of audio: about 0.31 ms in whole 0.5 s
messages, 0.37 ms in 0.05 s blocks, 0.43 ms in 0.02 s ones); figures in
``benchmarks/RESULTS.md``, "Per-stream memory".
"""


class BadAudio(ValueError):
    """A chunk the windower cannot mix (not int16 or float32, not ``(frames[, channels])``, rate not > 0).

    Chunks are checked once, where they enter the daemon, against its ``[limits]``
    (:func:`genretag.daemon.protocol.check_chunk`); this is a source's bug, refused
    with the state untouched rather than crashing the caller.
    """


@dataclass(frozen=True, slots=True)
class Window:
    """One analysis window ready for the model.

    Attributes
    ----------
    samples : float32 mono ``(window_samples,)`` at the model rate; a copy, safe to keep.  Its values
        are int16 steps (``float_to_int16`` then ``int16_to_float`` of :mod:`genretag.pipeline.audio`),
        as in the training shards: the ring holds int16, half the memory of float32.
    pos : stream position in seconds of the window's *end* (model-rate samples / rate).
    arrival_time : the ``arrival_time`` given with the chunk that completed the window
        (same clock as the caller's, e.g. ``time.monotonic()``), for end-to-end latency.
    silent : the silence gate was in state ``silence`` at the window's end; do not score it.
    """

    samples: np.ndarray
    pos: float
    arrival_time: float
    silent: bool


@dataclass(slots=True)
class PushResult:
    """What one chunk produced: complete windows and gate transitions, each in stream order.

    ``pos`` and ``silence_seconds`` are the windower's :attr:`~StreamWindower.pos` and
    its gate's total silence after the chunk: all a consumer needs when the windower
    itself runs in another process (:mod:`genretag.daemon.ingest.pool`).
    """

    windows: list[Window] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)
    pos: float = 0.0
    silence_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class WindowerSettings:
    """What every stream's windower is made with: the model's window and the silence gate."""

    spec: WindowSpec
    silence_db: float = -50.0
    silence_hold_seconds: float = 2.0

    def new_windower(self) -> StreamWindower:
        return StreamWindower(self.spec, self.silence_db, self.silence_hold_seconds)

    def clean_after(self, recovered_pos: float) -> float:
        """End position of the first window holding none of a silence the gate left at ``recovered_pos``.

        The gate reports the recovery at the end of its first loud block, so the
        sound began one block earlier.
        """
        rate = self.spec.sample_rate
        return recovered_pos + (self.spec.window_samples - SilenceGate.block_samples(rate)) / rate


class StreamWindower:
    """Turns one stream's chunks into model windows; see the module docstring.

    Parameters
    ----------
    spec : the model's rate and window geometry: the windows of the stream so far are those
        :func:`~genretag.pipeline.windows.frame_count` counts in it (no tiling: a window is
        cut once complete), starting every ``hop_samples``.
    silence_db : silence threshold in dBFS (see :class:`~genretag.daemon.silence.SilenceGate`).
    silence_hold_seconds : how long the level must stay below ``silence_db``.

    Attributes
    ----------
    frames_in : input frames accepted (at their own rates).
    windows_out : windows produced; the next one starts at stream sample ``windows_out * hop_samples``.
    format_changes : times the input rate or channel count changed mid-stream.
    bad_chunks : chunks refused with :class:`BadAudio`.

    Chunks are valid ones (:func:`~genretag.daemon.protocol.check_chunk`): their NaN
    and bounds checks happen where they enter the daemon, not here.
    """

    def __init__(
        self, spec: WindowSpec, silence_db: float = -50.0, silence_hold_seconds: float = 2.0
    ) -> None:
        self.rate = spec.sample_rate
        self.window_samples = spec.window_samples
        self.hop_samples = spec.hop_samples
        self.gate = SilenceGate(self.rate, silence_db, silence_hold_seconds)
        # Holds the next window's start up to the newest sample: one window is enough, as
        # :meth:`_append` writes only up to where the next window completes (see there).
        # int16, scaled like the training shards (pipeline.audio.float_to_int16): 93 KiB a stream
        # at 16 kHz instead of 186; windows come out as float32 (_read).
        self.buffer = np.zeros(self.window_samples, dtype=np.int16)
        self._written = 0  # model-rate samples ever written; ring index is _written % size
        self._format: tuple[int, int] | None = None  # (input rate, channels)
        self._resampler: soxr.ResampleStream | None = None
        self._last_arrival = 0.0
        self.frames_in = 0
        self.windows_out = 0
        self.format_changes = 0
        self.bad_chunks = 0

    @property
    def pos(self) -> float:
        """Seconds of model-rate audio produced so far."""
        return self._written / self.rate

    def push(self, samples: np.ndarray, sample_rate: int, arrival_time: float) -> PushResult:
        """Feed one chunk and return the windows it completed.

        Parameters
        ----------
        samples : int16 or float32, ``(frames,)`` or ``(frames, channels)``; any
            number of frames, zero included, checked where they entered the daemon
            (:func:`~genretag.daemon.protocol.check_chunk`).  int16 is scaled like training data.
        sample_rate : the chunk's rate in Hz; a change from the previous chunk is
            handled (the old resampler is flushed so no audio is lost) and counted.
        arrival_time : when the chunk arrived, copied to the windows it completes.

        Raises
        ------
        BadAudio
            The chunk cannot be mixed (see :class:`BadAudio`); the stream's state is as before the call.
        """
        try:
            mono = _mix(samples, sample_rate)
        except BadAudio:
            self.bad_chunks += 1
            raise
        result = PushResult()
        if mono.size == 0:
            return self._stamp(result)
        self._last_arrival = arrival_time
        fmt = (int(sample_rate), 1 if samples.ndim == 1 else samples.shape[1])
        if self._format is not None and fmt != self._format:
            self.format_changes += 1
            # Channels are mixed down before resampling, so only a rate change needs a new
            # resampler; restarting it for a channel change would add a filter transient.
            if fmt[0] != self._format[0]:
                self._append(self._finish_resampler(), arrival_time, result)
        self._format = fmt
        if fmt[0] != self.rate and self._resampler is None:
            self._resampler = soxr.ResampleStream(fmt[0], self.rate, 1, dtype="float32", quality="HQ")
        self.frames_in += mono.size
        out = mono if self._resampler is None else self._resample(mono, fmt[0])
        self._append(out, arrival_time, result)
        return self._stamp(result)

    def flush(self) -> PushResult:
        """End of stream: drain the resampler's delayed tail.

        Only windows the tail completes are returned, never a partial one.  The
        stream may go on afterwards (a looped file); positions stay continuous.
        """
        result = PushResult()
        self._append(self._finish_resampler(), self._last_arrival, result)
        return self._stamp(result)

    def _stamp(self, result: PushResult) -> PushResult:
        result.pos, result.silence_seconds = self.pos, self.gate.silence_seconds
        return result

    def _resample(self, mono: np.ndarray, input_rate: int) -> np.ndarray:
        """``mono`` through the stream resampler in blocks of at most ``RESAMPLE_BLOCK_SECONDS``."""
        assert self._resampler is not None
        block = max(1, int(RESAMPLE_BLOCK_SECONDS * input_rate))
        if mono.size <= block:
            return self._resampler.resample_chunk(mono)
        parts = [self._resampler.resample_chunk(mono[i : i + block]) for i in range(0, mono.size, block)]
        return np.concatenate(parts)

    def _finish_resampler(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._resampler = None
        return tail

    def _append(self, samples: np.ndarray, arrival_time: float, result: PushResult) -> None:
        """Write model-rate samples into the ring, cutting windows as they complete.

        The ring holds ``window_samples``.  Before each write the samples still needed,
        ``kept`` (from the next window's start to the newest sample), number fewer than a
        window, since every complete window has been cut; so at least one sample fits,
        and a write of ``size - kept`` ends exactly where the next window completes,
        which is then cut before the next write can overwrite its start.  With a hop
        longer than the window, samples before the next window's start are written and
        overwritten unread.
        """
        if samples.size == 0:
            return
        state = self.gate.state
        changes = self.gate.process(samples)
        result.changes.extend(changes)
        size, win, hop = self.buffer.size, self.window_samples, self.hop_samples
        done = 0
        while done < samples.size:
            kept = max(0, self._written - self.windows_out * hop)  # samples still needed
            take = min(size - kept, samples.size - done)
            self._write(samples[done : done + take])
            done += take
            for _ in range(frame_count(self._written, win, hop, tile_short=False) - self.windows_out):
                start = self.windows_out * hop
                pos = (start + win) / self.rate
                while changes and changes[0].pos <= pos:
                    state = changes.pop(0).state
                result.windows.append(Window(self._read(start), pos, arrival_time, state == "silence"))
                self.windows_out += 1

    def _write(self, chunk: np.ndarray) -> None:
        at = self._written % self.buffer.size
        first = min(chunk.size, self.buffer.size - at)
        quantised = float_to_int16(chunk)
        self.buffer[at : at + first] = quantised[:first]
        self.buffer[: chunk.size - first] = quantised[first:]
        self._written += chunk.size

    def _read(self, start: int) -> np.ndarray:
        """The window starting at stream sample ``start`` as float32: exactly ``int16_to_float`` of it."""
        at = start % self.buffer.size
        out = np.empty(self.window_samples, dtype=np.float32)
        first = min(self.window_samples, self.buffer.size - at)
        scale = np.float32(INT16_SCALE)
        np.divide(self.buffer[at : at + first], scale, out=out[:first], dtype=np.float32)
        np.divide(self.buffer[: self.window_samples - first], scale, out=out[first:], dtype=np.float32)
        return out


def _mix(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """A chunk as float32 mono; :class:`BadAudio` if it cannot be mixed (see there).

    This runs for every chunk of every stream (thousands a second in a busy daemon), so
    the mix is a matrix-vector product with the scale folded into the weights: numpy's
    ``mean(axis=1)`` over a few channels costs ten times more.  Same result as
    ``int16_to_float(to_mono(x))`` within float32 rounding.
    """
    if not isinstance(samples, np.ndarray) or samples.dtype not in (np.int16, np.float32):
        raise BadAudio(f"samples must be an int16 or float32 array, got {getattr(samples, 'dtype', samples)}")
    if samples.ndim not in (1, 2) or (samples.ndim == 2 and samples.shape[1] < 1):
        raise BadAudio(f"expected (frames,) or (frames, channels) audio, got shape {samples.shape}")
    if not (isinstance(sample_rate, int | np.integer) and sample_rate > 0):
        raise BadAudio(f"sample rate must be an integer > 0 Hz, got {sample_rate!r}")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    scale = np.float32(1.0 / INT16_SCALE if samples.dtype == np.int16 else 1.0)
    if channels == 1:
        mono = samples.reshape(-1)
        if samples.dtype == np.int16:
            out = mono.astype(np.float32)  # then scale in place: half the time of a mixed-type multiply
            out *= scale
            return out
        return np.ascontiguousarray(mono)
    weights = np.full(channels, scale / channels, dtype=np.float32)
    return np.dot(samples, weights).astype(np.float32, copy=False)
