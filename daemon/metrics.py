"""The daemon's Prometheus metrics, in a private registry served over HTTP.

Names follow Prometheus conventions (``genretag_`` prefix, base units,
``_total`` on counters) and ``promtool check metrics`` is the judge
(``tests/daemon/test_serve.py`` runs it on a live daemon's scrape).  A
private :class:`CollectorRegistry` keeps the process collectors and anything a library registers globally out
of the exposition, so what an operator sees is exactly this list.

Cardinality is bounded: ``stream`` labels only take configured or accepted
stream ids (at most ``limits.max_streams``; refused ones are counted without a
stream label, and errors of streams the daemon never accepted are labelled
``stream="?"``), ``genre`` labels come from the model's label list, and every
other label takes a few fixed values.  :meth:`Metrics.forget` removes a stream's
series when its slot is given to another stream.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from genretag.daemon.metrics_http import MetricsServer
from genretag.daemon.stream_series import StreamChoice, StreamFamily, StreamLabels, StreamScores
from genretag.models.artifact import ArtifactManifest

# What the exposition is: every name is a classic Prometheus name, so the text format 0.0.4 that every
# Prometheus parses (prometheus-client's CONTENT_TYPE_LATEST names 1.0.0 from 0.22 on).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN_STREAM = "?"
DROP_REASONS = ("queue_full", "stale", "inference_error", "shutdown")
EVENT_TYPES = ("label", "scores", "state", "mood", "analysis")  # as genretag.daemon.events.EVENT_TYPES
AUTH_SOCKETS = ("input", "publish")
#: The values of ``genretag_stream_state``'s ``state`` label.
STREAM_STATES = ("music", "speech", "silence", "down")
# Fine between 50 ms and 1 s, where latency targets sit (p99 < 250 ms on a CPU, < 500 ms on a GPU):
# a quantile is interpolated inside its bucket, so it is only as precise as the bounds around it.
_LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.125,
    0.15,
    0.175,
    0.2,
    0.225,
    0.25,
    0.3,
    0.35,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)  # batch.max_batch_size <= 4096


class Metrics:
    """Every metric of the daemon; see the module docstring.

    The families updated for every window of every stream are
    :class:`~genretag.daemon.stream_series.StreamFamily` objects (``inc(stream)``,
    ``set(stream, value)``), :class:`~genretag.daemon.stream_series.StreamScores` and
    :class:`~genretag.daemon.stream_series.StreamChoice`,
    written by the daemon's own code at scrape time (prometheus-client took 1.6-2.3 s
    per scrape at 10,000 streams; see that module).  The other attributes are
    prometheus-client objects; their per-stream series should be reached through
    :meth:`stream` so that :meth:`forget` can remove them.
    """

    def __init__(self) -> None:
        # The *_created series (a timestamp per counter and label set) double the exposition and
        # confuse readers of the text format; a process-wide switch, fine in the daemon.
        disable_created_metrics()
        r = self.registry = CollectorRegistry()
        self._per_stream: dict[str, set[tuple[Any, tuple[str, ...]]]] = defaultdict(set)
        self._lock = threading.Lock()  # _per_stream is used by the I/O and the inference threads
        labels = self._labels = StreamLabels()
        self.windows_processed = StreamFamily(
            "genretag_windows_processed", "counter", "Windows scored by the model, per stream.", labels
        )
        self.windows_silent = StreamFamily(
            "genretag_windows_silent",
            "counter",
            "Windows not scored because the stream was in state "
            "silence at their end, or they still held audio from before the end of a silence.",
            labels,
        )
        self.windows_dropped = Counter(
            "genretag_windows_dropped",
            "Windows lost before scoring, per stream and reason: queue_full "
            "(inference fell behind and the queue was full, oldest dropped), stale (older than "
            "batch.max_age_ms when its batch formed: past capacity, dropped so that the rest stays timely), "
            "inference_error (the model failed on the batch), shutdown (still queued at exit).",
            ["stream", "reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "genretag_inference_batch_size",
            "Windows per inference batch (all streams together).",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "genretag_inference_duration_seconds",
            "Wall time of one model call on one batch.",
            buckets=_INFERENCE_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "genretag_end_to_end_latency_seconds",
            "Time from the arrival of the audio that completed a "
            "window to the publication of that window's result (queueing, batching, inference, events).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "genretag_queue_depth", "Windows waiting for the model in the inference queue.", registry=r
        )
        self.queue_capacity = Gauge(
            "genretag_queue_capacity",
            "Windows the inference queue holds before it drops the oldest.",
            registry=r,
        )
        self.inference_errors = Counter(
            "genretag_inference_errors",
            "Batches on which the model raised or returned invalid scores "
            "(the batch is dropped, the daemon carries on).",
            registry=r,
        )
        self.source_errors = Counter(
            "genretag_source_errors",
            "Problems reported by sources, per stream and kind (refused frames, "
            'decode failures, sequence gaps, reconnects, ...); stream "?" when the stream was never '
            "accepted; source_kind is the kind of source feeding the stream (mic, file, url, zmq).",
            ["stream", "kind", "source_kind"],
            registry=r,
        )
        self.reconnects = Counter(
            "genretag_source_reconnects",
            "Reconnection attempts of network sources (url:), per stream and source kind.",
            ["stream", "source_kind"],
            registry=r,
        )
        self.decode_errors = Counter(
            "genretag_decode_errors",
            "Audio that could not be decoded or was refused (bad header, odd byte "
            "count, NaN samples, too large, undecodable stream), per stream, reason and source kind.",
            ["stream", "reason", "source_kind"],
            registry=r,
        )
        self.streams_refused = Counter(
            "genretag_streams_refused",
            "Audio of new streams refused because limits.max_streams streams are already active.",
            registry=r,
        )
        self.stream_up = StreamFamily(
            "genretag_stream_up",
            "gauge",
            "1 while audio of the stream arrives, 0 when its source is down.",
            labels,
        )
        self.silence = StreamFamily(
            "genretag_silence_seconds",
            "counter",
            "Stream time spent in state silence (level below the "
            "silence threshold for at least the hold time, hold included).",
            labels,
        )
        self.scores = StreamScores(
            "genretag_smoothed_score",
            "Current smoothed probability of each genre, per stream.",
            "genre",
            labels,
        )
        self.stream_state = StreamChoice(
            "genretag_stream_state",
            "1 for the state each stream is in, 0 for the others: music (the genre is tagged), speech "
            "(talk or talk over music: the genre is held), silence, down.",
            "state",
            labels,
            STREAM_STATES,
        )
        self.speech_seconds = StreamFamily(
            "genretag_speech_seconds",
            "counter",
            "Stream time spent in state speech (a model with a speech head), counted a window hop at a time.",
            labels,
        )
        self.speech_probability = StreamFamily(
            "genretag_speech_probability", "gauge", "P(speech) of the stream's latest scored window.", labels
        )
        self.mood_scores = StreamScores(
            "genretag_mood_score",
            "Current smoothed probability of each mood quadrant (happy, tense, sad, calm), per stream.",
            "mood",
            labels,
        )
        self.mood_changes = StreamFamily(
            "genretag_mood_changes",
            "counter",
            "Changes of the rolling mood, per stream (first included).",
            labels,
        )
        self.tag_scores = StreamScores(
            "genretag_tag_score",
            "Current smoothed probability of each instrumentation and voice tag, per stream.",
            "tag",
            labels,
        )
        self.tempo_bpm = StreamFamily(
            "genretag_tempo_bpm", "gauge", "The stream's rolling tempo in beats per minute (0: none).", labels
        )
        self.tempo_confidence = StreamFamily(
            "genretag_tempo_confidence",
            "gauge",
            "How much the rolling tempo stands out from its rivals, 0..1.",
            labels,
        )
        self.analysis_skipped = StreamFamily(
            "genretag_analysis_skipped_windows",
            "counter",
            "Scored windows left out of the tempo and key analysis because it had used its "
            "analysis.cpu_share of the inference thread (best effort: genre keeps its capacity).",
            labels,
        )
        self.key = StreamChoice(
            "genretag_key_confidence",
            'The stream\'s rolling key (label key, e.g. "A minor"), valued by its confidence 0..1; '
            "one series per stream, for the current key.",
            "key",
            labels,
        )
        self.label_changes = StreamFamily(
            "genretag_label_changes",
            "counter",
            "Changes of the rolling label, per stream (first label included).",
            labels,
        )
        self._families = (
            self.windows_processed,
            self.windows_silent,
            self.stream_up,
            self.silence,
            self.label_changes,
            self.speech_seconds,
            self.speech_probability,
            self.mood_changes,
            self.tempo_bpm,
            self.tempo_confidence,
            self.analysis_skipped,
            self.stream_state,
            self.key,
        )
        self._score_families = (self.scores, self.mood_scores, self.tag_scores)
        self.model = Info(
            "genretag_model",
            "The model artifact being served: kind, architecture, labels, fingerprint.",
            registry=r,
        )
        self.ready = Gauge(
            "genretag_ready",
            "1 once the daemon serves (model loaded and checked, sources started: the "
            "moment systemd hears READY), 0 while it starts or stops; /metrics answers from the first "
            "second, /ready with 200 or 503 to match.",
            registry=r,
        )
        self.model_load = Gauge(
            "genretag_model_load_seconds",
            "Wall time of the last successful model load: the "
            "machine-learning framework's import (first load only), reading the artifact and its check "
            "on known inputs.",
            registry=r,
        )
        self.reloads = Counter(
            "genretag_model_reloads",
            "Reloads on SIGHUP by result: ok (new model serving) or failed "
            "(refused; the previous model keeps serving).",
            ["result"],
            registry=r,
        )
        self.events_published = Counter(
            "genretag_events_published", "Events sent on the PUB socket, per type.", ["type"], registry=r
        )
        self.events_dropped = Counter(
            "genretag_events_dropped",
            "Events sent to no subscriber because one matching subscriber was "
            "publish.hwm events behind, per type; counted only with publish.nodrop = true (by default a slow "
            "subscriber silently misses events and the others are not held back).",
            ["type"],
            registry=r,
        )
        self.auth_failures = Counter(
            "genretag_auth_failures",
            "Connections refused by CURVE authentication on a ZeroMQ socket: input "
            "(zmq: sources) or publish (events); a client without CURVE, with the wrong server key or with a "
            "key not in curve_clients.  A refused client may retry, and each attempt counts.",
            ["socket"],
            registry=r,
        )
        for socket in AUTH_SOCKETS:
            self.auth_failures.labels(socket)
        for result in ("ok", "failed"):
            self.reloads.labels(result)
        for event_type in EVENT_TYPES:
            self.events_published.labels(event_type)
            self.events_dropped.labels(event_type)
        self._server: Any = None
        self.serving = False  # what /ready says (genretag_ready, as a status code)

    def set_ready(self, ready: bool) -> None:
        """The daemon serves (or stops serving): ``genretag_ready`` and ``/ready``."""
        self.serving = ready
        self.ready.set(int(ready))

    def stream(self, metric: Any, stream: str, *labels: str) -> Any:
        """The child of per-stream ``metric`` for ``stream`` (and other labels), kept for :meth:`forget`."""
        with self._lock:
            self._per_stream[stream].add((metric, (stream, *labels)))
        return metric.labels(stream, *labels)

    def forget(self, stream: str) -> None:
        """Remove every series of ``stream`` (its slot goes to another stream)."""
        for scores in self._score_families:
            scores.latest.pop(stream, None)
        for family in self._families:
            family.remove(stream)
        self._labels.forget(stream)
        with self._lock:
            series = self._per_stream.pop(stream, set())
        for metric, labels in series:
            try:
                metric.remove(*labels)
            except KeyError:
                pass

    def track_queue(self, depth: Callable[[], float], capacity: int) -> None:
        """Read the queue depth at scrape time (always current, no update on the hot path)."""
        self.queue_depth.set_function(depth)
        self.queue_capacity.set(capacity)

    def set_model(self, manifest: ArtifactManifest) -> None:
        """Describe the model now serving, and start score series from scratch for its labels."""
        self.model.info(
            {
                "kind": manifest.kind,
                "architecture": manifest.architecture,
                "labels": ",".join(manifest.labels),
                "fingerprint": manifest.fingerprint(),
            }
        )
        self.scores.start(manifest.labels)
        self.mood_scores.start(manifest.heads.get("mood", {}).get("labels", []))
        self.tag_scores.start(manifest.heads.get("tags", {}).get("labels", []))

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` (port 0: any free one) in a daemon thread; return the port."""
        self._server = MetricsServer(host, port, self.render, CONTENT_TYPE, lambda: self.serving)
        return self._server.port

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def render(self) -> bytes:
        """The exposition text, as a scrape returns it."""
        fast = "".join([family.render() for family in (*self._families, *self._score_families)])
        return generate_latest(self.registry) + fast.encode()
