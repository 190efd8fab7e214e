"""Events the daemon publishes (schema version 1): a public contract.

Subscribers and the ops team script against these names; a change that
renames or removes a key needs a new ``v``.  New optional keys may be added
within version 1, so readers should ignore keys they do not know.

Transport
    A ZeroMQ PUB socket (default ``tcp://127.0.0.1:5556``); each event is a
    two-part message ``[topic, json]``.  The topic is
    ``genretag.<type>.<stream-id>`` (UTF-8), so subscribers filter by prefix:
    ``genretag.`` (everything), ``genretag.label.`` (label changes of all
    streams), ``genretag.label.radio1`` (one stream; as a prefix it also
    matches ``radio10``, so compare the ``stream`` key when that matters).
    The JSON is one UTF-8 object, never NaN or Infinity.

Keys of every event
    ============== ================ ==========================================
    key            type             meaning
    ============== ================ ==========================================
    ``v``          int              schema version, 1
    ``type``       string           ``label``, ``scores``, ``state``, ``mood``
                                    or ``analysis``
    ``stream``     string           stream id
    ``time``       float            Unix time of publication, seconds
    ``pos``        float            stream position of the audio, seconds
    ``label``      string or null   rolling label; null while silent or
                                    not yet settled
    ``confidence`` float or null    smoothed probability of ``label``
    ``scores``     object           genre -> smoothed probability, rounded to
                                    4 decimals; ``{}`` when unknown
    ============== ================ ==========================================

Types
    ``label``  the rolling label changed; adds ``prev`` (string or null, the
               label before).  When the label becomes null (the stream went
               down or silent, a reload restarted the smoothing, the smoother
               abstains) the event has ``label`` null, ``prev`` the label it
               had, and ``reason`` (see below), so a subscriber to label
               events alone never shows a genre for a stream that has none.
    ``scores`` every scored window (optional, off by default in the daemon).
    ``state``  the stream's state changed; adds ``state``: ``up`` (audio
               arrives), ``down`` (source lost, or never reached), ``silence``
               (dead air, the model is not run), ``recovered`` (audio after
               silence), ``speech`` (talk, or talk over music: the genre is
               held), ``music`` (music again after ``speech``); and ``reason``.
               ``up`` and ``recovered`` mean music until a ``speech`` event.
    ``mood``   the rolling mood changed (a model with a mood head): adds
               ``mood``, ``mood_confidence``, ``mood_scores`` (quadrant ->
               smoothed probability) and ``prev`` (the mood before, or null).
               ``label``, ``confidence`` and ``scores`` are still genre's.
    ``analysis`` the rolling tempo or key was re-estimated (every
               ``analysis.update_seconds`` of music): the stream's descriptors
               below, as they stand.

Descriptors (optional keys of ``scores``, ``mood`` and ``analysis`` events, present
when the model and the ``[analysis]`` config provide them; see
:mod:`genretag.daemon.analysis`)
    ``speech``           float: P(speech) of the window (``scores``), else of the last window
    ``held``             bool: the genre did not learn from this window (talk)
    ``mood``             string or null: the rolling mood; ``mood_confidence``, ``mood_scores``
    ``tags``             object: tag -> smoothed probability (vocals, guitar, ...)
    ``tempo``            ``{"bpm": float, "confidence": float}`` or null
    ``key``              ``{"name": "A minor", "tonic": "A", "mode": "minor",
                         "confidence": float}`` or null

Reasons (``reason``: a short machine-readable word; new ones may appear)
    ``state`` events: ``up`` and ``recovered`` have ``audio``, ``silence`` has
    ``silence``, ``speech`` has ``speech``, ``music`` has ``music`` (``reload`` when a
    reload restarted the analysis of a stream in ``speech``); ``down`` has
    one of :data:`DOWN_REASONS` or ``http_NNN``
    (the HTTP status a ``url:`` server answered, ``http_4xx``/``http_5xx``
    when ffmpeg does not name it).  Null ``label`` events have ``silence``,
    ``uncertain`` (the smoother abstains), ``reload`` (the model or the
    smoothing settings were reloaded), or the reason of the ``down`` event
    that took the label away.

Example::

    genretag.label.radio1
    {"v":1,"type":"label","stream":"radio1","time":1718000000.123456,"pos":93.5,
     "label":"rock","confidence":0.8123,"scores":{"jazz":0.0511,"rock":0.8123},"prev":"jazz"}

New event types may appear within version 1, as new keys may: readers ignore
types and keys they do not know (:func:`decode_event` accepts them).

Delivery is best effort, as with any PUB socket: a subscriber receives events
from the moment its subscription reaches the daemon, and one that falls
``hwm`` events behind loses events until it catches up.  The publisher never
waits for a subscriber.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import zmq

SCHEMA_VERSION = 1
EVENT_TYPES = ("label", "scores", "state", "mood", "analysis")  # also in genretag subscribe --help
STATES = ("up", "down", "silence", "recovered", "speech", "music")
#: Why a stream went down: the ``reason`` of ``down`` state events (besides ``http_NNN``).
DOWN_REASONS = {
    "eof": "the source ended: end of file, or the server ended the stream",
    "stopped": "the daemon stopped the source (shutdown)",
    "idle": "a zmq: stream sent no message for its idle time",
    "timeout": "a url: stream gave no audio within the connect time, or its audio stalled",
    "connect_failed": "a url: connection was refused, the host not found, or TLS failed",
    "decode_error": "the audio could not be decoded",
    "device_missing": "a mic: device does not exist (or there is no default input)",
    "device_error": "a mic: device failed or stalled, or PortAudio is missing",
    "worker_died": "the ingest worker process windowing the stream died",
    "error": "another failure; the daemon's log says which",
}
#: Why the rolling label became null, besides a ``down`` reason: the ``reason`` of null ``label`` events.
NULL_LABEL_REASONS = ("silence", "uncertain", "reload")
#: The reason of the other states.
STATE_REASONS = {
    "up": "audio",
    "recovered": "audio",
    "silence": "silence",
    "speech": "speech",
    "music": "music",
}
_REASON = re.compile(r"[a-z][a-z0-9_]{0,31}")
TOPIC_ROOT = "genretag."
DEFAULT_ADDRESS = "tcp://127.0.0.1:5556"
COMMON_KEYS = ("v", "type", "stream", "time", "pos", "label", "confidence", "scores")
TYPE_KEYS = {
    "label": ("prev",),
    "scores": (),
    "state": ("state",),
    "mood": ("prev", "mood"),
    "analysis": (),
}
_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")

Event = dict[str, Any]


def _event(
    event_type: str,
    stream: str,
    pos: float,
    label: str | None,
    confidence: float | None,
    scores: Mapping[str, float],
    now: float | None,
    descriptors: Mapping[str, Any] | None = None,
) -> Event:
    return {
        "v": SCHEMA_VERSION,
        "type": event_type,
        "stream": stream,
        "time": round(time.time() if now is None else now, 6),
        "pos": round(float(pos), 3),
        "label": label,
        "confidence": None if confidence is None else round(float(confidence), 4),
        "scores": rounded(scores),
        **(descriptors or {}),
    }


def rounded(scores: Mapping[str, float]) -> dict[str, float]:
    """Probabilities as events carry them: 4 decimals."""
    return {name: round(float(p), 4) for name, p in scores.items()}


def label_event(
    stream: str,
    pos: float,
    label: str | None,
    confidence: float | None,
    scores: Mapping[str, float],
    prev: str | None,
    *,
    reason: str | None = None,
    now: float | None = None,
) -> Event:
    """The rolling label of ``stream`` changed from ``prev`` to ``label``.

    ``reason`` says why a label became null (it is refused with a genre): a
    subscriber that filters on label events learns of outages from them alone.
    """
    event = {**_event("label", stream, pos, label, confidence, scores, now), "prev": prev}
    if reason is not None:
        if label is not None:
            raise ValueError(f"a reason only goes with a null label, not with {label!r}")
        event["reason"] = check_reason(reason)
    return event


def scores_event(
    stream: str,
    pos: float,
    label: str | None,
    confidence: float | None,
    scores: Mapping[str, float],
    *,
    descriptors: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> Event:
    """The smoothed scores after one window of ``stream``, with its descriptors (module docstring)."""
    return _event("scores", stream, pos, label, confidence, scores, now, descriptors)


def mood_event(
    stream: str,
    pos: float,
    label: str | None,
    confidence: float | None,
    scores: Mapping[str, float],
    prev: str | None,
    descriptors: Mapping[str, Any],
    *,
    now: float | None = None,
) -> Event:
    """The rolling mood of ``stream`` changed from ``prev`` (``descriptors`` hold the new ``mood``)."""
    if "mood" not in descriptors:
        raise ValueError("a mood event needs the 'mood' descriptor")
    return {**_event("mood", stream, pos, label, confidence, scores, now, descriptors), "prev": prev}


def analysis_event(
    stream: str,
    pos: float,
    label: str | None,
    confidence: float | None,
    scores: Mapping[str, float],
    descriptors: Mapping[str, Any],
    *,
    now: float | None = None,
) -> Event:
    """The tempo or key of ``stream`` was re-estimated: its descriptors as they stand."""
    return _event("analysis", stream, pos, label, confidence, scores, now, descriptors)


def state_event(
    stream: str,
    pos: float,
    state: str,
    *,
    reason: str | None = None,
    label: str | None = None,
    confidence: float | None = None,
    scores: Mapping[str, float] | None = None,
    now: float | None = None,
) -> Event:
    """``stream`` went ``up``, ``down``, into ``silence`` or ``recovered`` from it, for ``reason``.

    ``reason`` defaults to the state's fixed one (``audio``, ``silence``); a
    ``down`` without one says ``error``: the daemon always knows more, so a
    bare ``down`` is a bug to fix where the source reports it.
    """
    if state not in STATES:
        raise ValueError(f"unknown stream state {state!r} (one of {', '.join(STATES)})")
    why = check_reason(reason if reason is not None else STATE_REASONS.get(state, "error"))
    return {
        **_event("state", stream, pos, label, confidence, scores or {}, now),
        "state": state,
        "reason": why,
    }


def check_reason(reason: str) -> str:
    """``reason`` if it is a short machine-readable word (``[a-z][a-z0-9_]*``, 1-32), else ValueError."""
    if not _REASON.fullmatch(reason):
        raise ValueError(f"an event reason is a short lower-case word, got {reason!r}")
    return reason


def topic(event_type: str, stream: str = "") -> bytes:
    """The topic of an event, or with ``stream=""`` the prefix of all events of a type."""
    return f"{TOPIC_ROOT}{event_type}.{stream}".encode()


def subscriptions(types: Sequence[str] = (), stream: str | None = None) -> list[bytes]:
    """The SUB prefixes for events of ``types`` (all when empty) of ``stream`` (all when None)."""
    if not types and stream is None:
        return [TOPIC_ROOT.encode()]
    return [topic(t, stream or "") for t in (types or EVENT_TYPES)]


def encode_event(event: Event) -> list[bytes]:
    """The two message parts of ``event``; NaN or Infinity raises ``ValueError`` (a bug upstream)."""
    body = json.dumps(event, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return [topic(event["type"], event["stream"]), body.encode("utf-8")]


def decode_event(parts: Sequence[bytes]) -> Event:
    """Parse a received ``[topic, json]`` message; ``ValueError`` if it is not a version-1 event."""
    if len(parts) != 2:
        raise ValueError(f"expected 2 message parts (topic, json), got {len(parts)}")
    try:
        event = json.loads(parts[1])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"event is not JSON: {err}") from None
    if (
        not isinstance(event, dict)
        or event.get("v") != SCHEMA_VERSION
        or not isinstance(event.get("type"), str)
        or not _TYPE.fullmatch(event["type"])
    ):
        raise ValueError(f"not a version-{SCHEMA_VERSION} genretag event: {parts[1][:80]!r}")
    # A type this version does not know (a newer daemon's) is passed on with its common keys checked.
    missing = [key for key in COMMON_KEYS + TYPE_KEYS.get(event["type"], ()) if key not in event]
    if missing:
        raise ValueError(f"{event['type']} event without {', '.join(missing)}")
    return event


class EventPublisher:
    """A bound PUB socket that never makes the daemon wait for a subscriber.

    Each subscriber has its own queue of at most ``hwm`` events.  By default
    (libzmq's PUB behaviour) a subscriber whose queue is full silently misses
    events while the others still get them, so one stuck subscriber (a
    ``genretag subscribe | less`` left open) cannot starve the rest; those
    losses are invisible to the daemon.  With ``nodrop=True`` an event that
    does not fit every matching queue is sent to nobody and counted in
    :attr:`dropped`, trading isolation for an honest drop metric.

    ``secure`` is called with the socket before it binds, e.g. to make it a
    CURVE server (:meth:`genretag.daemon.curve.CurveGuard.server`).

    Use it from one thread at a time (ZeroMQ sockets are not thread-safe).
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        hwm: int = 1000,
        linger_ms: int = 500,
        nodrop: bool = False,
        context: zmq.Context[Any] | None = None,
        secure: Callable[[zmq.Socket[Any]], None] | None = None,
    ) -> None:
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, linger_ms)
        if nodrop:
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)
        try:
            if secure is not None:
                secure(self._socket)
            self._socket.bind(address)
        except zmq.ZMQError:
            self._socket.close(linger=0)
            raise
        #: The bound endpoint, with the port the OS chose for ``tcp://HOST:*``.
        self.address: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.sent = 0
        self.dropped = 0

    def publish(self, event: Event) -> bool:
        """Send ``event`` without blocking; False (and counted) if it was dropped."""
        try:
            self._socket.send_multipart(encode_event(event), flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        """Close the socket; queued events still get ``linger_ms`` to reach subscribers."""
        self._socket.close()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
