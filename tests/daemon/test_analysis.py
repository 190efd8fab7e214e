"""Per-stream analysis beside genre: the speech gate, held windows, mood, tags, tempo and key over windows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from genretag.daemon.analysis import AnalysisSetup, SpeechGate, StreamAnalysis, TrackingBudget
from genretag.daemon.config import AnalysisConfig, SmoothingConfig
from genretag.daemon.stream import Window
from genretag.pipeline.key import KeyTracker
from genretag.pipeline.tempo import TempoTracker
from genretag.pipeline.windows import WindowSpec, frame_windows

SR = 16000
SPEC = WindowSpec(SR, 2.976, 1.5)
HEADS = {
    "speech": ["music", "speech"],
    "mood": ["happy", "tense", "sad", "calm"],
    "tags": ["vocals", "guitar"],
}


def click_track(seconds: float, bpm: float) -> np.ndarray:
    """Short decaying noise bursts on the beat."""
    audio = np.zeros(int(seconds * SR), np.float32)
    burst = np.random.default_rng(1).standard_normal(400).astype(np.float32) * np.exp(-np.arange(400) / 80)
    for start in (np.arange(0, seconds, 60.0 / bpm) * SR).astype(int):
        audio[start : start + 400] += burst[: audio.size - start]
    return 0.5 * audio


def setup(**analysis: object) -> AnalysisSetup:
    config = replace(AnalysisConfig(), **analysis)  # type: ignore[arg-type]
    return AnalysisSetup(config, SmoothingConfig(), HEADS, SR, SPEC.hop_seconds)


def heads(p_speech: float, mood: int = 0) -> dict[str, np.ndarray]:
    return {
        "speech": np.array([1 - p_speech, p_speech], np.float32),
        "mood": np.eye(4, dtype=np.float32)[mood] * 0.7 + 0.075,
        "tags": np.array([0.9, 0.1], np.float32),
    }


def window(pos: float, samples: np.ndarray | None = None) -> Window:
    audio = np.zeros(SPEC.window_samples, np.float32) if samples is None else samples
    return Window(audio, pos, 0.0, False)


def test_speech_gate_switches_after_windows_in_a_row_only() -> None:
    gate = SpeechGate(0.5, windows=2)
    changes = [gate.update(p) for p in (0.9, 0.1, 0.9, 0.8, 0.7, 0.2, 0.9, 0.1, 0.3)]
    assert changes == [False, False, False, True, False, False, False, False, True]
    assert not gate.active
    with pytest.raises(ValueError):
        SpeechGate(1.0)


def test_talk_windows_are_held_and_feed_nothing() -> None:
    stream = StreamAnalysis(setup(tempo=False, key=False))
    seen = [stream.update(window(1.5 * i), heads(p, mood=2)) for i, p in enumerate((0.1,) * 5)]
    assert not any(s.held for s in seen) and seen[-1].mood is not None
    assert stream.mood_result is not None and stream.mood_result.label == "sad"
    talk = [stream.update(window(9.0), heads(0.95, mood=0))]
    before = stream.tags.copy() if stream.tags is not None else None
    talk += [stream.update(window(9 + 1.5 * i), heads(0.95, mood=0)) for i in range(1, 6)]
    # The state enters speech with the second talk window, and from it every window is held; the first
    # is not (a lone window taken for talk must not hold a music stream's genre).
    assert [s.held for s in talk] == [False, True, True, True, True, True]
    assert [s.state for s in talk] == [None, "speech", None, None, None, None]
    assert all(s.mood is None for s in talk[1:]) and stream.mood_result.label == "sad"
    assert before is not None and np.array_equal(stream.tags, before)
    back = [stream.update(window(20 + 1.5 * i), heads(0.05, mood=2)) for i in range(3)]
    # The first music window is still held (the state is speech); the second leaves it.
    assert [s.held for s in back] == [True, False, False] and back[1].state == "music"
    stream.reset()
    assert not stream.in_speech and stream.mood_result is None and stream.tags is None


def test_a_model_without_heads_or_switched_off_heads_run_none() -> None:
    bare = StreamAnalysis(AnalysisSetup(AnalysisConfig(), SmoothingConfig(), {}, SR, 1.5))
    seen = bare.update(window(3.0), {})
    assert seen.speech is None and not seen.held and seen.mood is None and bare.tags is None
    off = StreamAnalysis(setup(speech=False, mood=False, tags=False))
    assert off.update(window(3.0), heads(0.99)).held is False and off.tags is None


def test_tempo_and_key_over_windows_equal_the_trackers_fed_the_whole_signal() -> None:
    """Each window's new audio (its last hop) reaches the trackers exactly once: the estimates are those
    of trackers fed the continuous signal."""
    rng = np.random.default_rng(0)
    bed = 0.02 * rng.standard_normal(40 * SR).astype(np.float32)
    t = np.arange(bed.size) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)).astype(np.float32)  # A major
    audio = click_track(40.0, 128.0) + bed + 0.05 * chord
    windows, _ = frame_windows(audio, SPEC)
    stream = StreamAnalysis(setup(speech=False, mood=False, tags=False))
    ends = SPEC.window_seconds + SPEC.hop_seconds * np.arange(len(windows))
    for samples, end in zip(windows, ends, strict=True):
        stream.update(window(float(end), samples), {})
    covered = int(round(ends[-1] * SR))
    tempo, key = TempoTracker(SR, 30.0, 3.0), KeyTracker(SR, 30.0, 3.0)
    tempo.push(audio[:covered])
    key.push(audio[:covered])
    assert stream.tempo == tempo.estimate and stream.key == key.estimate
    assert stream.tempo is not None and stream.tempo.bpm == pytest.approx(128.0, rel=0.04)
    assert stream.key is not None and stream.key.name == "A major"


def test_talk_restarts_tempo_and_key() -> None:
    audio = click_track(12.0, 100.0)
    windows, _ = frame_windows(audio, SPEC)
    stream = StreamAnalysis(setup(mood=False, tags=False))
    for i, samples in enumerate(windows):
        stream.update(window(SPEC.window_seconds + 1.5 * i, samples), heads(0.0))
    assert stream.tempo is not None and stream.tempo.bpm is not None
    tracker = stream.tempo_tracker
    for i in range(2):
        stream.update(window(20.0 + 1.5 * i), heads(0.99))
    assert stream.in_speech and tracker is not None and stream.tempo_tracker is None


def test_trackers_are_made_by_the_first_tracked_window_not_by_a_new_or_reset_stream() -> None:
    """Making them is a tracker's dearest step: it must fall within the tracking budget, not on every
    new, silent or talking stream (10,000 streams starting at once on a GPU)."""
    stream = StreamAnalysis(setup(speech=False, mood=False, tags=False))
    assert stream.tracks and stream.tempo_tracker is None and stream.key_tracker is None
    stream.update(window(SPEC.window_seconds), {}, track=False)
    assert stream.tempo_tracker is None and stream.key_tracker is None
    stream.update(window(SPEC.window_seconds + 1.5), {})
    assert stream.tempo_tracker is not None and stream.key_tracker is not None
    stream.reset()
    assert stream.tempo_tracker is None and stream.key_tracker is None


def test_windows_left_out_of_tracking_feed_nothing_and_the_next_feeds_its_whole_window() -> None:
    """A daemon behind schedule leaves tempo and key out (track=False): nothing reaches the trackers, and
    the next tracked window gives them its whole audio, as after a gap."""
    audio = click_track(30.0, 110.0)
    windows, _ = frame_windows(audio, SPEC)
    stream = StreamAnalysis(setup(speech=False, mood=False, tags=False, key=False))
    fed = []
    for i, samples in enumerate(windows):
        before = 0 if stream.tempo_tracker is None else stream.tempo_tracker.samples_pushed
        seen = stream.update(window(SPEC.window_seconds + 1.5 * i, samples), {}, track=i % 4 != 1)
        assert stream.tempo_tracker is not None
        fed.append(stream.tempo_tracker.samples_pushed - before)
        assert i % 4 != 1 or seen.tempo is None
    hop = SPEC.hop_samples
    assert fed[0] == SPEC.window_samples and fed[1] == 0 and fed[2] == SPEC.window_samples and fed[3] == hop
    assert stream.tempo is not None and stream.tempo.bpm == pytest.approx(110.0, rel=0.04)


def test_the_tracking_budget_holds_its_share_of_the_time() -> None:
    """Windows of 4 ms of tracking, one every 2 ms of wall time, under a 25 % share: about 1 in 8 is
    tracked, so tracking takes 25 % of the time, not the 200 % it would want."""
    now = [0.0]
    budget = TrackingBudget(0.25, burst=0.05, clock=lambda: now[0])
    tracked = 0
    for _ in range(5000):  # 10 s
        now[0] += 0.002
        if budget.allows():
            budget.spend(0.004)
            tracked += 1
    assert abs(tracked * 0.004 / 10.0 - 0.25) < 0.01
    unlimited = TrackingBudget(1.0, clock=lambda: 0.0)
    unlimited.spend(100.0)
    assert unlimited.allows()
    with pytest.raises(ValueError):
        TrackingBudget(0.0)
