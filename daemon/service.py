"""``genretag serve``: the daemon's life cycle around the tagging pipeline.

Start-up: serve ``/metrics`` first (``genretag_ready`` 0), so an operator
sees a starting daemon rather than a dead one; load and warm up the model
(a model that fails on silence, noise and a tone never serves; the time goes
to ``genretag_model_load_seconds``), bind the event publisher, start the
:class:`~genretag.daemon.tagging.Tagger` and the sources, log one line with
every bound address, then set ``genretag_ready`` 1 and tell systemd READY.  ZeroMQ sockets with
curve keys in their config section become CURVE servers before they bind
(:mod:`genretag.daemon.curve`); refused connections are counted in
``genretag_auth_failures_total{socket}``.

Threads
    * main: waits for signals; pings the systemd watchdog and updates STATUS.
    * one or more per source: read audio, call the Tagger's ingest side.  A
      ``zmq:...?workers=N`` source only routes each message to one of N ingest
      processes, which decode and window it; a collector thread hands their
      windows to the Tagger (:mod:`genretag.daemon.ingest.pool`).
    * inference (the batcher's): models, smoothers and the PUB socket.
    * metrics HTTP server (prometheus-client's, a daemon thread).
    * reload: one at a time, started by SIGHUP.
    * with curve keys: pyzmq's ZAP authenticator, one monitor per protected socket.
    See :mod:`genretag.daemon.tagging` for which state each one touches.

Signals
    SIGTERM / SIGINT: stop the sources, publish ``down`` for every stream
    still up, finish the batch in flight (windows still queued are dropped and
    counted, so exit is prompt with any model), close the publisher with its
    linger so the final events leave, exit 0.
    SIGHUP: in a background thread, re-read the config file (command-line
    flags still override it) and load the model it names.  Anything wrong (bad
    config, broken artifact, a model that fails the warm-up) is refused with
    a log line and ``genretag_model_reloads_total{result="failed"}``; the old
    model keeps serving throughout.  A good model is swapped in between two
    batches, without losing a window.  Window, silence, smoothing and
    ``publish.scores`` settings are applied too; changes to sources, addresses,
    limits and batch settings are logged as needing a restart.  With ingest
    worker processes, a reload that would change how streams are windowed
    (the model's window, ``window.hop_seconds``, silence settings) is refused:
    the workers keep theirs until a restart.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from genretag.daemon.bind_checks import split_host_port
from genretag.daemon.config import Config, ConfigError
from genretag.daemon.curve import CurveGuard, load_server_keys
from genretag.daemon.events import Event, EventPublisher
from genretag.daemon.fleet import Shard
from genretag.daemon.metrics import Metrics
from genretag.daemon.protocol import Limits
from genretag.daemon.sources.base import BuildEnv, Source
from genretag.daemon.sources.registry import KINDS, build_source, default_name
from genretag.daemon.systemd import Notifier
from genretag.daemon.tagging import Tagger, windower_settings
from genretag.models.bundled import resolve_model
from genretag.models.predictor import Predictor, check_predictions, known_inputs, load_predictor, runtime_name
from genretag.models.staging import aligned_empty

log = logging.getLogger("genretag.daemon")

STATUS_EVERY_SECONDS = 5.0
SOURCE_STOP_SECONDS = 2.0
RESTART_ONLY = ("batch", "publish", "metrics", "limits", "fleet", "sources")
# Python's default is 5 ms: a thread that releases the GIL around each socket call or array copy (all of the
# daemon's do, thousands of times a second) waits up to that long to take it back while another thread
# computes.  0.5 ms gave 13 % more scored audio at 10,000 streams on the GPU box; 0.1 ms no more.
GIL_SWITCH_SECONDS = 0.0005


def load_model(config: Config) -> Predictor:
    """Load the configured artifact and check it on known inputs before it may serve."""
    if config.model.backend:
        os.environ["KERAS_BACKEND"] = config.model.backend  # read when keras is first imported
    predictor = load_predictor(resolve_model(config.model.path), config.model.runtime, config.model.precision)
    log.info("model %s served by %s", predictor.manifest.fingerprint(), runtime_name(predictor))
    check_predictions(predictor.manifest, predictor.predict_outputs(known_inputs(predictor.manifest)))
    return predictor


@dataclass
class _EventSink:
    """The ``emit`` of the Tagger: PUB socket, optional JSON lines on stdout, counters."""

    publisher: EventPublisher
    metrics: Metrics
    print_events: bool
    closed: bool = False  # set before the socket closes, in case inference outlived the shutdown wait

    def __call__(self, event: Event) -> None:
        if self.closed:
            return
        sent = self.publisher.publish(event)
        (self.metrics.events_published if sent else self.metrics.events_dropped).labels(event["type"]).inc()
        if self.print_events:
            try:
                sys.stdout.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):  # stdout closed by a pager: keep serving, stop printing
                self.print_events = False


class Service:
    """One daemon run; :meth:`run` returns the exit status.

    ``reload_config`` re-reads the configuration on SIGHUP (it raises
    :class:`ConfigError`); ``print_events`` writes every event to stdout.
    """

    def __init__(
        self, config: Config, reload_config: Callable[[], Config], *, print_events: bool = False
    ) -> None:
        self.config = config
        self._reload_config = reload_config
        self._print = print_events
        self._stop = threading.Event()
        self._hup = threading.Event()
        self._reloading: threading.Thread | None = None
        self.notifier = Notifier()
        self._sources: list[Source] = []

    def run(self) -> int:
        cfg = self.config
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        self._install_signals()
        self.metrics = metrics = Metrics()
        metrics_at = "off"
        if cfg.metrics.enabled:  # first: an operator sees genretag_ready 0 while the model loads
            host, port = split_host_port(cfg.metrics.address)
            metrics_at = f"http://{host}:{metrics.serve(host, port)}/metrics"
        # The publisher binds before the model loads: subscribers that reconnect by themselves (to a
        # restarted daemon, every 100 ms by ZeroMQ's default) are attached again by the time the first
        # events ("up") go out, instead of missing them as late joiners.
        self.guard = guard = CurveGuard(lambda socket: metrics.auth_failures.labels(socket).inc())
        pub = cfg.publish
        try:
            self.publisher = publisher = EventPublisher(
                pub.address,
                hwm=pub.hwm,
                nodrop=pub.nodrop,
                secure=self._secure(guard, pub.curve_secret_key, pub.curve_clients, "publish"),
            )
        except BaseException:
            guard.close()
            metrics.close()
            raise
        try:
            predictor = self._load_first_model(cfg)
        except BaseException:
            self._close_outputs(publisher, guard, metrics)
            raise
        if self._stop.is_set():  # SIGTERM while the model loaded: nothing was started yet
            self._close_outputs(publisher, guard, metrics)
            log.info("stopped before serving")
            return 0
        shard = Shard(cfg.fleet.shards, cfg.fleet.index)
        # In a fleet every daemon reads the same config and starts the single-stream sources of its shard.
        chosen = [
            s
            for s in cfg.sources
            if s.source.source_kind.multi_stream or shard.owns(s.name or default_name(s.source))
        ]
        specs = [(s.source, s.name) for s in chosen]
        configured = {
            name or default_name(spec): spec.kind for spec, name in specs if not spec.source_kind.multi_stream
        }
        self.output = _EventSink(publisher, metrics, self._print)
        multi = [kind.name for kind in KINDS.values() if kind.multi_stream]  # feeds every other stream
        self.tagger = Tagger(cfg, predictor, self.output, metrics, configured, other_kind=multi[0])
        sources = self._sources = []
        try:
            self.tagger.start()
            limits = Limits(max_sr=cfg.limits.max_sample_rate, max_frame_bytes=cfg.limits.max_frame_bytes)
            for (spec, name), src in zip(specs, chosen, strict=True):
                secure = self._secure(guard, src.curve_secret_key, src.curve_clients, "input")
                source = build_source(
                    spec,
                    name or default_name(spec),
                    BuildEnv(limits=limits, secure=secure, allocate_rows=aligned_empty),
                )
                source.start(self.tagger)
                sources.append(source)
            m = predictor.manifest
            log.info(
                "serving: model %s %s (%s); sources: %s; events on %s; metrics on %s",
                m.architecture,
                m.fingerprint(),
                ", ".join(m.labels),
                ", ".join(str(getattr(s, "address", s.name)) for s in sources) or "none",
                publisher.address,
                metrics_at,
            )
            metrics.set_ready(True)
            self.notifier.ready(self._status(0.0))
            self._main_loop()
        finally:
            self._shutdown(sources)
        return 0

    def _load_first_model(self, cfg: Config) -> Predictor:
        """:func:`load_model`, timed into ``genretag_model_load_seconds`` and logged: most of the start-up
        (the framework's import, the artifact, the first compiled call; see benchmarks/RESULTS.md)."""
        log.info("loading the model (%s)", cfg.model.path or "default")
        started = time.monotonic()
        predictor = load_model(cfg)
        seconds = time.monotonic() - started
        self.metrics.model_load.set(seconds)
        log.info("model loaded and checked in %.1f s", seconds)
        return predictor

    @staticmethod
    def _secure(
        guard: CurveGuard, secret: str | None, clients: str | None, label: str
    ) -> Callable[[Any], None] | None:
        """The CURVE hook for a socket whose section names ``secret`` (else None: plain ZeroMQ)."""
        if secret is None:
            return None
        keys = load_server_keys(secret, clients)
        log.info(
            "%s socket: CURVE, %s",
            label,
            f"{len(keys.clients)} authorised client key(s)"
            if keys.clients is not None
            else "any client holding the daemon's public key",
        )
        return guard.server(keys, label)

    def _install_signals(self) -> None:
        def stop(signum: int, _: FrameType | None) -> None:
            log.info("%s: shutting down", signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, lambda *_: self._hup.set())

    def _main_loop(self) -> None:
        interval = self.notifier.watchdog_interval
        tick = min(0.5, interval or 0.5)
        last_status, last_windows = time.monotonic(), 0
        while not self._stop.wait(tick):
            if self._hup.is_set() and (self._reloading is None or not self._reloading.is_alive()):
                self._hup.clear()  # a SIGHUP during a reload is served after it
                self._reloading = threading.Thread(target=self._reload, name="genretag-reload", daemon=True)
                self._reloading.start()
            if interval is not None and self.tagger.batcher.alive:
                self.notifier.watchdog()
            now = time.monotonic()
            if now - last_status >= STATUS_EVERY_SECONDS:
                windows = self.tagger.windows_scored
                self.notifier.status(self._status((windows - last_windows) / (now - last_status)))
                last_status, last_windows = now, windows

    def _status(self, windows_per_second: float) -> str:
        batcher = self.tagger.batcher
        return (
            f"{self.tagger.streams_up} streams up, {windows_per_second:.1f} windows/s, "
            f"queue {batcher.depth}/{batcher.queue_size}"
        )

    def _reload(self) -> None:
        """SIGHUP: new config and model, or nothing changes (see the module docstring)."""
        try:
            config = self._reload_config()
            if config.model.backend != self.config.model.backend:
                log.warning("reload: model.backend changed; the Keras backend is fixed until a restart")
            started = time.monotonic()
            predictor = load_model(config)
            load_seconds = time.monotonic() - started
        except ConfigError as err:
            self._reload_failed("invalid configuration: " + "; ".join(err.problems))
            return
        except Exception as err:  # noqa: BLE001  (any failure to load keeps the old model serving)
            self._reload_failed(str(err) or repr(err))
            return
        if (
            any(getattr(source, "windows_in_workers", False) for source in self._sources)
            and windower_settings(predictor, config) != self.tagger.windowing
        ):
            self._reload_failed(
                "the new model's window or the silence settings differ from the running "
                "ones, and ingest worker processes keep theirs until a restart"
            )
            return
        changed = [name for name in RESTART_ONLY if getattr(config, name) != getattr(self.config, name)]
        if changed:
            log.warning("reload: changes to %s need a restart; not applied", ", ".join(changed))
        self.tagger.reload(config, predictor)
        self.config = config
        self.metrics.model_load.set(load_seconds)
        self.metrics.reloads.labels("ok").inc()
        log.info(
            "reload: model %s loaded, swapping it in after the windows already queued",
            predictor.manifest.fingerprint(),
        )

    def _reload_failed(self, why: str) -> None:
        self.metrics.reloads.labels("failed").inc()
        log.error("reload refused, the previous model keeps serving: %s", why)

    def _shutdown(self, sources: list[Source]) -> None:
        self.notifier.stopping()
        self.metrics.set_ready(False)
        for source in sources:
            try:
                source.stop(SOURCE_STOP_SECONDS)
            except Exception:  # noqa: BLE001  (one source failing to stop must not keep the others)
                log.exception("source %s did not stop cleanly", source.name)
        self.tagger.close()
        self.output.closed = True
        self._close_outputs(self.publisher, self.guard, self.metrics)
        log.info("stopped")

    @staticmethod
    def _close_outputs(publisher: EventPublisher, guard: CurveGuard, metrics: Metrics) -> None:
        """Close what the daemon publishes through, last to first opened."""
        publisher.close()
        guard.close()
        metrics.close()
