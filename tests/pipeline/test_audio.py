"""Decoding odd formats, rates and channel layouts; clear errors for bad files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genretag.pipeline.audio import (
    AudioDecodeError,
    decode,
    float_to_int16,
    int16_to_float,
    resample,
    to_mono,
)

TONE_HZ = 440.0


def _tone(sr: int, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    mono = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    return np.stack([mono] * channels, axis=1).astype(np.float32)


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize(
    ("suffix", "sr", "channels", "subtype"),
    [
        (".wav", 8000, 2, "PCM_16"),
        (".wav", 96000, 6, "PCM_24"),
        (".flac", 44100, 1, "PCM_16"),
        (".ogg", 48000, 2, "VORBIS"),
        (".au", 11025, 1, "PCM_16"),
        (".wav", 32000, 1, "FLOAT"),
    ],
)
def test_decode_formats_rates_channels(
    tmp_path: Path, suffix: str, sr: int, channels: int, subtype: str
) -> None:
    path = tmp_path / f"tone{suffix}"
    sf.write(path, _tone(sr, 1.0, channels), sr, subtype=subtype)
    out = decode(path, 22050)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 22050) < 50
    assert abs(_dominant_hz(out, 22050) - TONE_HZ) < 5


@pytest.mark.parametrize("suffix", [".mp3", ".m4a"])
def test_decode_compressed_via_ffmpeg_or_libsndfile(tmp_path: Path, suffix: str) -> None:
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg must be installed (.ci/run installs it)"
    wav = tmp_path / "src.wav"
    sf.write(wav, _tone(44100, 2.0, 2), 44100)
    out_path = tmp_path / f"tone{suffix}"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(wav), str(out_path)], check=True)
    out = decode(out_path, 16000)
    assert abs(len(out) / 16000 - 2.0) < 0.1
    assert abs(_dominant_hz(out, 16000) - TONE_HZ) < 5


def test_max_seconds_limits_reading(tmp_path: Path) -> None:
    path = tmp_path / "long.flac"
    sf.write(path, _tone(22050, 5.0, 1), 22050)
    assert len(decode(path, 22050, max_seconds=1.5)) == int(1.5 * 22050)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"ID3\x03\x00garbage" * 10, "ffmpeg failed"),
        (b"RIFF\x10\x00\x00\x00WAVE", "bad.mp3"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=reason):
        decode(path, 22050)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="no such file"):
        decode(tmp_path / "nope.wav", 22050)


def test_nan_samples_are_refused(tmp_path: Path) -> None:
    x = _tone(8000, 0.5, 1)
    x[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        decode(path, 8000)


def test_int16_round_trip_and_clipping() -> None:
    x = np.array([0.0, 0.5, -0.5, 1.5, -1.5], np.float32)
    back = int16_to_float(float_to_int16(x))
    assert np.allclose(back, np.clip(x, -1, 1), atol=1 / 32767)


def test_mono_and_resample_shapes() -> None:
    stereo = np.stack([np.ones(100), -np.ones(100)], axis=1).astype(np.float32)
    assert np.allclose(to_mono(stereo), 0)
    assert len(resample(np.zeros(44100, np.float32), 44100, 16000)) == 16000
