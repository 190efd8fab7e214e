"""The event schema (a public contract) and the publisher, over real PUB/SUB sockets on loopback."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import pytest
import zmq

from genretag.daemon.events import (
    EventPublisher,
    analysis_event,
    decode_event,
    encode_event,
    label_event,
    mood_event,
    scores_event,
    state_event,
    subscriptions,
)

COMMON = {"v", "type", "stream", "time", "pos", "label", "confidence", "scores"}
SCORES = {"rock": 0.812345678, "jazz": 0.1, "pop": 0.087654322}


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def _subscriber(
    ctx: zmq.Context[zmq.Socket[bytes]], address: str, *prefixes: bytes, rcvhwm: int = 1000
) -> zmq.Socket[bytes]:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, rcvhwm)
    sub.setsockopt(zmq.RCVBUF, 4096)  # small kernel buffer: a subscriber that stops reading backs up fast
    sub.connect(address)
    for prefix in prefixes:
        sub.subscribe(prefix)
    return sub


def _await_subscription(pub: EventPublisher, sub: zmq.Socket[bytes]) -> None:
    """Publish probes until ``sub`` gets one (a PUB drops everything before a subscription arrives)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pub.publish(label_event("probe", 0.0, None, None, {}, None))
        if sub.poll(20):
            while sub.poll(50):
                sub.recv_multipart()
            return
    raise AssertionError("the subscription never reached the publisher")


def test_every_type_carries_the_documented_keys() -> None:
    events = [
        label_event("radio1", 93.51234, "rock", 0.812345678, SCORES, "jazz", now=1718000000.1234567),
        scores_event("radio1", 94.0, "rock", 0.8, SCORES),
        state_event("radio1", 95.0, "silence"),
    ]
    extra = {"label": {"prev"}, "scores": set(), "state": {"state", "reason"}}
    for event in events:
        parts = encode_event(event)
        assert parts[0] == f"genretag.{event['type']}.radio1".encode()
        decoded = json.loads(parts[1])
        assert set(decoded) == COMMON | extra[decoded["type"]]
        assert decoded["v"] == 1 and decoded["stream"] == "radio1"
        assert decode_event(parts) == decoded
    label, scores, state = (json.loads(encode_event(e)[1]) for e in events)
    assert label["scores"] == {"rock": 0.8123, "jazz": 0.1, "pop": 0.0877}
    assert (label["confidence"], label["pos"], label["prev"]) == (0.8123, 93.512, "jazz")
    assert label["time"] == 1718000000.123457
    assert abs(scores["time"] - time.time()) < 5
    assert (state["state"], state["label"], state["confidence"]) == ("silence", None, None)
    assert state["scores"] == {} and state["reason"] == "silence"


def test_state_and_null_label_events_say_why() -> None:
    """Every state event has a reason word (its state's own, or the source's for down); a label going
    null carries the label it had and why; a label event with a genre has no reason key (schema v1:
    the key is new and optional)."""
    assert [state_event("s", 0.0, state)["reason"] for state in ("up", "recovered", "silence", "down")] == [
        "audio",
        "audio",
        "silence",
        "error",
    ]
    down = json.loads(encode_event(state_event("s", 12.5, "down", reason="http_404"))[1])
    assert (down["state"], down["reason"]) == ("down", "http_404")
    gone = json.loads(encode_event(label_event("s", 12.5, None, None, {}, "rock", reason="silence"))[1])
    assert decode_event([b"genretag.label.s", json.dumps(gone).encode()]) == gone
    assert (gone["label"], gone["prev"], gone["reason"]) == (None, "rock", "silence")
    assert "reason" not in label_event("s", 1.0, "rock", 0.8, SCORES, None)
    with pytest.raises(ValueError, match="null label"):
        label_event("s", 1.0, "rock", 0.8, SCORES, None, reason="silence")
    for bad in ("", "Down", "no audio for 2 s", "x" * 33, "http-404"):
        with pytest.raises(ValueError, match="reason"):
            state_event("s", 0.0, "down", reason=bad)


def test_bad_events_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown stream state"):
        state_event("s", 0.0, "sleeping")
    with pytest.raises(ValueError):
        encode_event(scores_event("s", 0.0, "rock", math.nan, SCORES))
    for parts in (
        [b"genretag.label.s"],
        [b"t", b"{"],
        [b"t", b'{"v": 2, "type": "label"}'],
        [b"t", b'{"v": 1, "type": "label", "stream": "s"}'],
    ):
        with pytest.raises(ValueError):
            decode_event(parts)


def test_mood_and_analysis_events_round_trip_with_their_descriptors() -> None:
    keys = {
        "mood": "calm",
        "mood_confidence": 0.61,
        "mood_scores": {"calm": 0.61, "sad": 0.39},
        "speech": 0.02,
    }
    mood = decode_event(encode_event(mood_event("s", 9.0, "jazz", 0.8, SCORES, "happy", keys)))
    assert (mood["type"], mood["mood"], mood["prev"], mood["label"]) == ("mood", "calm", "happy", "jazz")
    tempo = {"bpm": 121.3, "confidence": 0.4}
    analysis = decode_event(
        encode_event(analysis_event("s", 9.0, None, None, {}, {"tempo": tempo, "key": None}))
    )
    assert analysis["tempo"] == tempo and analysis["key"] is None and analysis["label"] is None
    with pytest.raises(ValueError, match="mood"):
        mood_event("s", 9.0, "jazz", 0.8, SCORES, None, {"speech": 0.1})
    speech = decode_event(encode_event(state_event("s", 3.0, "speech", label="jazz")))
    assert (speech["state"], speech["reason"], speech["label"]) == ("speech", "speech", "jazz")


def test_a_newer_daemons_event_type_is_passed_on() -> None:
    """Readers ignore what they do not know: a type of a later version 1 decodes, its common keys checked."""
    body = {"v": 1, "type": "weather", "stream": "s", "time": 1.0, "pos": 2.0, "label": None}
    body |= {"confidence": None, "scores": {}, "sky": "grey"}
    assert decode_event([b"genretag.weather.s", json.dumps(body).encode()])["sky"] == "grey"
    with pytest.raises(ValueError, match="without scores"):
        decode_event([b"t", json.dumps({k: v for k, v in body.items() if k != "scores"}).encode()])
    with pytest.raises(ValueError, match="not a version-1"):
        decode_event([b"t", json.dumps(body | {"type": "Bad Type!"}).encode()])


def test_subscription_prefixes() -> None:
    assert subscriptions() == [b"genretag."]
    assert subscriptions(["label"]) == [b"genretag.label."]
    assert subscriptions([], "radio1") == [
        b"genretag.label.radio1",
        b"genretag.scores.radio1",
        b"genretag.state.radio1",
        b"genretag.mood.radio1",
        b"genretag.analysis.radio1",
    ]
    assert subscriptions(["label", "state"], "r") == [b"genretag.label.r", b"genretag.state.r"]


def test_subscribers_filter_by_topic_prefix(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    with EventPublisher("tcp://127.0.0.1:*", context=context) as pub:
        assert pub.address.startswith("tcp://127.0.0.1:") and not pub.address.endswith("*")
        sub = _subscriber(context, pub.address, *subscriptions(["label"]))
        _await_subscription(pub, sub)
        pub.publish(scores_event("a", 1.0, "rock", 0.9, SCORES))
        pub.publish(state_event("a", 1.0, "up"))
        pub.publish(label_event("a", 1.0, "rock", 0.9, SCORES, None))
        pub.publish(label_event("b", 2.0, "jazz", 0.7, SCORES, "rock"))
        pub.publish(state_event("b", 2.0, "down"))
        got = []
        while len(got) < 2 and sub.poll(2000):
            got.append(decode_event(sub.recv_multipart()))
        assert not sub.poll(100)
    assert [(e["type"], e["stream"]) for e in got] == [("label", "a"), ("label", "b")]
    assert pub.dropped == 0


def test_publish_never_waits_when_nobody_listens(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    with EventPublisher("tcp://127.0.0.1:*", context=context, nodrop=True) as pub:
        start = time.monotonic()
        for i in range(5000):
            pub.publish(scores_event("s", i, "rock", 0.8, SCORES))
        assert time.monotonic() - start < 3
    assert pub.dropped == 0  # nobody subscribed: nothing to drop for


WIDE = {f"genre-{i:03d}": 1 / 300 for i in range(300)}  # ~5 KB a message: a stuck reader backs up at ~500


def _flood(pub: EventPublisher, n: int) -> float:
    """Publish ``n`` big events; return the slowest single publish() in seconds."""
    event, slowest = scores_event("s", 0.0, "g0", 0.5, WIDE), 0.0
    for _ in range(n):
        start = time.monotonic()
        pub.publish(event)
        slowest = max(slowest, time.monotonic() - start)
    return slowest


def test_a_stuck_subscriber_never_blocks_and_drops_are_counted(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    with EventPublisher("tcp://127.0.0.1:*", context=context, hwm=10, nodrop=True) as pub:
        stuck = _subscriber(context, pub.address, b"genretag.", rcvhwm=10)
        _await_subscription(pub, stuck)  # and never reads again
        before = pub.sent
        slowest = _flood(pub, 1500)
    assert slowest < 0.5
    assert pub.dropped > 0 and pub.sent - before + pub.dropped == 1500


def test_by_default_a_stuck_subscriber_only_loses_its_own_events(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    with EventPublisher("tcp://127.0.0.1:*", context=context, hwm=10) as pub:
        stuck = _subscriber(context, pub.address, b"genretag.", rcvhwm=10)
        live = _subscriber(context, pub.address, b"genretag.")
        _await_subscription(pub, stuck)
        _await_subscription(pub, live)
        for i in range(1200):
            pub.publish(scores_event("s", i, "g0", 0.5, WIDE))
            assert live.poll(2000), f"the live subscriber stopped getting events at {i}"
            assert decode_event(live.recv_multipart())["pos"] == i
        stuck_got = 0
        while stuck.poll(100):
            stuck.recv_multipart()
            stuck_got += 1
    assert pub.dropped == 0 and stuck_got < 1200
