"""The Tagger in process: event order per stream, the stream cap, reload with a new window geometry."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from helpers.predictors import SR, ConstantPredictor
from prometheus_client.parser import text_string_to_metric_families

from genretag.daemon.config import AnalysisConfig, Config, LimitsConfig, PublishConfig, SmoothingConfig
from genretag.daemon.events import decode_event, encode_event
from genretag.daemon.metrics import Metrics
from genretag.daemon.sources.base import Chunk
from genretag.daemon.tagging import Tagger


def tagger(
    max_streams: int = 8,
    predictor: Any = None,
    smoothing: SmoothingConfig | None = None,
    publish_scores: bool = False,
) -> tuple[Tagger, list[dict[str, Any]], Metrics]:
    events: list[dict[str, Any]] = []
    metrics = Metrics()
    config = replace(
        Config(),
        limits=LimitsConfig(max_streams=max_streams),
        smoothing=smoothing or SmoothingConfig(),
        publish=PublishConfig(scores=publish_scores),
    )
    t = Tagger(config, predictor or ConstantPredictor([0.9, 0.1]), events.append, metrics)
    t.start()
    return t, events, metrics


def loud(seconds: float) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def feed(t: Tagger, stream: str, audio: np.ndarray) -> None:
    for i in range(0, len(audio), SR // 10):
        t.audio(Chunk(stream, audio[i : i + SR // 10], SR, time.monotonic()))


def drain(t: Tagger) -> None:
    """Wait until everything queued so far has gone through the inference thread (close() drops windows)."""
    done = threading.Event()
    t.batcher.call(done.set)
    assert done.wait(10)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The value of the samples of ``name`` whose labels include ``labels``, summed, as a scrape shows them
    (0 when absent)."""
    total = 0.0
    for family in text_string_to_metric_families(metrics.render().decode()):
        for found in family.samples:
            if found.name == name and labels.items() <= found.labels.items():
                total += float(found.value)
    return total


def test_events_of_a_stream_leave_in_stream_order() -> None:
    t, events, metrics = tagger()
    feed(t, "x", np.concatenate([loud(2), np.zeros(3 * SR, np.float32), loud(2)]))
    drain(t)
    t.close()
    story = [
        e["state"] if e["type"] == "state" else e["label"] for e in events if e["type"] in ("label", "state")
    ]
    assert story == ["up", "a", "silence", None, "recovered", "a", "down", None]
    silence = next(e for e in events if e.get("state") == "silence")
    assert 3.9 <= silence["pos"] <= 4.1  # 2 s of audio + the 2 s hold
    assert all(e["label"] is None for e in events if e["type"] == "state")
    assert [e["reason"] for e in events if e["type"] == "state"] == ["audio", "silence", "audio", "stopped"]
    assert sample(metrics, "genretag_windows_silent_total", stream="x") > 0
    assert sample(metrics, "genretag_silence_seconds_total", stream="x") >= 2.0
    assert sample(metrics, "genretag_label_changes_total", stream="x") == 2


def test_streams_beyond_the_cap_are_refused_until_a_slot_frees() -> None:
    t, events, metrics = tagger(max_streams=2)
    for stream in ("a", "b", "c"):
        feed(t, stream, loud(0.2))
    assert sample(metrics, "genretag_streams_refused_total") == 2  # both chunks of c
    assert sample(metrics, "genretag_source_errors_total", stream="?", kind="stream_refused") == 2
    t.state("a", "down")
    feed(t, "c", loud(0.2))  # a's slot is free: c takes it, a's series go away
    t.close()
    ups = [e["stream"] for e in events if e.get("state") == "up"]
    assert ups == ["a", "b", "c"]
    assert sample(metrics, "genretag_stream_up", stream="c") == 0  # closed
    assert 'stream="a"' not in metrics.render().decode()


def test_reload_with_a_new_hop_keeps_positions_running() -> None:
    t, events, _ = tagger(predictor=ConstantPredictor([0.9, 0.1]))
    feed(t, "x", loud(2))
    t.reload(Config(), ConstantPredictor([0.1, 0.9], hop=0.5))
    feed(t, "x", loud(8))
    drain(t)
    t.close()
    labels = [(e["label"], e["pos"]) for e in events if e["type"] == "label" and e["label"] is not None]
    assert labels[0][0] == "a" and labels[-1][0] == "b"
    # the new windower (0.5 s windows every 0.5 s) settles after 4 windows = 2 s, counted on from the
    # 2 s before the reload, not from 0
    assert labels[-1][1] == 4.0


class RelabelledPredictor(ConstantPredictor):
    """Same geometry, other label names: a reload that changes the score series."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__(scores)
        self.manifest = replace(self.manifest, labels=["c", "d"])


def test_metric_series_come_back_after_the_stream_is_forgotten_and_after_a_relabelling_reload() -> None:
    # The tagger keeps each stream's metric children instead of looking them up per window; a forgotten
    # stream and a reload with new labels must still produce live series, never stale detached children.
    t, _, metrics = tagger(max_streams=1)
    feed(t, "a", loud(2))
    drain(t)
    scored = sample(metrics, "genretag_windows_processed_total", stream="a")
    assert scored > 0 and sample(metrics, "genretag_smoothed_score", stream="a", genre="a") > 0.5
    t.state("a", "down")
    feed(t, "b", loud(1))  # b takes a's slot: a's series are removed
    drain(t)
    assert 'stream="a"' not in metrics.render().decode()
    t.state("b", "down")
    feed(t, "a", loud(2))  # a again, from scratch
    drain(t)
    assert 0 < sample(metrics, "genretag_windows_processed_total", stream="a") <= scored
    assert sample(metrics, "genretag_smoothed_score", stream="a", genre="a") > 0.5
    t.reload(Config(), RelabelledPredictor([0.2, 0.8]))
    before = sample(metrics, "genretag_windows_processed_total", stream="a")
    feed(t, "a", loud(2))
    drain(t)
    t.close()
    assert sample(metrics, "genretag_smoothed_score", stream="a", genre="d") > 0.5
    assert 'genre="a"' not in metrics.render().decode()
    assert sample(metrics, "genretag_windows_processed_total", stream="a") > before


def test_a_forgotten_stream_leaves_no_error_log_state_behind() -> None:
    """Stream ids churn for months: per-stream throttling state must go with the stream."""
    t, _, _ = tagger(max_streams=1)
    for stream in ("a", "b", "c"):
        feed(t, stream, loud(0.2))
        t.error(stream, "seq_gap", "1 message(s) lost")
        t.state(stream, "down")
    drain(t)
    t.close()
    assert {stream for stream, _ in t._logged} <= {"c", "?"}


def _labels(events: list[dict[str, Any]]) -> list[tuple[str | None, str | None, str | None]]:
    """(label, prev, reason) of each label event, checked against the schema on the way."""
    checked = [decode_event(encode_event(e)) for e in events]
    return [(e["label"], e["prev"], e.get("reason")) for e in checked if e["type"] == "label"]


def test_a_label_subscriber_learns_when_the_label_goes_null() -> None:
    """Silence, a source going down and a shutdown each take the label away with a null label event
    carrying the label it had and why; a stream that never had a label gets none."""
    t, events, _ = tagger()
    feed(t, "x", np.concatenate([loud(2), np.zeros(3 * SR, np.float32), loud(2)]))
    drain(t)
    t.state("x", "down", "http_404", "ffmpeg ended (exit status 8): Server returned 404 Not Found")
    feed(t, "x", loud(2))
    feed(t, "short", loud(0.3))  # up, but too short to settle a label
    drain(t)
    t.close()
    x = [e for e in events if e["stream"] == "x"]
    assert _labels(x) == [
        ("a", None, None),
        (None, "a", "silence"),
        ("a", None, None),
        (None, "a", "http_404"),
        ("a", None, None),
        (None, "a", "stopped"),
    ]
    nulls = [e for e in x if e["type"] == "label" and e["label"] is None]
    assert all(e["confidence"] is None and e["scores"] == {} for e in nulls)
    states = [e for e in x if e["type"] == "state"]
    for null in nulls:  # each follows the state event that caused it, at its position
        cause = max((s for s in states if s["time"] <= null["time"]), key=lambda s: s["time"])
        assert null["pos"] == cause["pos"] and cause["state"] in ("silence", "down")
    assert _labels([e for e in events if e["stream"] == "short"]) == []


def test_a_reload_takes_labels_away_with_a_null_label_event() -> None:
    t, events, _ = tagger()
    feed(t, "x", loud(2))
    drain(t)
    t.reload(Config(), ConstantPredictor([0.1, 0.9]))
    feed(t, "x", loud(3))
    drain(t)
    t.close()
    assert _labels(events)[:3] == [("a", None, None), (None, "a", "reload"), ("b", None, None)]


def test_a_stream_that_never_came_up_is_published_down_with_its_reason() -> None:
    """A URL answering 404 from the start: the first failed attempt shows in events and metrics."""
    events: list[dict[str, Any]] = []
    metrics = Metrics()
    t = Tagger(
        Config(), ConstantPredictor([0.9, 0.1]), events.append, metrics, configured=["radio.example/live"]
    )
    t.start()
    t.state("radio.example/live", "down", "http_404", "Server returned 404 Not Found")
    t.state("radio.example/live", "down", "http_404", "again")  # one event per outage, not per attempt
    drain(t)
    assert [(e["type"], e["state"], e["reason"], e["pos"]) for e in events] == [
        ("state", "down", "http_404", 0.0)
    ]
    assert sample(metrics, "genretag_stream_up", stream="radio.example/live") == 0
    feed(t, "radio.example/live", loud(0.5))  # it comes up after all
    t.close()
    assert [e["state"] for e in events] == ["down", "up", "down"]
    assert events[-1]["reason"] == "stopped"


@pytest.mark.parametrize("where", ["config", "artifact"])
def test_an_abstaining_smoother_publishes_a_null_label_with_its_reason(where: str) -> None:
    """The smoother gives up its label when unsure (below ``smoothing.min_confidence``, or the artifact's
    calibrated threshold when the config leaves it unset): the subscriber hears of it from a null label
    event with the smoother's reason."""
    predictor = ConstantPredictor([0.9, 0.1])
    if where == "artifact":
        predictor.manifest.calibration = {"min_confidence": 0.6}
        t, events, _ = tagger(predictor=predictor)
    else:
        t, events, _ = tagger(predictor=predictor, smoothing=SmoothingConfig(min_confidence=0.6))
    feed(t, "x", loud(2))
    drain(t)
    predictor.scores = np.array([0.5, 0.5], np.float32)
    feed(t, "x", loud(3))
    drain(t)
    t.close()
    labels = _labels(events)
    assert labels[:2] == [("a", None, None), (None, "a", "uncertain")], labels
    null = next(e for e in events if e["type"] == "label" and e["label"] is None)
    assert set(null["scores"]) == {"a", "b"}  # the scores the smoother abstained on


class TalkingPredictor(ConstantPredictor):
    """A speech head that says talk for a 660 Hz tone, whose genre scores (``b``) would take the label
    from ``a`` (every other window) if genre learnt from talk, and a mood head: the tagger's handling of
    heads is under test; the real heads are in tests/models."""

    def __init__(self) -> None:
        super().__init__([0.5, 0.5])
        heads = {
            "speech": {"labels": ["music", "speech"], "output": "softmax"},
            "mood": {"labels": ["happy", "tense", "sad", "calm"], "output": "softmax"},
        }
        self.manifest = replace(self.manifest, heads=heads)

    def _pitch(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(np.asarray(windows), axis=1))
        return np.argmax(spectrum, axis=1) * SR / np.asarray(windows).shape[1]

    def predict_outputs(self, windows: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        pitch = self._pitch(windows)
        talk = np.abs(pitch - 660) < 20
        genre = np.where(talk[:, None], [0.1, 0.9], [0.9, 0.1]).astype(np.float32)
        speech = np.where(talk[:, None], [0.05, 0.95], [0.95, 0.05]).astype(np.float32)
        mood = np.tile(np.array([0.7, 0.1, 0.1, 0.1], np.float32), (len(pitch), 1))
        return {"genre": genre, "speech": speech, "mood": mood}


def tone(hz: float, seconds: float) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def test_talk_holds_the_genre_and_says_speech() -> None:
    """music (a) -> talk -> music (a): the label holds, state goes speech then music, no label change in
    between; scores events say the talk windows were held; the metrics show the speech time and state."""
    t, events, metrics = tagger(predictor=TalkingPredictor(), publish_scores=True)
    feed(t, "x", np.concatenate([tone(330, 4), tone(660, 4), tone(330, 4)]))
    drain(t)
    assert sample(metrics, "genretag_stream_state", stream="x", state="music") == 1
    t.close()
    story = [
        e["state"] if e["type"] == "state" else e["label"] for e in events if e["type"] in ("state", "label")
    ]
    assert story == ["up", "a", "speech", "music", "down", None]
    speech = next(e for e in events if e.get("state") == "speech")
    assert (speech["reason"], speech["label"]) == ("speech", "a") and 4.0 < speech["pos"] < 5.0
    moods = [(e["mood"], e["prev"], e["label"]) for e in events if e["type"] == "mood"]
    assert moods == [("happy", None, "a")]  # held windows do not feed the mood either
    held = [e for e in events if e["type"] == "scores" and e["held"]]
    assert len(held) >= 14 and all(e["label"] == "a" and e["mood"] == "happy" for e in held)
    assert all(4.0 < e["pos"] < 8.8 for e in held)
    assert sample(metrics, "genretag_speech_seconds_total", stream="x") >= 1.0
    assert sample(metrics, "genretag_label_changes_total", stream="x") == 1


def test_a_reload_during_talk_says_music_again() -> None:
    t, events, metrics = tagger(predictor=TalkingPredictor())
    feed(t, "x", np.concatenate([tone(330, 3), tone(660, 2)]))
    drain(t)
    assert sample(metrics, "genretag_stream_state", stream="x", state="speech") == 1
    t.reload(Config(), TalkingPredictor())
    drain(t)
    assert sample(metrics, "genretag_stream_state", stream="x", state="music") == 1
    t.close()
    states = [(e["state"], e["reason"]) for e in events if e["type"] == "state"]
    assert states == [("up", "audio"), ("speech", "speech"), ("music", "reload"), ("down", "stopped")]


def test_tempo_and_key_keep_to_their_share_of_the_inference_thread() -> None:
    """With a tiny analysis.cpu_share most windows are left out of tempo and key, and counted; genre
    scores every window all the same."""
    events: list[dict[str, Any]] = []
    metrics = Metrics()
    config = replace(Config(), analysis=AnalysisConfig(cpu_share=0.001))
    t = Tagger(config, ConstantPredictor([0.9, 0.1]), events.append, metrics)
    t.start()
    feed(t, "x", loud(200))  # 799 windows as fast as possible: far more tracking than 0.1 % of the time
    drain(t)
    t.close()
    scored = sample(metrics, "genretag_windows_processed_total", stream="x")
    skipped = sample(metrics, "genretag_analysis_skipped_windows_total", stream="x")
    assert scored == 799 and 0.5 * scored < skipped < scored
