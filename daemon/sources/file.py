"""``file:`` source: an audio file played into one stream, in real time or faster.

The file is read in ~100 ms chunks at its own sample rate: the stream's
windower resamples to the model's rate with the same soxr quality as
:func:`genretag.pipeline.audio.decode`, so no second resampling step is
added and the source does not depend on the model (which SIGHUP may swap).
Files libsndfile reads (wav, flac, ogg, mp3, ...) are streamed block by block
until the audio really ends (a truncated file's header may promise more);
anything else is streamed from ffmpeg by
:func:`~genretag.pipeline.audio.stream_decode` at ``FALLBACK_RATE``.  Either
way memory stays flat whatever the file's length.

Pacing follows an absolute schedule, start time + audio sent / ``rate``, as a
live source would deliver it: sleep jitter and decoding time never add up to
drift.  ``rate=0`` sends as fast as the thread runs.  A file's audio is not
live: its windows are scored however long they wait (the batcher's age bound
spares them), but beyond ``batch.queue_size`` waiting windows the oldest are
dropped (counted), so use a rate the model keeps up with, such as 10, to tag a
long file faster than real time without losses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from genretag.daemon.options import option
from genretag.daemon.protocol import DEFAULT_LIMITS, ErrorKind, Limits
from genretag.daemon.sources.base import BuildEnv, Chunk, SourceSink, SourceWorker, deliver
from genretag.pipeline.audio import AudioDecodeError, read_blocks, stream_decode

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.1
FALLBACK_RATE = 44100  # for files only ffmpeg reads: CD rate, the windower resamples anyway


def check_path(target: str) -> str:
    """The target of a ``file:`` spec, a path; ValueError when empty."""
    if not target:
        raise ValueError("file: needs a path")
    return target


@dataclass(frozen=True)
class FileConfig:
    """The options of a ``file:`` source (``[[source]]`` keys or the spec's ``?key=value``); see
    :class:`FileSource`."""

    rate: float = option(
        1.0, lambda v: 0 <= v <= 1000, "must be 0 (as fast as possible) or a speed up to 1000"
    )
    loop: bool = False
    chunk_seconds: float = option(CHUNK_SECONDS, lambda v: 0.01 <= v <= 1.0, "must be 0.01..1 seconds")


class FileSource:
    """Plays ``path`` into stream ``name``; ``up`` at the start, ``down`` at the end (or on an error).

    Parameters
    ----------
    rate : playback speed, 1 = real time, 0 = as fast as possible.
    loop : start over at the end, forever; stream positions run on.
    limits : each chunk is checked against them (:func:`~genretag.daemon.sources.base.deliver`):
        a file's chunk with NaN/Inf samples, say, is counted as ``bad_audio`` and skipped.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        rate: float = 1.0,
        loop: bool = False,
        chunk_seconds: float = CHUNK_SECONDS,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        if rate < 0 or chunk_seconds <= 0:
            raise ValueError(f"rate must be >= 0 and chunk_seconds > 0, got {rate}, {chunk_seconds}")
        self.name = name
        self.path = Path(path)
        self.rate = rate
        self.loop = loop
        self.chunk_seconds = chunk_seconds
        self.limits = limits
        self._worker = SourceWorker()
        self.seconds_sent = 0.0

    @classmethod
    def from_config(cls, name: str, target: str, config: FileConfig, env: BuildEnv) -> FileSource:
        """The source of a ``file:PATH`` spec (:mod:`~genretag.daemon.sources.registry`)."""
        return cls(
            name,
            Path(target),
            rate=config.rate,
            loop=config.loop,
            chunk_seconds=config.chunk_seconds,
            limits=env.limits,
        )

    def start(self, sink: SourceSink) -> None:
        self._worker.start(lambda: self._run(sink), f"file-{self.name}")

    def stop(self, timeout: float = 5.0) -> None:
        self._worker.stop(timeout)

    def _run(self, sink: SourceSink) -> None:
        start, failed = time.monotonic(), False
        try:
            sink.state(self.name, "up")
            while not self._worker.stopping.is_set():
                sent_before = self.seconds_sent
                for samples, sr in self._chunks():
                    if not self._pace(start):
                        return
                    deliver(sink, Chunk(self.name, samples, sr, time.monotonic(), live=False), self.limits)
                    self.seconds_sent += len(samples) / sr
                if not self.loop or self.seconds_sent == sent_before:  # an empty file would spin
                    return
        except (AudioDecodeError, sf.LibsndfileError, OSError) as err:
            log.error("file source %r: %s", self.name, err)
            sink.error(self.name, ErrorKind.DECODE, str(err))
            failed = True
        finally:
            if self._worker.stopping.is_set():
                sink.state(self.name, "down", "stopped", "source stopped")
            elif failed:
                sink.state(self.name, "down", "decode_error", "the file does not decode")
            else:
                sink.state(self.name, "down", "eof", "end of file")

    def _pace(self, start: float) -> bool:
        """Wait until the next chunk is due; False when stopped meanwhile."""
        if self.rate > 0:
            delay = start + self.seconds_sent / self.rate - time.monotonic()
            if delay > 0:
                return not self._worker.stopping.wait(delay)
        return not self._worker.stopping.is_set()

    def _chunks(self) -> Iterator[tuple[np.ndarray, int]]:
        """(float32 samples, rate) chunks of one pass over the file."""
        try:
            handle = sf.SoundFile(str(self.path))
        except sf.LibsndfileError:  # stream_decode raises AudioDecodeError with a reason
            for block in stream_decode(self.path, FALLBACK_RATE, block_seconds=self.chunk_seconds):
                yield block, FALLBACK_RATE
            return
        with handle:
            for block in read_blocks(handle, max(1, int(handle.samplerate * self.chunk_seconds))):
                yield block, int(handle.samplerate)
