"""Decoding and sample-format conversion shared by training and serving.

Everything returns float32 mono in [-1, 1] at a caller-chosen rate, so the
training side and the daemon cannot drift apart on how audio is read.
Decoding tries soundfile (libsndfile: wav, flac, ogg, mp3, au, ...) first and
falls back to an ffmpeg subprocess for anything libsndfile refuses (AAC, odd
MP3s, containers).  Every failure is an :class:`AudioDecodeError` with a reason
a person can act on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

INT16_SCALE = 32767.0


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


def _decode_soundfile(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(path)) as f:
        frames = -1 if max_seconds is None else int(max_seconds * f.samplerate)
        data = f.read(frames=frames, dtype="float32", always_2d=True)
        return to_mono(data), int(f.samplerate)


def _decode_ffmpeg(path: Path, sr: int, max_seconds: float | None) -> np.ndarray:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioDecodeError(f"{path}: libsndfile cannot read it and ffmpeg is not installed")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path)]
    if max_seconds is not None:
        cmd += ["-t", f"{max_seconds:.3f}"]
    cmd += ["-vn", "-f", "f32le", "-ac", "1", "-ar", str(sr), "-"]
    proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioDecodeError(f"{path}: ffmpeg failed: {reason[-1] if reason else proc.returncode}")
    return np.frombuffer(proc.stdout, dtype="<f4").copy()


def decode(path: str | os.PathLike[str], sr: int, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` to float32 mono at ``sr`` Hz.

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
    p = Path(path)
    if not p.is_file():
        raise AudioDecodeError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise AudioDecodeError(f"{p}: empty file (0 bytes)")
    try:
        samples, native_sr = _decode_soundfile(p, max_seconds)
        samples = resample(samples, native_sr, sr)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        samples = _decode_ffmpeg(p, sr, max_seconds)
    if samples.size == 0:
        raise AudioDecodeError(f"{p}: decodes to no audio samples")
    return check_finite(samples, str(p))
