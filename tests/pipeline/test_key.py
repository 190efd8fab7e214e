"""The rolling key tracker on synthesised progressions in known keys, real GTZAN clips and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genretag.pipeline.key import (
    NO_KEY,
    PITCH_CLASSES,
    KeyTracker,
    estimate_key,
    fold_chroma,
    key_correlations,
    key_templates,
    tuning_cents,
)
from genretag.pipeline.synth import string_chords

SR = 22050
#: chords as semitones above the tonic: I-IV-V-I-vi-ii-V-I and i-iv-V-i-VI-iv-V-i (harmonic minor V)
PROGRESSIONS = {
    "major": [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7), (9, 12, 16), (2, 5, 9), (7, 11, 14), (0, 4, 7)],
    "minor": [(0, 3, 7), (5, 8, 12), (7, 11, 14), (0, 3, 7), (8, 12, 15), (5, 8, 12), (7, 11, 14), (0, 3, 7)],
}


def progression(tonic: int, mode: str, seconds: float = 16.0, sr: int = SR, cents: float = 0.0) -> np.ndarray:
    """Chords of harmonic tones (six partials, 1/k) with the root an octave down as bass, 1 s each."""
    n = int(seconds * sr)
    out = np.zeros(n)
    t = np.arange(sr) / sr
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-t * 1.5)
    for i in range(int(np.ceil(seconds))):
        chord = PROGRESSIONS[mode][i % 8]
        notes = [48 + tonic + chord[0]] + [60 + tonic + c for c in chord]
        tone = sum(
            np.sin(2 * np.pi * k * 440.0 * 2 ** ((m - 69 + cents / 100) / 12) * t) / k
            for m in notes
            for k in range(1, 7)
        )
        s = i * sr
        out[s : s + sr] = (envelope * tone)[: n - s]
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


@pytest.mark.parametrize("mode", ["major", "minor"])
@pytest.mark.parametrize("tonic", [0, 2, 7, 9, 10])
def test_a_progression_gives_its_key(tonic: int, mode: str) -> None:
    estimate = estimate_key(progression(tonic, mode), SR)
    assert (estimate.tonic, estimate.mode) == (PITCH_CLASSES[tonic], mode), estimate
    assert estimate.name == f"{PITCH_CLASSES[tonic]} {mode}"
    assert estimate.confidence > 0.1


def test_the_demo_string_chords_are_in_c_major() -> None:
    assert estimate_key(string_chords(20.0, SR), SR).name == "C major"


def test_a_detuned_recording_keeps_its_key_and_the_tuning_is_read() -> None:
    tracker = KeyTracker(SR)
    tracker.push(progression(4, "major", cents=40.0))  # E major, 40 cents sharp: nearer F than E
    assert tracker.finish().name == "E major"
    assert tracker.tuning_cents == pytest.approx(40.0, abs=5.0)


def test_tuning_and_folding_of_a_fine_chroma() -> None:
    fine = np.zeros(120)
    fine[[3, 73]] = 1.0  # C and G, both 30 cents sharp
    assert tuning_cents(fine) == pytest.approx(30.0, abs=0.5)
    chroma = fold_chroma(fine, 30.0)
    assert chroma[0] == pytest.approx(1.0) and chroma[7] == pytest.approx(1.0)
    assert chroma.sum() == pytest.approx(2.0)


def test_templates_correlate_with_their_own_key() -> None:
    templates = key_templates("krumhansl")
    assert np.argmax(key_correlations(templates[21], templates)) == 21  # A minor
    with pytest.raises(ValueError, match="unknown key profile"):
        key_templates("nonesuch")


@pytest.mark.parametrize("sr", [16000, 44100])
def test_other_sample_rates(sr: int) -> None:
    assert estimate_key(progression(5, "major", sr=sr), sr).name == "F major"


def test_streaming_in_odd_blocks_equals_one_batch() -> None:
    signal = progression(11, "minor", seconds=20.0)
    batch = estimate_key(signal, SR)
    tracker = KeyTracker(SR)
    sizes = np.random.default_rng(5).integers(1, 30000, 64)
    start, i = 0, 0
    while start < signal.size:
        tracker.push(signal[start : start + int(sizes[i % 64])])
        start, i = start + int(sizes[i % 64]), i + 1
    streamed = tracker.finish()
    assert streamed.name == batch.name == "B minor"
    assert streamed.confidence == pytest.approx(batch.confidence, abs=1e-9)
    assert streamed.seconds == pytest.approx(batch.seconds)


def test_updates_come_every_few_seconds_and_follow_a_key_change() -> None:
    tracker = KeyTracker(SR, context_seconds=16.0, update_seconds=2.0)
    updates = [tracker.push(block) for block in np.split(progression(0, "major", 16.0), 32)]
    seen = [u for u in updates if u is not None]
    assert 7 <= len(seen) <= 9  # 1.86 s apart at 22.05 kHz (5 frames of 0.37 s)
    assert seen[0] == NO_KEY and seen[-1].name == "C major"
    for block in np.split(progression(3, "major", 16.0), 32):
        tracker.push(block)
    assert tracker.finish().name == "D# major"


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param(np.zeros(SR * 10, np.float32), id="silence"),
        pytest.param(np.full(SR * 10, np.nan, np.float32), id="all-nan"),
        pytest.param(np.full(SR * 10, -np.inf, np.float32), id="all-inf"),
        pytest.param(progression(0, "major", 1.5), id="too-short"),
        pytest.param(np.zeros(0, np.float32), id="empty"),
    ],
)
def test_bad_input_gives_no_key_and_zero_confidence(signal: np.ndarray) -> None:
    estimate = estimate_key(signal, SR)
    assert estimate.tonic is None and estimate.mode is None and estimate.name is None
    assert estimate.confidence == 0.0


def test_nothing_before_min_seconds() -> None:
    tracker = KeyTracker(SR, update_seconds=1.0, min_seconds=3.0)
    assert tracker.push(progression(0, "major", 2.0)) == NO_KEY
    assert tracker.estimate == NO_KEY


def test_a_nan_burst_counts_as_silence_and_the_key_survives() -> None:
    signal = progression(7, "major")
    signal[SR * 4 : SR * 4 + 5000] = np.nan
    tracker = KeyTracker(SR)
    tracker.push(signal)
    assert tracker.finish().name == "G major"
    assert tracker.chroma.stft.bad_samples == 5000


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="sample rate"):
        KeyTracker(-1)
    with pytest.raises(ValueError, match="update_seconds"):
        KeyTracker(SR, update_seconds=0.0)
    with pytest.raises(ValueError, match="mono"):
        KeyTracker(SR).push(np.zeros((2, 100), np.float32))


#: clips whose key the tracker names exactly on both references
REAL_CLIPS = ("country/country.00003.mp3", "metal/metal.00000.mp3", "reggae/reggae.00000.mp3")


def test_real_gtzan_clips_streamed_in_half_second_blocks(
    shared_music: Path, gtzan_references: dict[str, dict[str, str]]
) -> None:
    from genretag.pipeline.audio import decode

    references = gtzan_references
    for clip in REAL_CLIPS:
        tracker = KeyTracker(SR)
        for block in np.array_split(decode(shared_music / "audio" / "gtzan" / clip, SR), 60):
            tracker.push(block)
        estimate = tracker.finish()
        assert estimate.name == references[clip]["key"] == references[clip]["key_alt"], (clip, estimate)
