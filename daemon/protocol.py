"""The ZeroMQ PCM input format (version 1): how any producer feeds the daemon.

A producer PUSHes multipart messages to the daemon's PULL socket; one socket
carries any number of named streams.  Each message has exactly three parts::

    [stream-id, header, pcm]

``stream-id``
    UTF-8, 1 to 128 characters, printable, no whitespace (it ends up in event
    topics and metric labels).
``header``
    A JSON object (at most 1024 bytes) with the keys

    ========== ======= =====================================================
    key        type    meaning
    ========== ======= =====================================================
    ``sr``     int     sample rate in Hz, 8000 to 192000
    ``channels`` int   interleaved channels, 1 to 8
    ``dtype``  string  ``"int16"`` or ``"float32"``, little-endian
    ``seq``    int     message number, >= 0, +1 per message of the stream
    ``v``      int     format version, optional, must be 1 when present
    ========== ======= =====================================================

    Unknown keys are ignored, so later versions can add optional keys.
``pcm``
    Interleaved samples (frame 0 channel 0, frame 0 channel 1, ...), 1 byte to
    1 MiB, a whole number of frames.  float32 samples are nominally in
    [-1, 1] (the windower clips beyond, as training data are) and must be
    finite; int16 full scale is 32767.

The rate and channel count may change from one message to the next (a new
file on the producer side).  A ``seq`` that skips numbers means messages were
lost (counted, the stream goes on); a ``seq`` that goes back or repeats means
the producer restarted (counted, not an error).

Everything is validated before any sample array is made, and every rejection
is a :class:`FrameError` whose ``reason`` is an :class:`ErrorKind`, a short fixed word fit for a
metric label.  The limits are parameters (:class:`Limits`) so the daemon's
configuration can tighten them.  The same limits, in the same functions
(:func:`check_format`, :func:`check_finite`), are the one check of the audio of
every other source too (:func:`check_chunk`): each chunk is checked once, where
it enters the daemon, and the windower takes it as valid.  Receivers should also set ``zmq.MAXMSGSIZE``
to about ``max_frame_bytes`` plus the header cap so libzmq refuses absurd
messages before it buffers them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

VERSION = 1
DTYPES: dict[str, np.dtype[Any]] = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
MAX_STREAM_ID_CHARS = 128
_MAX_STREAM_ID_BYTES = 4 * MAX_STREAM_ID_CHARS  # UTF-8 needs at most 4 bytes a character
_REQUIRED_INT_KEYS = ("sr", "channels", "seq")

BytesLike = bytes | bytearray | memoryview


class ErrorKind(StrEnum):
    """What a source reports through ``sink.error``: a short fixed word, the ``kind`` label of
    ``genretag_source_errors_total`` and, for refused audio, the ``reason`` of
    ``genretag_decode_errors_total``.

    The first group are the reasons of a :class:`FrameError` (a refused message or chunk); the values are a
    public contract (metrics, README), so a member's value never changes.
    """

    PARTS = "parts"
    BAD_STREAM_ID = "bad_stream_id"
    BAD_HEADER = "bad_header"
    BAD_VERSION = "bad_version"
    BAD_DTYPE = "bad_dtype"
    BAD_RATE = "bad_rate"
    BAD_CHANNELS = "bad_channels"
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    ODD_BYTE_COUNT = "odd_byte_count"
    NAN = "nan"
    BAD_AUDIO = "bad_audio"  # a decoded chunk (file, sound card, worker) refused by check_chunk
    DECODE = "decode"  # a file that does not decode
    SEQ_GAP = "seq_gap"  # zmq: messages lost (a seq skipped numbers)
    SEQ_RESTART = "seq_restart"  # zmq: the producer restarted (seq went back)
    RECONNECT = "reconnect"  # url: a new connection attempt
    DEVICE = "device"  # mic: the device failed, stalled or PortAudio is missing
    DEVICE_MISSING = "device_missing"  # mic: no such device (yet)
    OVERFLOW = "overflow"  # mic: the sound card dropped audio
    STREAM_REFUSED = "stream_refused"  # a new stream beyond limits.max_streams
    OTHER_SHARD = "other_shard"  # a stream another daemon of the fleet tags ([fleet]; genretag.daemon.fleet)
    INGEST_WORKER = "ingest_worker"  # zmq: an ingest worker process died
    INGEST_ROUTER = "ingest_router"  # zmq: the ingest router process died

    @property
    def refused_audio(self) -> bool:
        """Audio refused or undecodable: also counted in ``genretag_decode_errors_total``."""
        return self in _REFUSED_AUDIO


#: The FrameError reasons, a file that does not decode and a refused chunk.
_REFUSED_AUDIO = frozenset(
    {
        ErrorKind.PARTS,
        ErrorKind.BAD_STREAM_ID,
        ErrorKind.BAD_HEADER,
        ErrorKind.BAD_VERSION,
        ErrorKind.BAD_DTYPE,
        ErrorKind.BAD_RATE,
        ErrorKind.BAD_CHANNELS,
        ErrorKind.EMPTY,
        ErrorKind.TOO_LARGE,
        ErrorKind.ODD_BYTE_COUNT,
        ErrorKind.NAN,
        ErrorKind.BAD_AUDIO,
        ErrorKind.DECODE,
    }
)


class FrameError(ValueError):
    """A message (or chunk) that is not valid PCM audio; ``reason`` is one of the :class:`ErrorKind` members
    from ``PARTS`` to ``NAN``."""

    def __init__(self, reason: ErrorKind, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """What a receiver accepts; the defaults are the documented format limits."""

    min_sr: int = 8000
    max_sr: int = 192000
    max_channels: int = 8
    max_frame_bytes: int = 1 << 20
    max_header_bytes: int = 1024


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Frame:
    """One decoded message.

    ``samples`` has shape ``(frames, channels)`` and dtype int16 or float32.
    It is a read-only view of the received bytes (no copy), so it keeps the
    message alive; copy it to modify it.
    """

    stream_id: str
    sr: int
    channels: int
    seq: int
    samples: np.ndarray

    @property
    def seconds(self) -> float:
        """Duration of the frame in seconds."""
        return self.samples.shape[0] / self.sr


def check_stream_id(raw: BytesLike | str) -> str:
    """Return the stream id as text, or raise ``FrameError(ErrorKind.BAD_STREAM_ID)``."""
    if isinstance(raw, str):
        text = raw
    else:
        if len(raw) > _MAX_STREAM_ID_BYTES:
            raise FrameError(ErrorKind.BAD_STREAM_ID, f"stream id of {len(raw)} bytes")
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(ErrorKind.BAD_STREAM_ID, "stream id is not UTF-8") from None
    if not 1 <= len(text) <= MAX_STREAM_ID_CHARS:
        raise FrameError(ErrorKind.BAD_STREAM_ID, f"stream id must be 1..{MAX_STREAM_ID_CHARS} characters")
    if not text.isprintable() or any(c.isspace() for c in text):
        raise FrameError(
            ErrorKind.BAD_STREAM_ID, f"stream id {text[:40]!r} holds whitespace or control characters"
        )
    return text


def encode_frame(stream_id: str, pcm: np.ndarray, sr: int, seq: int) -> list[bytes]:
    """Build the three message parts for ``pcm`` (``(frames,)`` or ``(frames, channels)``).

    ``pcm`` must be int16 or float32; it is sent little-endian and interleaved.
    Raises :class:`FrameError` for anything a default receiver would refuse,
    so a producer learns about its mistake before the daemon drops its frames.
    """
    dtype = pcm.dtype.name  # "int16" for either byte order
    if dtype not in DTYPES:
        raise FrameError(ErrorKind.BAD_DTYPE, f"samples must be int16 or float32, not {pcm.dtype}")
    if pcm.ndim not in (1, 2):
        raise FrameError(
            ErrorKind.BAD_CHANNELS, f"expected (frames,) or (frames, channels), got shape {pcm.shape}"
        )
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    header = {"v": VERSION, "sr": sr, "channels": channels, "dtype": dtype, "seq": seq}
    parts = [
        check_stream_id(stream_id).encode("utf-8"),
        json.dumps(header, separators=(",", ":")).encode("ascii"),
        np.ascontiguousarray(pcm, dtype=DTYPES[dtype]).tobytes(),
    ]
    decode_frame(parts)  # one set of rules for both ends
    return parts


def check_format(sr: int, channels: int, limits: Limits) -> None:
    """Refuse a sample rate (``bad_rate``) or channel count (``bad_channels``) outside ``limits``."""
    if not limits.min_sr <= sr <= limits.max_sr:
        raise FrameError(ErrorKind.BAD_RATE, f"sample rate {sr} outside {limits.min_sr}..{limits.max_sr}")
    if not 1 <= channels <= limits.max_channels:
        raise FrameError(ErrorKind.BAD_CHANNELS, f"{channels} channels (allowed 1..{limits.max_channels})")


def check_finite(samples: np.ndarray) -> None:
    """Refuse float samples that hold NaN or Inf (``nan``); int16 samples always pass."""
    if samples.dtype.kind == "f" and not np.isfinite(samples).all():
        raise FrameError(ErrorKind.NAN, f"{int(np.count_nonzero(~np.isfinite(samples)))} NaN/Inf samples")


def check_chunk(samples: np.ndarray, sample_rate: int, limits: Limits) -> None:
    """Refuse a decoded chunk (any source's) that breaks the format's rules or ``limits``.

    ``samples`` must be int16 or float32 (``bad_dtype``), ``(frames,)`` or
    ``(frames, channels)`` (``bad_channels``), at an integer rate; then
    :func:`check_format` and :func:`check_finite`.
    """
    if not isinstance(samples, np.ndarray) or samples.dtype not in (np.int16, np.float32):
        raise FrameError(
            ErrorKind.BAD_DTYPE,
            f"samples must be an int16 or float32 array, "
            f"got {getattr(samples, 'dtype', type(samples).__name__)}",
        )
    if samples.ndim not in (1, 2):
        raise FrameError(
            ErrorKind.BAD_CHANNELS, f"expected (frames,) or (frames, channels), got shape {samples.shape}"
        )
    if not isinstance(sample_rate, int | np.integer):
        raise FrameError(ErrorKind.BAD_RATE, f"sample rate must be an integer, got {sample_rate!r}")
    check_format(int(sample_rate), 1 if samples.ndim == 1 else samples.shape[1], limits)
    check_finite(samples)


def _parse_header(raw: BytesLike, limits: Limits) -> dict[str, Any]:
    if len(raw) > limits.max_header_bytes:
        raise FrameError(
            ErrorKind.BAD_HEADER, f"header of {len(raw)} bytes (limit {limits.max_header_bytes})"
        )
    try:
        header = json.loads(bytes(raw))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise FrameError(ErrorKind.BAD_HEADER, f"header is not JSON: {err}") from None
    if not isinstance(header, dict):
        raise FrameError(ErrorKind.BAD_HEADER, "header is not a JSON object")
    version = header.get("v", VERSION)
    if type(version) is not int or version != VERSION:
        raise FrameError(ErrorKind.BAD_VERSION, f"format version {version!r} (this daemon reads {VERSION})")
    for key in _REQUIRED_INT_KEYS:
        value = header.get(key)
        if type(value) is not int or value < 0:  # bool is an int subclass: refuse it too
            raise FrameError(
                ErrorKind.BAD_HEADER, f"header key {key!r} must be an integer >= 0, got {value!r}"
            )
    if header.get("dtype") not in DTYPES:
        raise FrameError(ErrorKind.BAD_DTYPE, f"dtype {header.get('dtype')!r} (allowed: {', '.join(DTYPES)})")
    check_format(header["sr"], header["channels"], limits)
    return header


def decode_frame(parts: Sequence[BytesLike], limits: Limits = DEFAULT_LIMITS) -> Frame:
    """Validate one received message and view its PCM as an array, without copying.

    ``parts`` are the message parts as bytes or buffers (``zmq.Frame.buffer``
    when receiving with ``copy=False``).  All checks on sizes and the header
    happen before the sample array exists.
    """
    if len(parts) != 3:
        raise FrameError(
            ErrorKind.PARTS, f"expected 3 message parts (stream-id, header, pcm), got {len(parts)}"
        )
    stream_id = check_stream_id(parts[0])
    header = _parse_header(parts[1], limits)
    payload = parts[2]
    dtype, channels = DTYPES[header["dtype"]], header["channels"]
    if len(payload) == 0:
        raise FrameError(ErrorKind.EMPTY, "no PCM bytes")
    if len(payload) > limits.max_frame_bytes:
        raise FrameError(ErrorKind.TOO_LARGE, f"{len(payload)} PCM bytes (limit {limits.max_frame_bytes})")
    if len(payload) % (channels * dtype.itemsize):
        raise FrameError(
            ErrorKind.ODD_BYTE_COUNT,
            f"{len(payload)} bytes is not a whole number of {channels}-channel {header['dtype']} frames",
        )
    samples = np.frombuffer(payload, dtype=dtype).reshape(-1, channels)
    check_finite(samples)
    return Frame(stream_id, header["sr"], channels, header["seq"], samples)


@dataclass(frozen=True)
class SeqCheck:
    """What one ``seq`` said about the messages before it."""

    missed: int
    restart: bool


@dataclass
class SequenceTracker:
    """Per-stream bookkeeping of ``seq``: lost messages and producer restarts.

    A gap is counted and the stream goes on; a ``seq`` that goes back or
    repeats is taken as a restarted producer (a new numbering), never an error,
    so a producer crash cannot take the stream down with it.
    """

    last: int | None = None
    messages: int = 0
    missed: int = 0
    restarts: int = 0

    def observe(self, seq: int) -> SeqCheck:
        """Record a received ``seq``; say how many messages were missed just before it."""
        self.messages += 1
        previous, self.last = self.last, seq
        if previous is None:
            return SeqCheck(0, False)
        if seq <= previous:
            self.restarts += 1
            return SeqCheck(0, True)
        missed = seq - previous - 1
        self.missed += missed
        return SeqCheck(missed, False)
