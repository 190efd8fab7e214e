"""Small generated audio corpora for the dataset builder and reader tests.

Every format the builder must read (8 kHz stereo WAV, 44.1 kHz FLAC, Ogg
Vorbis, MP3 made by ffmpeg, Sun .au) plus the broken files it must skip (zero
bytes, random bytes named .mp3, a truncated WAV header, text named .flac,
a missing file).  Clips differ in pitch so a mix-up between records shows.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from helpers.bad_inputs import write_mp3

DATASET_SR = 16000  # dataset sample rate used by the tests (fast to decode and resample)


def tone(seconds: float, sr: int, freq: float, channels: int = 1) -> np.ndarray:
    """A quiet sine plus a little noise, shape (frames, channels), float32."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(int(freq))
    sig = 0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
    return np.repeat(sig[:, None], channels, axis=1).astype(np.float32)


def write_audio(path: Path, kind: str, seconds: float = 1.0, freq: float = 440.0) -> Path:
    """Write a clip as ``kind``: wav8k_stereo, flac44k, ogg, mp3, au."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "wav8k_stereo":
        sf.write(path, tone(seconds, 8000, freq, 2), 8000, format="WAV", subtype="PCM_16")
    elif kind == "flac44k":
        sf.write(path, tone(seconds, 44100, freq), 44100, format="FLAC", subtype="PCM_16")
    elif kind == "ogg":
        sf.write(path, tone(seconds, 22050, freq), 22050, format="OGG", subtype="VORBIS")
    elif kind == "au":
        sf.write(path, tone(seconds, 16000, freq), 16000, format="AU", subtype="PCM_16")
    elif kind == "mp3":
        write_mp3(path, tone(seconds, 22050, freq), 22050)
    else:
        raise ValueError(kind)
    return path


def write_corrupt(path: Path, kind: str) -> Path:
    """Write a broken file: empty, random (bytes), truncated_wav (header only), text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "truncated_wav":
        good = path.with_suffix(".good.wav")
        sf.write(good, tone(0.5, 8000, 300.0), 8000, subtype="PCM_16")
        path.write_bytes(good.read_bytes()[:30])
        good.unlink()
    elif kind == "text":
        path.write_text("this is not audio\n" * 20)
    else:
        raise ValueError(kind)
    return path


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write a manifest CSV with the union of the rows' columns."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


# (relative path, kind, labels, artist, seconds); six artists, one two-label clip,
# one clip shorter than a 3 s window (for the tiling tests).
GOOD_CLIPS = [
    ("audio/rock/r1.wav", "wav8k_stereo", "rock", "Artist A", 1.5),
    ("audio/rock/r2.flac", "flac44k", "rock", "Artist A", 1.0),
    ("audio/rock/r3.ogg", "ogg", "rock", "Artist B", 4.0),
    ("audio/pop/p1.mp3", "mp3", "pop", "Artist C", 1.0),
    ("audio/pop/p2.au", "au", "pop", "Artist C", 5.0),
    ("audio/pop/p3.wav", "wav8k_stereo", "pop;rock", "Artist D", 1.0),
    ("audio/jazz/j1.flac", "flac44k", "jazz", "Artist E", 1.2),
    ("audio/jazz/j2.ogg", "ogg", "jazz", "Artist E", 1.0),
    ("audio/jazz/j3.au", "au", "jazz", "Artist F", 1.0),
    ("audio/jazz/j4.MP3", "mp3", "jazz", "Artist F", 1.0),
]
BAD_CLIPS = {
    "audio/bad/empty.wav": "empty",
    "audio/bad/noise.mp3": "random",
    "audio/bad/truncated.wav": "truncated_wav",
    "audio/bad/text.flac": "text",
}
MISSING_CLIP = "audio/bad/missing.wav"


def make_corpus(root: Path) -> Path:
    """Write GOOD_CLIPS, BAD_CLIPS and a manifest (no split column) naming them all
    plus a missing file; return the manifest path."""
    rows = []
    for i, (rel, kind, labels, artist, seconds) in enumerate(GOOD_CLIPS):
        write_audio(root / rel, kind, seconds, freq=220.0 + 55.0 * i)
        rows.append({"path": rel, "labels": labels, "artist": artist})
    for rel, kind in BAD_CLIPS.items():
        write_corrupt(root / rel, kind)
        rows.append({"path": rel, "labels": "rock", "artist": "Bad Artist"})
    rows.append({"path": MISSING_CLIP, "labels": "pop", "artist": "Bad Artist"})
    return write_manifest(root / "manifest.csv", rows)


FMA_HEADER = [
    ["", "album", "artist", "artist", "set", "set", "track", "track"],
    ["", "id", "id", "name", "split", "subset", "genre_top", "title"],
    ["track_id", "", "", "", "", "", "", ""],
]


def write_fma(
    root: Path,
    tracks: list[tuple[int, int, str, str, str]],
    audio: str = "fma_small",
    missing: tuple[int, ...] = (),
) -> Path:
    """Write a fake FMA layout: tracks.csv with the real 3-row header (two column
    levels plus the ``track_id`` index row, as pandas writes it) and a 0.5 s
    mp3 for each ``small`` track except ``missing``.  Track rows are
    (track_id, artist_id, split, subset, genre_top)."""
    meta = root / "fma_metadata"
    meta.mkdir(parents=True)
    with (meta / "tracks.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerows(FMA_HEADER)
        for tid, artist, split, subset, genre in tracks:
            writer.writerow(
                [
                    tid,
                    1,
                    artist,
                    f"artist {artist}",
                    split,
                    subset,
                    genre,
                    "a title, with a comma\nand a newline",
                ]
            )
            if subset == "small" and tid not in missing:
                name = f"{tid:06d}"
                write_audio(root / audio / name[:3] / f"{name}.mp3", "mp3", 0.5, 200 + tid)
    return root
