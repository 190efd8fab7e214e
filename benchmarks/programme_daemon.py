"""Play programmes through the real daemon and collect its events.

One ``genretag serve`` subprocess per run (model + optional config), every
programme a ``file:PATH?rate=0&loop=0`` stream of it (the stream id is the
file's stem), events read from ``--print``'s JSON lines, loopback sockets on
ports the OS picks.  A file source says ``down`` at its end, after the
batcher has scored every window queued before it, so the run is over when
every stream is down.

``rate=0`` feeds audio as fast as the source thread runs, far faster than a
CPU scores it; the batcher would then drop the oldest windows (a live
tagger's policy).  So the run's config raises ``batch.queue_size`` to hold
every window of every programme (about 190 KB each for the bundled models)
and turns off the age bound (``batch.max_age_ms = 0``: windows of a file read
this fast are old by the time their turn comes), and the windows still
dropped are read from ``/metrics`` and reported: a run with drops did not
score the programme it claims to.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genretag.models.bundled import resolve_model

#: Windows allowed beyond the programmes' own in the raised queue (streams start unevenly).
QUEUE_SLACK = 256


@dataclass(frozen=True)
class RunSpec:
    """A model (artifact directory or bundled name) and optional daemon config (smoothing) to compare."""

    name: str
    model: str
    config: Path | None = None

    @classmethod
    def parse(cls, text: str) -> RunSpec:
        """``NAME:MODEL[:CONFIG.toml]`` (``default:default``, ``ema2:fast:ema2.toml``)."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"a run is NAME:MODEL[:CONFIG.toml], got {text!r}")
        return cls(parts[0], parts[1], Path(parts[2]) if len(parts) == 3 else None)


@dataclass
class RunResult:
    """What one daemon run left: its events, timing and the daemon's own window counts."""

    events: list[dict[str, Any]]
    wall_seconds: float
    windows_processed: float
    windows_dropped: float
    log_tail: list[str] = field(default_factory=list)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {value!r} to TOML")


def dump_config(config: dict[str, Any]) -> str:
    """TOML text of a daemon config of tables of plain values (the daemon's own config shape)."""
    lines: list[str] = []
    for section, table in config.items():
        if not isinstance(table, dict):
            raise ValueError(f"config key {section!r} is not a table")
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def model_hop(model: str, config: dict[str, Any]) -> float:
    """The hop the daemon will window at: the config's ``window.hop_seconds``, else the artifact's."""
    hop = config.get("window", {}).get("hop_seconds")
    if hop is None:
        manifest = json.loads((resolve_model(model) / "manifest.json").read_text())
        hop = manifest["hop_seconds"]
    return float(hop)


def run_config(spec: RunSpec, programme_seconds: Sequence[float], out: Path) -> Path:
    """Write the run's config: the spec's file with a queue that holds every programme's windows, and no
    age bound.

    The file's ``[[source]]`` entries are dropped (the programmes replace them) and
    so is ``model.path`` (the spec names the model).  Relative paths in the file
    would be read relative to ``out``, so give absolute ones.
    """
    raw: dict[str, Any] = tomllib.loads(spec.config.read_text()) if spec.config else {}
    raw.pop("source", None)
    raw.get("model", {}).pop("path", None)
    hop = model_hop(spec.model, raw)
    windows = sum(math.ceil(s / hop) + 1 for s in programme_seconds) + QUEUE_SLACK
    batch = raw.setdefault("batch", {})
    batch["queue_size"] = max(int(batch.get("queue_size", 0)), windows)
    batch["max_age_ms"] = 0
    out.write_text(dump_config(raw))
    return out


def _metric_sum(text: str, name: str) -> float:
    """Sum of every sample of a counter in Prometheus text (any labels)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class ServeProcess:
    """``genretag serve`` as a subprocess: stdout events and stderr log lines read by two threads."""

    def __init__(self, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "genretag.cli.main", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.events: list[dict[str, Any]] = []
        self.log: list[str] = []
        self.metrics_url: str | None = None
        self._readers = [
            threading.Thread(target=self._read_events, daemon=True),
            threading.Thread(target=self._read_log, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))
            found = re.search(r"serving: .* metrics on (http://\S+)", line)
            if found:
                self.metrics_url = found.group(1)

    def metric(self, name: str) -> float:
        """A counter's sum over its labels from the daemon's ``/metrics`` (NaN when unreachable)."""
        if self.metrics_url is None:
            return math.nan
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
                return _metric_sum(response.read().decode(), name)
        except OSError:
            return math.nan

    def down_streams(self) -> set[str]:
        return {
            e["stream"] for e in list(self.events) if e.get("type") == "state" and e.get("state") == "down"
        }

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if it outlives ``timeout``; the exit code (None if it had to be killed)."""
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                code = None
        for reader in self._readers:
            reader.join(5)
        return code


def run_programmes(
    spec: RunSpec,
    programmes: Sequence[Path],
    programme_seconds: Sequence[float],
    work: Path,
    *,
    timeout: float = 3600.0,
    progress: Callable[[str], None] = lambda _: None,
    progress_every: float = 20.0,
) -> RunResult:
    """Play every programme through one daemon of ``spec`` until each stream is down.

    Raises
    ------
    RuntimeError
        The daemon exited early, or the programmes did not end within ``timeout`` seconds.
    """
    config = run_config(spec, programme_seconds, work / f"run-{spec.name}.toml")
    streams = {p.stem for p in programmes}
    args = [
        "--model",
        spec.model,
        "--config",
        str(config),
        "--print",
        "--publish",
        "tcp://127.0.0.1:*",
        "--metrics",
        "127.0.0.1:0",
    ]
    for path in programmes:
        args += ["--source", f"file:{path}?rate=0&loop=0"]
    daemon = ServeProcess(args)
    started = time.monotonic()
    total_seconds = math.fsum(programme_seconds)
    hop = model_hop(spec.model, tomllib.loads(config.read_text()))
    try:
        next_note = started + progress_every
        while not streams <= daemon.down_streams():
            if daemon.proc.poll() is not None:
                time.sleep(0.5)
                raise RuntimeError(
                    f"run {spec.name}: the daemon exited ({daemon.proc.returncode}):\n"
                    + "\n".join(daemon.log[-20:])
                )
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"run {spec.name}: programmes not done after {timeout:.0f} s")
            if time.monotonic() >= next_note:
                done = daemon.metric("genretag_windows_processed_total") * hop
                progress(
                    f"run {spec.name}: {done / 60:.1f} of {total_seconds / 60:.1f} programme minutes "
                    f"scored after {time.monotonic() - started:.0f} s"
                )
                next_note += progress_every
            time.sleep(0.2)
        wall = time.monotonic() - started
        processed = daemon.metric("genretag_windows_processed_total")
        dropped = daemon.metric("genretag_windows_dropped_total")
        code = daemon.stop()
        if code != 0:
            progress(f"run {spec.name}: the daemon exited with {code} on SIGTERM")
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)
    return RunResult(list(daemon.events), wall, processed, dropped, daemon.log[-20:])
