"""The rolling tempo tracker on synthesised rhythms of known tempo, real GTZAN clips and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genretag.pipeline.synth import electronic_loop
from genretag.pipeline.tempo import NO_TEMPO, TempoTracker, estimate_tempo

SR = 22050


def click_track(bpm: float, seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Clicks (decaying 1.5 kHz blips, the first of each bar louder) over a little noise."""
    rng = np.random.default_rng(seed)
    out = 0.01 * rng.standard_normal(int(seconds * sr)).astype(np.float32)
    t = np.arange(int(0.03 * sr)) / sr
    click = np.sin(2 * np.pi * 1500 * t) * np.exp(-t * 150)
    for i, start in enumerate(np.arange(0.0, seconds, 60.0 / bpm)):
        s = int(start * sr)
        seg = click[: out.size - s]
        out[s : s + seg.size] += (1.0 if i % 4 == 0 else 0.6) * seg
    return out


def feed(tracker: TempoTracker, signal: np.ndarray, sizes: np.ndarray) -> list:
    """Push ``signal`` in blocks of the given sizes (cycled); the estimates the pushes returned."""
    out, start, i = [], 0, 0
    while start < signal.size:
        size = int(sizes[i % len(sizes)])
        result = tracker.push(signal[start : start + size])
        if result is not None:
            out.append(result)
        start, i = start + size, i + 1
    return out


def within(estimate: float | None, bpm: float, tolerance: float = 0.04) -> bool:
    return estimate is not None and abs(estimate - bpm) <= tolerance * bpm


@pytest.mark.parametrize("bpm", [84.0, 100.0, 120.0, 138.0])
def test_a_click_track_gives_its_tempo(bpm: float) -> None:
    estimate = estimate_tempo(click_track(bpm, 20.0), SR)
    assert within(estimate.bpm, bpm), estimate
    assert estimate.confidence > 0.1  # the half tempo is a near rival: a click has no bars


@pytest.mark.parametrize("bpm", [96.0, 126.0, 140.0])
def test_an_electronic_loop_gives_its_tempo(bpm: float) -> None:
    estimate = estimate_tempo(electronic_loop(20.0, SR, bpm=bpm), SR)
    assert within(estimate.bpm, bpm), estimate


@pytest.mark.parametrize("sr", [16000, 44100])
def test_other_sample_rates(sr: int) -> None:
    estimate = estimate_tempo(click_track(110.0, 15.0, sr), sr)
    assert within(estimate.bpm, 110.0), estimate


def test_streaming_in_odd_blocks_equals_one_batch() -> None:
    signal = electronic_loop(24.0, SR, bpm=118.0)
    batch = estimate_tempo(signal, SR)
    tracker = TempoTracker(SR)
    feed(tracker, signal, np.random.default_rng(3).integers(1, 20000, 64))
    streamed = tracker.finish()
    assert streamed.bpm == pytest.approx(batch.bpm, rel=1e-6)
    assert streamed.confidence == pytest.approx(batch.confidence, abs=1e-5)
    assert streamed.seconds == pytest.approx(batch.seconds)


def test_every_update_is_seen_whatever_the_block_size() -> None:
    """Blocks shorter than the update interval see every update, at the same instants, same values."""
    signal = click_track(128.0, 16.0)
    tiny = feed(TempoTracker(SR, update_seconds=2.0), signal, np.array([441]))
    second = feed(TempoTracker(SR, update_seconds=2.0), signal, np.array([SR]))
    assert [e.seconds for e in tiny] == [e.seconds for e in second]
    assert len(tiny) == 7  # updates at 2, 4, ... 14 s (16 s has one frame too few)
    assert tiny[0] == NO_TEMPO  # 2 s is under min_seconds
    assert [e.bpm for e in tiny] == pytest.approx([e.bpm for e in second], rel=1e-6)
    assert within(tiny[-1].bpm, 128.0)


def test_the_context_forgets_an_earlier_tempo() -> None:
    tracker = TempoTracker(SR, context_seconds=10.0)
    tracker.push(click_track(90.0, 20.0))
    tracker.push(click_track(140.0, 14.0, seed=1))
    assert within(tracker.finish().bpm, 140.0)


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param(np.zeros(SR * 10, np.float32), id="silence"),
        pytest.param(np.full(SR * 10, np.nan, np.float32), id="all-nan"),
        pytest.param(np.full(SR * 10, np.inf, np.float32), id="all-inf"),
        pytest.param(click_track(120.0, 3.0), id="too-short"),
        pytest.param(np.zeros(0, np.float32), id="empty"),
        pytest.param(np.full(SR * 10, 0.5, np.float32), id="dc"),
    ],
)
def test_bad_input_gives_no_tempo_and_zero_confidence(signal: np.ndarray) -> None:
    estimate = estimate_tempo(signal, SR)
    assert estimate.bpm is None
    assert estimate.confidence == 0.0


def test_a_nan_burst_counts_as_silence_and_the_tempo_survives() -> None:
    signal = click_track(120.0, 20.0)
    signal[SR * 5 : SR * 5 + 1000] = np.nan
    tracker = TempoTracker(SR)
    tracker.push(signal)
    assert within(tracker.finish().bpm, 120.0)
    assert tracker.onset.stft.bad_samples == 1000


def test_white_noise_is_not_confident() -> None:
    noise = np.random.default_rng(0).standard_normal(SR * 20).astype(np.float32) * 0.1
    assert estimate_tempo(noise, SR).confidence < estimate_tempo(click_track(120.0, 20.0), SR).confidence / 3


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="sample rate"):
        TempoTracker(0)
    with pytest.raises(ValueError, match="min_seconds"):
        TempoTracker(SR, context_seconds=4.0, min_seconds=5.0)
    with pytest.raises(ValueError, match="mono"):
        TempoTracker(SR).push(np.zeros((100, 2), np.float32))


#: clips whose tempo the tracker finds (Accuracy1) on both references, with clear rhythm
REAL_CLIPS = ("country/country.00003.mp3", "metal/metal.00000.mp3", "reggae/reggae.00000.mp3")


def test_real_gtzan_clips_streamed_in_half_second_blocks(
    shared_music: Path, gtzan_references: dict[str, dict[str, str]]
) -> None:
    from genretag.pipeline.audio import decode

    references = gtzan_references
    for clip in REAL_CLIPS:
        tracker = TempoTracker(SR)
        feed(tracker, decode(shared_music / "audio" / "gtzan" / clip, SR), np.array([SR // 2]))
        estimate = tracker.finish()
        assert within(estimate.bpm, float(references[clip]["bpm"])), (clip, estimate)
        assert within(estimate.bpm, float(references[clip]["percival2014_bpm"])), (clip, estimate)
