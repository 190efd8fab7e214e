"""Decoding and sample-format conversion shared by training and serving.

Everything returns float32 mono in [-1, 1] at a caller-chosen rate, so the
training side and the daemon cannot drift apart on how audio is read.
Decoding tries soundfile (libsndfile: wav, flac, ogg, mp3, au, ...) first and
falls back to an ffmpeg subprocess for anything libsndfile refuses (AAC, odd
MP3s, containers).  Every failure is an :class:`AudioDecodeError` with a reason
a person can act on; libmpg123's notes on MP3s that decode fine are kept off
stderr (:mod:`genretag.pipeline.native_stderr`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from genretag.pipeline.native_stderr import MPG123_NOTE, dropping

INT16_SCALE = 32767.0
MPEG_SUFFIXES = (".mp3", ".mp2", ".mpga", ".mpeg")


class AudioDecodeError(Exception):
    """A file could not be turned into audio samples; ``str(err)`` says why."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Down-mix ``(frames, channels)`` audio to ``(frames,)`` by averaging channels."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ValueError(f"expected (frames,) or (frames, channels) audio, got shape {samples.shape}")
    return samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a whole signal with soxr (high quality); a no-op when the rates match."""
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if sr_in == sr_out or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples.astype(np.float32, copy=False), sr_in, sr_out, quality="HQ")


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] and quantise to int16 (the on-disk format of TFRecord shards)."""
    return np.round(np.clip(samples, -1.0, 1.0) * INT16_SCALE).astype(np.int16)


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    """Inverse of :func:`float_to_int16`."""
    return samples.astype(np.float32) / INT16_SCALE


def check_finite(samples: np.ndarray, what: str) -> np.ndarray:
    """Raise :class:`AudioDecodeError` if the signal holds NaN or Inf samples."""
    if not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioDecodeError(f"{what}: {bad} NaN/Inf samples")
    return samples


BLOCK_SECONDS = 10.0  # decoded audio held at a time by stream_decode


def read_blocks(handle: sf.SoundFile, block_frames: int, limit: int | None = None) -> Iterator[np.ndarray]:
    """float32 ``(frames, channels)`` blocks of an open file, at its own rate, until it really ends.

    Reads until libsndfile returns nothing instead of using ``SoundFile.blocks``,
    which trusts the header's frame count and pads a truncated file (an MP3 whose
    Xing header promises 20 s but holds 6) with zeros.  ``limit``: frames at most.
    """
    left = limit
    mp3 = handle.format == "MP3"
    while left is None or left > 0:
        with dropping(MPG123_NOTE) if mp3 else nullcontext():  # libmpg123's notes on good MP3s
            block = handle.read(
                block_frames if left is None else min(block_frames, left), dtype="float32", always_2d=True
            )
        if len(block) == 0:
            return
        if left is not None:
            left -= len(block)
        yield block


def _soundfile_blocks(
    handle: sf.SoundFile, sr: int, block_seconds: float, max_seconds: float | None
) -> Iterator[np.ndarray]:
    """Mono blocks of an open libsndfile handle, resampled to ``sr`` by one streaming soxr
    resampler (the same samples as resampling the whole signal at once)."""
    native = int(handle.samplerate)
    limit = None if max_seconds is None else int(max_seconds * native)
    resampler = None if native == sr else soxr.ResampleStream(native, sr, 1, dtype="float32", quality="HQ")
    for block in read_blocks(handle, max(1, int(block_seconds * native)), limit):
        mono = to_mono(block)
        yield mono if resampler is None else resampler.resample_chunk(mono)
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def _ffmpeg_reason(stderr: bytes, path: Path, returncode: int) -> str:
    """ffmpeg's complaint without the noise: ``[mp3 @ 0x55...]`` prefixes and the repeated path."""
    lines = [
        re.sub(r"^\[[^]]* @ 0x[0-9a-f]+\] ", "", line).removeprefix(f"{path}: ").strip()
        for line in stderr.decode(errors="replace").splitlines()
    ]
    lines = [line for line in lines if line]
    return "; ".join(lines[-2:]) if lines else f"exit status {returncode}"


def _ffmpeg_blocks(
    path: Path, sr: int, block_seconds: float, max_seconds: float | None
) -> Iterator[np.ndarray]:
    """Mono blocks at ``sr`` read from an ffmpeg subprocess's pipe as it decodes.

    Its stderr goes to a temporary file, not a pipe, so a chatty decoder can
    never fill a pipe nobody reads and stall; the process is killed if the
    caller stops early.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioDecodeError(f"{path}: libsndfile cannot read it and ffmpeg is not installed")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path)]
    if max_seconds is not None:
        cmd += ["-t", f"{max_seconds:.3f}"]
    cmd += ["-vn", "-f", "f32le", "-ac", "1", "-ar", str(sr), "-"]
    block_bytes = 4 * max(1, int(block_seconds * sr))
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        try:
            tail = b""
            while data := proc.stdout.read(block_bytes):
                data, tail = tail + data, b""
                whole = len(data) - len(data) % 4
                data, tail = data[:whole], data[whole:]
                yield np.frombuffer(data, dtype="<f4").copy()
            if proc.wait() != 0:
                errors.seek(0)
                reason = _ffmpeg_reason(errors.read(), path, proc.returncode)
                raise AudioDecodeError(f"{path}: ffmpeg failed (not audio, or damaged): {reason}")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()


def stream_decode(
    path: str | os.PathLike[str],
    sr: int,
    max_seconds: float | None = None,
    block_seconds: float = BLOCK_SECONDS,
) -> Iterator[np.ndarray]:
    """Decode ``path`` to float32 mono blocks at ``sr`` Hz, holding one block at a time.

    A two-hour file costs the memory of ``block_seconds`` of audio, not of two
    hours, so whole-file consumers (``classify``, the daemon's ``file:``
    source) stay flat whatever the length.  Concatenated, the blocks are the
    samples :func:`decode` returns.

    libsndfile reads what it can open; anything it refuses goes through ffmpeg.
    A file that libsndfile opens but fails on before yielding anything is
    retried with ffmpeg too; a failure later, or NaN/Inf samples in any block,
    raises :class:`AudioDecodeError` (blocks already yielded stay valid).
    """
    p = _check_file(path)
    try:
        with dropping(MPG123_NOTE) if p.suffix.lower() in MPEG_SUFFIXES else nullcontext():
            handle = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        blocks = _ffmpeg_blocks(p, sr, block_seconds, max_seconds)
    else:
        blocks = _soundfile_first(handle, p, sr, block_seconds, max_seconds)
    yielded = 0.0
    for block in blocks:
        check_finite(block, f"{p} (at {yielded:.1f} s)")
        yielded += block.size / sr
        yield block


def _soundfile_first(
    handle: sf.SoundFile, path: Path, sr: int, block_seconds: float, max_seconds: float | None
) -> Iterator[np.ndarray]:
    """libsndfile's blocks; if it fails before the first one, ffmpeg's instead."""
    started = False
    try:
        with handle:
            for block in _soundfile_blocks(handle, sr, block_seconds, max_seconds):
                started = True
                yield block
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        if started:
            raise AudioDecodeError(f"{path}: decoding failed part-way: {err}") from None
        yield from _ffmpeg_blocks(path, sr, block_seconds, max_seconds)


def _check_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise AudioDecodeError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise AudioDecodeError(f"{p}: empty file (0 bytes)")
    return p


def decode(path: str | os.PathLike[str], sr: int, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` to float32 mono at ``sr`` Hz, all in memory (see :func:`stream_decode`).

    Parameters
    ----------
    path : file of any format libsndfile or ffmpeg reads.
    sr : target sample rate in Hz.
    max_seconds : read at most this many seconds from the start (None: all).

    Raises
    ------
    AudioDecodeError
        The file is missing, empty, unreadable, holds no samples, or holds
        NaN/Inf samples.
    """
    blocks = list(stream_decode(path, sr, max_seconds))
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioDecodeError(f"{path}: decodes to no audio samples")
    return samples
