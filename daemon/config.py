"""The daemon's configuration: a TOML file, command-line overrides, one validator.

Keys are a public contract; every key, with its default::

    [model]     path (artifact dir, or a bundled model "default" or "fast"; default: "default"),
                runtime = "auto" | "openvino" | "keras", precision = "auto" | "f32" (OpenVINO's),
                backend ("tensorflow", "jax", "torch"; Keras' backend, for runtime "keras")
    [batch]     max_batch_size = 64, max_wait_ms = 50, queue_size = 1024,
                max_age_ms = 500 (0: no age bound; else more than max_wait_ms)
    [window]    hop_seconds (default: the artifact's hop)
    [silence]   threshold_db = -50, hold_seconds = 2
    [smoothing] method = "ema" | "mean", ema_alpha = 0.2, mean_windows = 9, switch_margin = 0.1,
                switch_seconds = 6, settle_windows = 4
    [analysis]  speech = true, speech_threshold = 0.5, speech_windows = 2, mood = true, tags = true,
                tempo = true, key = true, context_seconds = 30, update_seconds = 3, cpu_share = 0.25
    [publish]   address = "tcp://127.0.0.1:5556", scores = false, hwm = 1000, nodrop = false,
                allow_public = false, curve_secret_key (file), curve_clients (directory)
    [metrics]   address = "127.0.0.1:9464", enabled = true, allow_public = false
    [fleet]     shards = 1, index = 0 (this daemon's shard: it tags the streams whose hash shard is
                its index, see genretag.daemon.fleet; --shard-index or GENRETAG_SHARD_INDEX)
    [limits]    max_frame_bytes = 1048576, max_streams = 64, max_sample_rate = 192000
    [[source]]  spec = "kind:target" (see genretag.daemon.sources.registry), name, allow_public = false,
                curve_secret_key, curve_clients (zmq: sources only), and the options of the spec's kind
                (file: rate, loop, chunk_seconds; zmq: idle, workers, hwm; url: sample_rate, channels,
                chunk_seconds, connect_seconds, stall_seconds, backoff_*, stable_seconds, ffmpeg; mic:
                sample_rate, channels, block_seconds, stall_seconds, backoff_*, stable_seconds)

Every problem in a file is reported at once, each with its key path
(``batch.max_wait_ms: must be > 0``), because fixing a config one error per
restart is how outages get long.  Unknown keys are errors (a typo must not be
silently ignored).  Command-line flags are merged into the parsed TOML before
validation, so they override the file and are checked by the same rules.

ZeroMQ sockets (publish, zmq sources) are CURVE servers when their section
names ``curve_secret_key`` (a ``.key_secret`` file of ``genretag keys
generate``): traffic is encrypted and clients must know the daemon's public
key.  ``curve_clients`` (a directory of authorised clients' ``.key`` files)
makes them authenticate too; without it any client holding the daemon's
public key is accepted.  Binding a network address other than loopback needs
both, or ``allow_public = true`` to expose the socket unauthenticated on
purpose; the metrics endpoint (plain HTTP, no keys) needs ``allow_public``.
The rules, the key checks and the syntax of every address and port live in
:mod:`genretag.daemon.bind_checks`, so ``check-config`` and ``serve`` (which
validates its merged config here before it loads anything) accept the same.
Relative paths in a file (model, file: sources, key files) are relative to
the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_type_hints

from genretag.daemon import bind_checks
from genretag.daemon.events import DEFAULT_ADDRESS
from genretag.daemon.options import typed_value
from genretag.daemon.protocol import check_stream_id
from genretag.daemon.sources.registry import SourceSpec, default_name, parse_source
from genretag.models.artifact import ArtifactError, read_manifest
from genretag.models.bundled import BUNDLED_MODELS, resolve_model

BACKENDS = ("tensorflow", "jax", "torch")
# The same tuples as genretag.models.predictor.RUNTIMES and genretag.models.openvino_predictor.PRECISIONS
# (tests/models/test_serving_export.py holds them equal), spelled here so that reading a config imports no
# model code.
RUNTIMES = ("auto", "openvino", "keras")
PRECISIONS = ("auto", "f32")


class ConfigError(ValueError):
    """The configuration is invalid; :attr:`problems` lists every problem with its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ModelConfig:
    path: str | None = None
    runtime: str = "auto"  # see genretag.models.predictor.RUNTIMES
    precision: str = "auto"  # see genretag.models.openvino_predictor.PRECISIONS
    backend: str | None = None


@dataclass(frozen=True)
class BatchConfig:
    max_batch_size: int = 64
    max_wait_ms: float = 50.0
    queue_size: int = 1024
    max_age_ms: float = 500.0  # windows older than this when a batch forms are dropped (0: never)


@dataclass(frozen=True)
class WindowConfig:
    hop_seconds: float | None = None


@dataclass(frozen=True)
class SilenceConfig:
    threshold_db: float = -50.0
    hold_seconds: float = 2.0


@dataclass(frozen=True)
class SmoothingConfig:
    method: str = "ema"
    ema_alpha: float = 0.2
    mean_windows: int = 9
    switch_margin: float = 0.1
    switch_seconds: float = 3.0
    settle_windows: int = 4
    min_confidence: float | None = None  # None: the model artifact's calibrated threshold
    change_distance: float = 0.35
    change_windows: int = 3


@dataclass(frozen=True)
class AnalysisConfig:
    """What the daemon says beside genre (:mod:`genretag.daemon.analysis`); each part can be switched off.

    ``speech``, ``mood`` and ``tags`` read the artifact's heads and do nothing for a model without them;
    ``tempo`` and ``key`` analyse the audio itself, over the last ``context_seconds``, every
    ``update_seconds``.
    """

    speech: bool = True
    speech_threshold: float = 0.5  # P(speech) of a window at or above which it is talk
    speech_windows: int = 2  # windows in a row that enter (or leave) the speech state
    mood: bool = True
    tags: bool = True
    tempo: bool = True
    key: bool = True
    context_seconds: float = 30.0
    update_seconds: float = 3.0
    cpu_share: float = 0.25  # of the inference thread's time for tempo and key at most (1: no limit)


@dataclass(frozen=True)
class PublishConfig:
    address: str = DEFAULT_ADDRESS
    scores: bool = False
    hwm: int = 1000
    nodrop: bool = False
    allow_public: bool = False
    curve_secret_key: str | None = None
    curve_clients: str | None = None


@dataclass(frozen=True)
class MetricsConfig:
    address: str = "127.0.0.1:9464"
    enabled: bool = True
    allow_public: bool = False


@dataclass(frozen=True)
class FleetConfig:
    """This daemon's place among ``shards`` daemons (:mod:`genretag.daemon.fleet`); one: every stream."""

    shards: int = 1
    index: int = 0


@dataclass(frozen=True)
class LimitsConfig:
    max_frame_bytes: int = 1 << 20
    max_streams: int = 64
    max_sample_rate: int = 192000


@dataclass(frozen=True)
class SourceConfig:
    spec: str
    name: str | None = None
    allow_public: bool = False
    curve_secret_key: str | None = None
    curve_clients: str | None = None
    #: the options of the spec's kind given as keys of the table (checked; the spec's query holds the others)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> SourceSpec:
        """The parsed spec with its options (valid: the config was checked)."""
        parsed, problems = parse_source(self.spec, self.options)
        if parsed is None:
            raise ValueError(f"source {self.spec!r}: {problems}")
        return parsed


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    silence: SilenceConfig = field(default_factory=SilenceConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    sources: tuple[SourceConfig, ...] = ()


_SECTIONS: dict[str, type] = {
    name: hint for name, hint in get_type_hints(Config).items() if name != "sources"
}

# key path -> (test, message); run only on values of the right type
_RULES: dict[str, tuple[Any, str]] = {
    "model.backend": (lambda v: v in BACKENDS, f"must be one of {', '.join(BACKENDS)}"),
    "model.runtime": (lambda v: v in RUNTIMES, f"must be one of {', '.join(RUNTIMES)}"),
    "model.precision": (lambda v: v in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"),
    "batch.max_batch_size": (lambda v: 1 <= v <= 4096, "must be 1..4096"),
    "batch.max_wait_ms": (lambda v: 0 < v <= 10000, "must be > 0 and at most 10000"),
    "batch.queue_size": (lambda v: 1 <= v <= 1_000_000, "must be 1..1000000"),
    "batch.max_age_ms": (lambda v: 0 <= v <= 60000, "must be 0 (no age bound) or at most 60000"),
    "window.hop_seconds": (lambda v: 0.05 <= v <= 60, "must be 0.05..60 seconds"),
    "silence.threshold_db": (lambda v: -200 <= v <= 0, "must be -200..0 dBFS"),
    "silence.hold_seconds": (lambda v: 0 <= v <= 3600, "must be 0..3600 seconds"),
    "smoothing.method": (lambda v: v in ("ema", "mean"), 'must be "ema" or "mean"'),
    "smoothing.ema_alpha": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "smoothing.mean_windows": (lambda v: 1 <= v <= 1000, "must be 1..1000"),
    "smoothing.switch_margin": (lambda v: 0 <= v <= 1, "must be 0..1"),
    "smoothing.switch_seconds": (lambda v: 0 <= v <= 3600, "must be 0..3600 seconds"),
    "smoothing.settle_windows": (lambda v: 1 <= v <= 1000, "must be 1..1000"),
    "smoothing.min_confidence": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "smoothing.change_distance": (lambda v: 0 < v <= 1, "must be in (0, 1] (1: no change detection)"),
    "smoothing.change_windows": (lambda v: 1 <= v <= 100, "must be 1..100"),
    "analysis.speech_threshold": (lambda v: 0 < v < 1, "must be in (0, 1)"),
    "analysis.speech_windows": (lambda v: 1 <= v <= 100, "must be 1..100"),
    "analysis.context_seconds": (lambda v: 5 <= v <= 600, "must be 5..600 seconds"),
    "analysis.update_seconds": (lambda v: 0.5 <= v <= 600, "must be 0.5..600 seconds"),
    "analysis.cpu_share": (lambda v: 0 < v <= 1, "must be in (0, 1] (1: no limit)"),
    "publish.hwm": (lambda v: 1 <= v <= 1_000_000, "must be 1..1000000"),
    "fleet.shards": (lambda v: 1 <= v <= 10000, "must be 1..10000"),
    "fleet.index": (lambda v: 0 <= v < 10000, "must be 0..9999"),
    "limits.max_frame_bytes": (lambda v: 1024 <= v <= 64 << 20, "must be 1024..67108864 bytes"),
    "limits.max_streams": (lambda v: 1 <= v <= 10000, "must be 1..10000"),
    "limits.max_sample_rate": (lambda v: 8000 <= v <= 384000, "must be 8000..384000 Hz"),
}


_KEY_PATHS = ("curve_secret_key", "curve_clients")  # file paths in [publish] and [[source]]


_SOURCE_KEYS = tuple(name for name in get_type_hints(SourceConfig) if name != "options")


def _section(name: str, raw: Any, cls: type, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"{name}: must be a table")
        return cls()
    hints = get_type_hints(cls)
    values = {}
    for key in sorted(set(raw) - set(hints)):
        problems.append(f"{name}.{key}: unknown key (known: {', '.join(hints)})")
    for key in hints:
        if key not in raw:
            continue
        path = f"{name}.{key}"
        value, error = typed_value(path, raw[key], hints[key])
        if error:
            problems.append(error)
            continue
        rule = _RULES.get(path)
        if rule and not rule[0](value):
            problems.append(f"{path}: {rule[1]} (got {value!r})")
            continue
        values[key] = value
    try:
        return cls(**values)
    except TypeError:  # a required key is missing; reported by the caller
        return None


def _sources(raw: Any, problems: list[str]) -> tuple[SourceConfig, ...]:
    if not isinstance(raw, list):
        problems.append("source: must be an array of tables ([[source]])")
        return ()
    out, names = [], set()
    for i, entry in enumerate(raw):
        key = f"source[{i}]"
        before = len(problems)
        own = {k: v for k, v in entry.items() if k in _SOURCE_KEYS} if isinstance(entry, dict) else entry
        src = _section(key, own, SourceConfig, problems)
        if src is None:
            if isinstance(entry, dict) and "spec" not in entry:
                problems.append(f'{key}.spec: missing (e.g. spec = "zmq:tcp://127.0.0.1:5555")')
            continue
        if len(problems) > before:
            continue
        options = {k: v for k, v in entry.items() if k not in _SOURCE_KEYS}
        spec, spec_problems = parse_source(src.spec, options)
        problems += [f"{key}.{where}: {message}" for where, message in spec_problems]
        if spec is None:
            continue
        src = replace(src, options={k: v for k, v in spec.options.items() if k in options})
        if spec.source_kind.path and not Path(spec.target).is_file():
            problems.append(f"{key}.spec: no such file {spec.target!r}")
        problems += _source_exposure(key, spec, src)
        name = src.name if src.name is not None else default_name(spec)
        try:
            check_stream_id(name)
        except ValueError as err:
            problems.append(f"{key}.name: {err}")
        if name in names and not spec.source_kind.multi_stream:
            problems.append(f"{key}.name: stream {name!r} is already fed by another source")
        names.add(name)
        out.append(src)
    return tuple(out)


def _source_exposure(key: str, spec: SourceSpec, src: SourceConfig) -> list[str]:
    """The bind address, curve keys and public-bind rule of one source (keys only make sense on the sources
    that bind a socket: zmq:)."""
    if not spec.source_kind.multi_stream:
        return [
            f"{key}.{name}: only zmq: sources take curve keys"
            for name in _KEY_PATHS
            if getattr(src, name) is not None
        ]
    try:
        host = bind_checks.zmq_endpoint(spec.target)
    except ValueError as err:
        return [f"{key}.spec: {err}"]
    return bind_checks.zmq_socket(
        key,
        f"{key}.spec",
        host,
        "the zmq source",
        secret=src.curve_secret_key,
        clients=src.curve_clients,
        allow_public=src.allow_public,
    )


def _checks(cfg: Config, problems: list[str], check_model: bool) -> None:
    """Checks that span keys or look at the outside world (addresses, the model artifact)."""
    batch = cfg.batch
    if batch.max_age_ms and batch.max_age_ms <= batch.max_wait_ms:
        problems.append(
            f"batch.max_age_ms: must be 0 (no age bound) or more than batch.max_wait_ms "
            f"({batch.max_wait_ms:g}), got {batch.max_age_ms:g}"
        )
    if cfg.fleet.index >= cfg.fleet.shards:
        problems.append(
            f"fleet.index: must be below fleet.shards ({cfg.fleet.shards}): daemons are numbered "
            f"0..{cfg.fleet.shards - 1}, got {cfg.fleet.index}"
        )
    pub = cfg.publish
    try:
        host = bind_checks.zmq_endpoint(pub.address)
    except ValueError as err:
        problems.append(f"publish.address: {err}")
        host = None
    problems += bind_checks.zmq_socket(
        "publish",
        "publish.address",
        host,
        "the event publisher",
        secret=pub.curve_secret_key,
        clients=pub.curve_clients,
        allow_public=pub.allow_public,
    )
    if cfg.metrics.enabled:
        try:
            host, _ = bind_checks.split_host_port(cfg.metrics.address)
            problems += bind_checks.http_bind(
                "metrics.address",
                host,
                "metrics",
                "the metrics server",
                allow_public=cfg.metrics.allow_public,
            )
        except ValueError as err:
            problems.append(f"metrics.address: {err}")
    if check_model:
        try:
            read_manifest(resolve_model(cfg.model.path))
        except ArtifactError as err:
            problems.append(f"model.path: {err}")


def parse_config(raw: dict[str, Any], *, check_model: bool = True) -> Config:
    """Validate parsed TOML (plus merged overrides); raise :class:`ConfigError` with every problem.

    ``check_model`` reads the artifact's manifest (and checks its files' hashes)
    so a wrong ``model.path`` is reported before the daemon starts.
    """
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for name in sorted(set(raw) - set(_SECTIONS) - {"source"}):
        problems.append(f"{name}: unknown section (known: {', '.join(_SECTIONS)}, source)")
    for name, cls in _SECTIONS.items():
        sections[name] = _section(name, raw.get(name, {}), cls, problems)
    cfg = Config(**sections, sources=_sources(raw.get("source", []), problems))
    _checks(cfg, problems, check_model)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(
    path: Path | None, overrides: dict[str, Any] | None = None, *, check_model: bool = True
) -> Config:
    """Read ``path`` (None: defaults only), merge ``overrides`` and validate.

    ``overrides`` maps key paths (``"batch.max_wait_ms"``) to values, or
    ``"source"`` to a list of ``{"spec": ..., "name": ...}`` tables that
    replaces the file's sources.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as err:
            raise ConfigError([f"{path}: cannot read: {err.strerror or err}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError([f"{path}: not valid TOML: {err}"]) from None
        _rebase(raw, path.parent)
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if not name:
            raw[section] = value
        else:
            table = raw.setdefault(section, {})
            if isinstance(table, dict):
                table[name] = value
    return parse_config(raw, check_model=check_model)


def _rebase(raw: dict[str, Any], directory: Path) -> None:
    """Make the file's relative paths (model, file: sources, key files) relative to the file, not to the
    working directory; flags, merged afterwards, stay relative to the working directory.  Values of the
    wrong type or form are left alone for the validator to report."""
    sources = raw.get("source", []) if isinstance(raw.get("source"), list) else []
    for table, keys in [
        (raw.get("model"), ("path",)),
        (raw.get("publish"), _KEY_PATHS),
        *((entry, _KEY_PATHS) for entry in sources),
    ]:
        if not isinstance(table, dict):
            continue
        for key in keys:
            value = table.get(key)
            if isinstance(value, str) and not (key == "path" and value in BUNDLED_MODELS):
                table[key] = str(directory / value)  # an absolute path stays as it is
    for entry in sources:
        spec = entry.get("spec") if isinstance(entry, dict) else None
        if not isinstance(spec, str):
            continue
        parsed, _ = parse_source(spec)
        if parsed is not None and parsed.source_kind.path:
            prefix = f"{parsed.kind}:"
            entry["spec"] = f"{prefix}{directory / parsed.target}{spec[len(prefix) + len(parsed.target) :]}"
