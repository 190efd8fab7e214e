"""Music-like test signals the project generates itself.

The demo audio bundled with genretag and the synthetic data of the fast tests
come from here, so nothing third-party is redistributed.  The pieces are
deliberately stereotyped: a four-on-the-floor electronic loop and a slow
string-and-piano chord progression.

Run ``python -m genretag.pipeline.synth OUT_DIR`` to (re)make the demo files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

A4 = 440.0


def _midi_hz(note: float) -> float:
    return A4 * 2.0 ** ((note - 69) / 12)


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n, np.float32)
    a, r = min(n, int(attack * sr)), min(n, int(release * sr))
    if a:
        env[:a] = np.linspace(0, 1, a)
    if r:
        env[n - r :] *= np.linspace(1, 0, r)
    return env


def _gated_pad(n: int, sr: int, bpm: float) -> np.ndarray:
    """Detuned saw chords (Am-F-C-G, a bar each) chopped in eighth notes: a trance-gate pad."""
    beat = 60.0 / bpm
    bar = int(4 * beat * sr)
    progression = [[57, 60, 64], [53, 57, 60], [48, 52, 55], [55, 59, 62]]
    pad = np.zeros(n)
    for b, start in enumerate(range(0, n, bar)):
        tt = np.arange(min(bar, n - start)) / sr
        for note in progression[b % 4]:
            for detune in (-0.12, 0.0, 0.12):
                pad[start : start + len(tt)] += (tt * _midi_hz(note + detune)) % 1.0 - 0.5
    gate = ((np.arange(n) / sr / (beat / 2)) % 1.0 < 0.6).astype(float)
    return np.convolve(pad * gate, np.ones(6) / 6, mode="same")


def electronic_loop(seconds: float, sr: int = 22050, bpm: float = 126.0, seed: int = 0) -> np.ndarray:
    """Kick on every beat, open hi-hat off-beats, a saw-wave bass line, a gated synth pad."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    beat = 60.0 / bpm
    t_kick = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-t_kick * 30)) * t_kick) * np.exp(-t_kick * 12)
    hat = rng.standard_normal(int(0.06 * sr)) * np.exp(-np.arange(int(0.06 * sr)) / sr * 60)
    hat = np.diff(hat, prepend=0.0)  # crude high-pass
    bass_notes = [36, 36, 43, 41]
    for i in range(int(seconds / beat) + 1):
        start = int(i * beat * sr)
        for sound, offset, gain in ((kick, 0.0, 0.9), (hat, beat / 2, 0.25)):
            s = start + int(offset * sr)
            if s < n:
                seg = sound[: n - s]
                out[s : s + len(seg)] += gain * seg
        s = start + int(beat / 2 * sr)
        length = min(int(beat / 2 * sr), n - s) if s < n else 0
        if length > 0:
            f = _midi_hz(bass_notes[(i // 4) % 4])
            tt = np.arange(length) / sr
            saw = 2 * ((tt * f) % 1.0) - 1
            out[s : s + length] += 0.3 * saw * _envelope(length, sr, 0.005, 0.05)
    out /= max(1e-9, np.abs(out).max())
    pad = _gated_pad(n, sr, bpm)
    out += 0.35 * pad / max(1e-9, np.abs(pad).max())
    return (0.8 * out / max(1e-9, np.abs(out).max())).astype(np.float32)


def string_chords(seconds: float, sr: int = 22050, seed: int = 0) -> np.ndarray:
    """A slow I-vi-IV-V progression: bowed-string pads plus a plucked arpeggio."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    chords = [[60, 64, 67], [57, 60, 64], [53, 57, 60], [55, 59, 62]]
    chord_len = 2.5
    for i in range(int(np.ceil(seconds / chord_len))):
        s = int(i * chord_len * sr)
        length = min(int(chord_len * sr), n - s)
        if length <= 0:
            break
        tt = np.arange(length) / sr
        env = _envelope(length, sr, 0.4, 0.6)
        for note in chords[i % 4]:
            f = _midi_hz(note - 12)
            vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * tt + rng.uniform(0, 6.28))
            phase = 2 * np.pi * f * np.cumsum(vibrato) / sr
            out[s : s + length] += 0.12 * env * sum(np.sin(k * phase) / k for k in range(1, 7))
        for k, note in enumerate(chords[i % 4] * 2):
            ps = s + int(k * chord_len / 6 * sr)
            plen = min(int(0.8 * sr), n - ps)
            if plen <= 0:
                continue
            pt = np.arange(plen) / sr
            f = _midi_hz(note + 12)
            out[ps : ps + plen] += (
                0.15 * np.exp(-pt * 4) * (np.sin(2 * np.pi * f * pt) + 0.3 * np.sin(4 * np.pi * f * pt))
            )
    return (0.8 * out / max(1e-9, np.abs(out).max())).astype(np.float32)


def write_demo(out_dir: Path, sr: int = 22050, seconds: float = 12.0) -> list[Path]:
    """Write the bundled demo clips as FLAC files; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, signal in (
        ("demo-electronic.flac", electronic_loop(seconds, sr, bpm=128.0)),
        ("demo-strings.flac", string_chords(seconds, sr)),
    ):
        path = out_dir / name
        sf.write(path, signal, sr, subtype="PCM_16")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_demo(Path(sys.argv[1] if len(sys.argv) > 1 else "cli/demo")):
        print(p)
