"""The tagging pipeline of all streams: chunks in, events out.

:class:`Tagger` is the sink every source talks to (:class:`~genretag.daemon.sources.base.SourceSink`)
and the owner of the batcher.  Per stream it keeps a
:class:`~genretag.daemon.stream.StreamWindower` (resampling, ring buffer,
silence gate) on the ingest side and a
:class:`~genretag.daemon.smoothing.LabelSmoother` on the output side.

Threading model
    *Ingest side*: any source thread calls :meth:`audio`, :meth:`state` and
    :meth:`error`.  One lock (``_lock``) guards the stream table and the
    windowers; under it a chunk is windowed and its windows are queued with
    the batcher's non-blocking ``put``.  Nothing under the lock waits for
    the model.
    *Output side*: the batcher's single inference thread runs every result
    callback and every control item, so the smoothers, the label of each
    stream and the ``emit`` callable (the PUB socket, which is not
    thread-safe) are touched by that thread only, without locks.
    State changes seen on the ingest side (``up``, ``down``, ``silence``,
    ``recovered``) travel through the batcher's queue as control items, so
    each stream's events leave in stream order: the windows before a silence
    are labelled before the ``silence`` event is published.

Null labels
    Whenever a stream's published rolling label goes from a genre to null
    (the stream went down or silent, a reload restarted its smoothing, the
    smoother abstains), a ``label`` event with ``label`` null, ``prev`` and a
    ``reason`` is published, in one place (:meth:`Tagger._label_out`), so a
    subscriber to label events alone never keeps showing a genre the daemon
    no longer gives.

Reload (:meth:`reload`, from the service's reload thread) swaps the model and
settings at one point of the queue: windows queued before are scored by the
old model, windows after by the new one.  When the window geometry or the
silence gate changes, each stream gets a new windower; its positions carry
on from the old one's, and the partial window it held is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from genretag.daemon.analysis import AnalysisSetup, StreamAnalysis, TrackingBudget, WindowAnalysis
from genretag.daemon.batcher import Batcher
from genretag.daemon.config import Config
from genretag.daemon.events import Event, analysis_event, label_event, mood_event, scores_event, state_event
from genretag.daemon.fleet import Shard, shard_of
from genretag.daemon.metrics import UNKNOWN_STREAM, Metrics
from genretag.daemon.protocol import ErrorKind
from genretag.daemon.silence import StateChange
from genretag.daemon.smoothing import LabelSmoother, SmoothResult, smoother_from_config
from genretag.daemon.sources.base import Chunk, StreamState
from genretag.daemon.stream import BadAudio, PushResult, StreamWindower, Window, WindowerSettings
from genretag.models.predictor import Predictor, warm_up
from genretag.pipeline.windows import WindowSpec

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 60.0  # repeated source errors of one kind and stream are logged at most this often


def served_window_spec(predictor: Predictor, config: Config) -> WindowSpec:
    """The artifact's window at the configured hop (the artifact's own hop by default)."""
    m = predictor.manifest
    return WindowSpec(m.sample_rate, m.window_seconds, config.window.hop_seconds or m.hop_seconds)


def analysis_setup(predictor: Predictor, config: Config) -> AnalysisSetup:
    """How every stream is analysed beside genre for ``predictor``'s heads under ``config``."""
    m = predictor.manifest
    heads = {name: list(head["labels"]) for name, head in m.heads.items()}
    hop = served_window_spec(predictor, config).hop_seconds
    return AnalysisSetup(config.analysis, config.smoothing, heads, m.sample_rate, hop)


def windower_settings(predictor: Predictor, config: Config) -> WindowerSettings:
    """How every stream is windowed for ``predictor`` under ``config``."""
    return WindowerSettings(
        served_window_spec(predictor, config), config.silence.threshold_db, config.silence.hold_seconds
    )


@dataclass
class _StreamIngest:
    """Ingest-side state of one stream (guarded by ``Tagger._lock``).

    ``windower`` is None for a stream windowed in an ingest worker process: its
    position and silence total then come with each :class:`PushResult`.
    """

    windower: StreamWindower | None
    offset: float = 0.0  # seconds produced by windowers this stream had before (a reload, a remote restart)
    produced: float = 0.0  # the current windower's position after its last result
    up: bool = False
    down_since: float = 0.0
    silence_counted: float = 0.0
    clean_from: float = 0.0  # windower position of the first window after a silence with no silence in it
    live: bool = True  # its windows are held to the batcher's age bound (Chunk.live)

    @property
    def pos(self) -> float:
        return self.offset + self.produced

    def new_windower(self, windower: StreamWindower | None) -> None:
        """Carry on from the current position with a fresh windower (local, or a remote one's restart)."""
        self.offset, self.produced = self.pos, 0.0
        self.windower = windower
        self.silence_counted = self.clean_from = 0.0


@dataclass
class _StreamLabel:
    """Output-side state of one stream (inference thread only).

    ``label`` is the label last *published* (not the smoother's): a null label event
    is due exactly when it is a genre and the stream loses it.
    """

    smoother: LabelSmoother
    analysis: StreamAnalysis
    label: str | None = None
    pos: float = 0.0  # end of the last scored window, for events that no window carries


class Tagger:
    """Sources -> windows -> batcher -> smoothers -> events; see the module docstring.

    Parameters
    ----------
    config : validated configuration (silence, smoothing, batch, limits, publish.scores).
    predictor : the model to start with.
    emit : publishes one event; called on the inference thread only.
    metrics : where everything is counted.
    configured : stream ids of configured single-stream sources, each with its source kind (a plain
        sequence of ids: kind ``?``): shown in metrics (``stream_up`` 0) before their first audio, and usable
        as metric labels for their errors.
    other_kind : the source kind of every other stream (the multi-stream kind: ``zmq``), the
        ``source_kind`` label of its errors.
    """

    def __init__(
        self,
        config: Config,
        predictor: Predictor,
        emit: Callable[[Event], None],
        metrics: Metrics,
        configured: Mapping[str, str] | Sequence[str] = (),
        other_kind: str = "zmq",
    ) -> None:
        warm_up(predictor, config.batch.max_batch_size)
        self._config = config  # ingest side, guarded by _lock
        self._out_config = config  # output side: changes on the inference thread, in queue order
        self._settings = windower_settings(predictor, config)
        self._labels = list(predictor.manifest.labels)
        self._calibration = dict(predictor.manifest.calibration)  # output side, like _labels
        self._served = predictor  # output side, like _labels
        self._analysis = analysis_setup(predictor, config)  # output side, like _labels
        self._tracking = TrackingBudget(config.analysis.cpu_share)  # output side
        self._emit = emit
        self.metrics = metrics
        self._configured = (
            dict(configured) if isinstance(configured, Mapping) else dict.fromkeys(configured, "?")
        )
        self._other_kind = other_kind
        self._shard = Shard(config.fleet.shards, config.fleet.index)  # a restart changes it, not a reload
        self._lock = threading.Lock()
        self._streams: dict[str, _StreamIngest] = {}
        self._outputs: dict[str, _StreamLabel] = {}  # inference thread only
        self._logged: dict[tuple[str, str], float] = {}
        self._closing = False
        self.windows_scored = 0
        b = config.batch
        self.batcher = Batcher(
            predictor,
            self._on_result,
            max_batch_size=b.max_batch_size,
            max_wait_ms=b.max_wait_ms,
            queue_size=b.queue_size,
            max_age_ms=b.max_age_ms,
            on_drop=self._on_drop,
            on_batch=self._on_batch,
            on_swap=self._on_swap,
            on_error=lambda _: metrics.inference_errors.inc(),
        )
        metrics.track_queue(lambda: self.batcher.depth, b.queue_size)
        metrics.set_model(predictor.manifest)
        for stream in self._configured:
            metrics.stream_up.set(stream, 0)

    @property
    def streams_up(self) -> int:
        return sum(st.up for st in list(self._streams.values()))

    @property
    def windowing(self) -> WindowerSettings:
        """How streams are windowed now, for sources that window in worker processes."""
        return self._settings

    @property
    def windows_held(self) -> int:
        """The most windows held at once: a full queue and the batch being scored."""
        return self.batcher.queue_size + self.batcher.max_batch_size

    def start(self) -> None:
        self.batcher.start()

    # --- ingest side: any source thread ---------------------------------------------------------

    def audio(self, chunk: Chunk) -> None:
        with self._lock:
            st = self._admit(chunk.stream, local=True)
            if st is None:
                return
            if not st.up:
                self._went_up(chunk.stream, st)
            assert st.windower is not None  # a stream is windowed here or in a worker, never both
            st.live = chunk.live
            try:
                result = st.windower.push(chunk.samples, chunk.sample_rate, chunk.arrival_time)
            except BadAudio as err:
                self.error(chunk.stream, ErrorKind.BAD_AUDIO, str(err))
                return
            self._forward(chunk.stream, st, result)

    def windowed(self, stream: str, result: PushResult) -> None:
        """Windows and gate changes of a stream windowed in an ingest worker process (in stream order)."""
        with self._lock:
            st = self._admit(stream, local=False)
            if st is None:
                return
            if not st.up:
                self._went_up(stream, st)
            self._forward(stream, st, result)

    def state(
        self, stream: str, state: StreamState, reason: str = "", detail: str = "", *, remote: bool = False
    ) -> None:
        """A source's ``up`` or ``down``; see :class:`~genretag.daemon.sources.base.SourceSink`.

        A ``down`` is published once per outage, including for a stream that was never
        up (a URL answering 404 from the start, a missing device): that stream is
        registered down, so the event says at once what the log says.
        ``remote``: the stream is windowed in an ingest worker (its results come to :meth:`windowed`).
        """
        with self._lock:
            if state == "up":
                st = self._admit(stream, local=not remote)
                if st is not None and not st.up:
                    self._went_up(stream, st)
                return
            st = self._streams.get(stream)
            if st is not None and not st.up:
                return  # already reported down (sources report transitions, this guards the rest)
            if st is None:
                st = self._admit(stream, local=not remote)
                if st is None:
                    return
            elif st.windower is not None:  # a worker flushes its own windower before it says down
                self._forward(stream, st, st.windower.flush())
            st.up, st.down_since = False, time.monotonic()
            self.metrics.stream_up.set(stream, 0)
            why = reason or "error"
            self.batcher.call(partial(self._state_out, stream, "down", st.pos, why))
        log.info("stream %r down: %s%s", stream, why, f" ({detail})" if detail else "")

    def error(self, stream: str, kind: ErrorKind, message: str) -> None:
        label = stream if stream in self._streams or stream in self._configured else UNKNOWN_STREAM
        self._count_error(stream, label, self._source_kind(stream), ErrorKind(kind), message)

    def _source_kind(self, stream: str) -> str:
        return self._configured.get(stream, self._other_kind)

    def _count_error(self, stream: str, label: str, source_kind: str, kind: ErrorKind, message: str) -> None:
        """Count error ``kind`` of ``stream`` under the metric label ``label``, and log it (at most every
        ``LOG_EVERY_SECONDS``)."""
        m = self.metrics
        m.stream(m.source_errors, label, kind, source_kind).inc()
        if kind == ErrorKind.RECONNECT:
            m.stream(m.reconnects, label, source_kind).inc()
        elif kind.refused_audio:
            m.stream(m.decode_errors, label, kind, source_kind).inc()
        now, key = time.monotonic(), (label, kind)
        if now - self._logged.get(key, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            self._logged[key] = now
            log.warning(
                "stream %r: %s: %s (logged at most every %g s)", stream, kind, message, LOG_EVERY_SECONDS
            )

    def _admit(self, stream: str, *, local: bool) -> _StreamIngest | None:
        """The stream's state, created if there is room (a down stream may give up its slot).

        ``local``: the stream is windowed here (it gets a windower), else in a worker process.
        """
        st = self._streams.get(stream)
        if st is not None or self._closing:
            return st
        if not self._shard.owns(stream):
            self._count_error(
                UNKNOWN_STREAM,
                UNKNOWN_STREAM,
                self._source_kind(stream),
                ErrorKind.OTHER_SHARD,
                f"stream {stream!r} refused: daemon {shard_of(stream, self._shard.shards)} of the fleet tags "
                f"it, this is daemon {self._shard.index} (`genretag send` with a --to per daemon routes it)",
            )
            return None
        if len(self._streams) >= self._config.limits.max_streams:
            down = [(s.down_since, name) for name, s in self._streams.items() if not s.up]
            if not down:
                self.metrics.streams_refused.inc()
                self._count_error(
                    UNKNOWN_STREAM,
                    UNKNOWN_STREAM,
                    self._source_kind(stream),
                    ErrorKind.STREAM_REFUSED,
                    f"stream {stream!r} refused: {len(self._streams)} streams active (limits.max_streams)",
                )
                return None
            evicted = min(down)[1]
            del self._streams[evicted]
            self.batcher.call(partial(self._forget, evicted))
        st = self._streams[stream] = _StreamIngest(self._settings.new_windower() if local else None)
        return st

    def _went_up(self, stream: str, st: _StreamIngest) -> None:
        if st.windower is None and st.produced:  # a worker forgets a stream when it goes down
            st.new_windower(None)
        st.up = True
        self.metrics.stream_up.set(stream, 1)
        self.batcher.call(partial(self._state_out, stream, "up", st.pos, "audio"))
        log.info("stream %r up", stream)

    def _forward(self, stream: str, st: _StreamIngest, result: PushResult) -> None:
        """Queue a push's windows and gate changes in stream order.

        Windows are not scored while the stream is silent, nor after a silence until
        a window holds none of it: a window of half dead air, half music says little
        about the genre and, being the first after a reset, would seed the smoother.
        """
        m, changes = self.metrics, list(result.changes)
        st.produced = result.pos
        for window in result.windows:
            while changes and changes[0].pos <= window.pos:
                self._gate_change(stream, st, changes.pop(0))
            if window.silent or window.pos < st.clean_from:
                m.windows_silent.inc(stream)
            else:
                self.batcher.put(
                    stream, replace(window, pos=window.pos + st.offset) if st.offset else window, live=st.live
                )
        for change in changes:
            self._gate_change(stream, st, change)
        silence = result.silence_seconds
        if silence > st.silence_counted:
            m.silence.inc(stream, silence - st.silence_counted)
            st.silence_counted = silence

    def _gate_change(self, stream: str, st: _StreamIngest, change: StateChange) -> None:
        event_state = "silence" if change.state == "silence" else "recovered"
        if event_state == "recovered":
            st.clean_from = self._settings.clean_after(change.pos)
        self.batcher.call(
            partial(
                self._state_out,
                stream,
                event_state,
                st.offset + change.pos,
                "silence" if event_state == "silence" else "audio",
            )
        )

    # --- reload and shutdown: the service's threads ---------------------------------------------

    def reload(self, config: Config, predictor: Predictor) -> None:
        """Serve ``predictor`` with ``config``'s window, silence and smoothing settings from now on."""
        warm_up(predictor, self._config.batch.max_batch_size)  # here, not on the inference thread
        settings = windower_settings(predictor, config)
        with self._lock:
            if settings != self._settings:
                for st in self._streams.values():
                    if st.windower is not None:  # the service refuses such a reload with ingest workers
                        st.new_windower(settings.new_windower())
            self._settings, self._config = settings, config
            self.batcher.swap(predictor)
            self.batcher.call(partial(self._apply_output, config))

    def close(self, timeout: float = 5.0) -> None:
        """Refuse new audio, publish ``down`` for every stream still up, finish and stop the batcher.

        The batch in flight gets ``timeout`` seconds; past that the final events are not published
        (lower ``batch.max_batch_size`` for a model that slow).
        """
        with self._lock:
            self._closing = True
            for stream, st in self._streams.items():
                if st.up:
                    st.up = False
                    self.metrics.stream_up.set(stream, 0)
                    self.batcher.call(partial(self._state_out, stream, "down", st.pos, "stopped"))
        if not self.batcher.stop(timeout):
            log.warning("inference still busy after %g s: exiting without the final events", timeout)

    # --- output side: the inference thread ------------------------------------------------------

    def _on_result(
        self, stream: str, window: Window, scores: np.ndarray, heads: Mapping[str, np.ndarray]
    ) -> None:
        out = self._outputs.get(stream)
        if out is None:
            out = self._outputs[stream] = self._new_output(stream)
        # Tempo and key are best effort, within their share of this thread (analysis module docstring).
        track = out.analysis.tracks and self._tracking.allows()
        started = time.perf_counter()
        seen = out.analysis.update(window, heads, track=track)
        if track:
            self._tracking.spend(time.perf_counter() - started)
        elif out.analysis.tracks:
            self.metrics.analysis_skipped.inc(stream)
        if seen.state is not None:
            self._speech_out(stream, out, window.pos, seen.state)
        # A talk window leaves the genre as it was: no update, no label change (module docstring of analysis).
        res = out.smoother.current() if seen.held else out.smoother.update(scores, window.pos)
        out.pos = window.pos
        values = res.scores.tolist()
        if res.changed or self._out_config.publish.scores:
            named = dict(zip(self._labels, values, strict=True))
            if res.changed and res.label is not None:
                self._emit(label_event(stream, window.pos, res.label, res.confidence, named, res.prev))
                out.label = res.label
                self.metrics.label_changes.inc(stream)
            elif res.changed:  # the smoother abstains (or gives up its label for another reason)
                self._label_out(stream, out, window.pos, res.reason or "uncertain", named)
            if self._out_config.publish.scores:
                keys = out.analysis.descriptors(seen)
                self._emit(
                    scores_event(stream, window.pos, res.label, res.confidence, named, descriptors=keys)
                )
        self._analysis_out(stream, out, window.pos, res, seen)
        self.metrics.scores.latest[stream] = values  # read at scrape time (see StreamScores)
        self.metrics.windows_processed.inc(stream)
        self.metrics.latency.observe(time.monotonic() - window.arrival_time)
        self.windows_scored += 1

    def _speech_out(self, stream: str, out: _StreamLabel, pos: float, state: str) -> None:
        """The stream's speech state changed: a ``state`` event, and its state metric."""
        self._emit(state_event(stream, pos, state, label=out.label, confidence=None))
        self.metrics.stream_state.set(stream, state)

    def _analysis_out(
        self, stream: str, out: _StreamLabel, pos: float, res: SmoothResult, seen: WindowAnalysis
    ) -> None:
        """Mood and analysis events, and the metrics of everything beside genre, after one window."""
        m, analysis = self.metrics, out.analysis
        if seen.speech is not None:
            m.speech_probability.set(stream, seen.speech)
            if analysis.in_speech:
                m.speech_seconds.inc(stream, analysis.setup.hop_seconds)
        mood = seen.mood
        named: dict[str, float] | None = None
        if mood is not None:
            m.mood_scores.latest[stream] = mood.scores.tolist()
            if mood.changed:
                m.mood_changes.inc(stream)
                named = dict(zip(self._labels, res.scores.tolist(), strict=True))
                keys = analysis.descriptors(seen)
                self._emit(mood_event(stream, pos, res.label, res.confidence, named, mood.prev, keys))
        if analysis.tags is not None:
            m.tag_scores.latest[stream] = analysis.tags.tolist()
        if seen.tempo is not None:
            m.tempo_bpm.set(stream, seen.tempo.bpm or 0.0)
            m.tempo_confidence.set(stream, seen.tempo.confidence)
        if seen.key is not None and seen.key.name is not None:
            m.key.set(stream, seen.key.name, seen.key.confidence)
        if seen.tempo is not None or seen.key is not None:
            named = named or dict(zip(self._labels, res.scores.tolist(), strict=True))
            keys = analysis.descriptors(seen)
            self._emit(analysis_event(stream, pos, res.label, res.confidence, named, keys))

    def _new_output(self, stream: str) -> _StreamLabel:
        """A stream's smoother; its label-change count shows (at 0) from its first scored window."""
        smoother = smoother_from_config(
            self._labels, self._out_config.smoothing, float(self._calibration.get("min_confidence", 0.0))
        )
        self.metrics.label_changes.touch(stream)
        return _StreamLabel(smoother, self._analysis.new_stream())

    def _state_out(self, stream: str, state: str, pos: float, reason: str) -> None:
        self._emit(state_event(stream, pos, state, reason=reason))
        self.metrics.stream_state.set(stream, state if state in ("silence", "down") else "music")
        out = self._outputs.get(stream)
        if out is not None and state in ("silence", "down"):
            out.smoother.reset()  # the label is null while silent or down and settles anew afterwards
            out.analysis.reset()  # so are the speech state, mood, tags, tempo and key
            self._label_out(stream, out, pos, reason)

    def _label_out(
        self, stream: str, out: _StreamLabel, pos: float, reason: str, scores: dict[str, float] | None = None
    ) -> None:
        """The stream's label is now null: say so, once, if it was a genre (see the module docstring)."""
        if out.label is None:
            return
        self._emit(label_event(stream, pos, None, None, scores or {}, out.label, reason=reason))
        out.label = None

    def _drop_outputs(self, reason: str) -> None:
        """Forget every stream's smoother and analysis (a reload): labels are null until they settle anew,
        and a stream in the speech state is back to music (the new analysis starts there)."""
        for stream, out in list(self._outputs.items()):
            if out.analysis.in_speech:
                self._emit(state_event(stream, out.pos, "music", reason=reason))
                self.metrics.stream_state.set(stream, "music")
            self._label_out(stream, out, out.pos, reason)
        self._outputs.clear()

    def _on_drop(self, stream: str, reason: str) -> None:
        self.metrics.stream(self.metrics.windows_dropped, stream, reason).inc()

    def _on_batch(self, size: int, seconds: float) -> None:
        self.metrics.batch_size.observe(size)
        self.metrics.inference_duration.observe(seconds)

    def _on_swap(self, old: Predictor, new: Predictor) -> None:
        self._labels = list(new.manifest.labels)
        self._calibration = dict(new.manifest.calibration)
        self._served = new  # the analysis setup follows in _apply_output, with the new config
        self.metrics.set_model(new.manifest)  # removes every score series
        self._drop_outputs("reload")
        log.info(
            "now serving %s model %s (labels %s)",
            new.manifest.architecture,
            new.manifest.fingerprint(),
            ", ".join(self._labels),
        )

    def _apply_output(self, config: Config) -> None:
        """New smoothing and publish settings; every stream settles anew (labels may have changed too)."""
        self._out_config = config
        self._analysis = analysis_setup(self._served, config)
        self._tracking = TrackingBudget(config.analysis.cpu_share)
        self._drop_outputs("reload")

    def _forget(self, stream: str) -> None:
        self._outputs.pop(stream, None)
        self.metrics.forget(stream)
        # Log throttling state goes too, or churning stream ids with errors would grow it for ever.
        # list() copies the keys in one step, as sources may add entries meanwhile.
        for key in [key for key in list(self._logged) if key[0] == stream]:
            self._logged.pop(key, None)
