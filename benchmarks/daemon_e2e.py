"""Daemon end to end: how many real-time streams one ``genretag serve`` tags with zero dropped windows.

For each stream count N a fresh daemon (the real CLI, as a subprocess) binds a
ZeroMQ source; :mod:`benchmarks.producers` pushes N streams of real music
(clips of the shared data set, decoded once, looped, each stream at its own
offset) in real time from P forked processes.  After a warm-up longer than a
window, one measurement interval is taken between two scrapes of the daemon's
own ``/metrics``:

* windows scored, dropped (every reason) and lost messages (``seq_gap``);
* end-to-end latency (audio arrival to event publication) p50/p99 from the
  delta of the ``genretag_end_to_end_latency_seconds`` buckets, interpolated
  linearly inside a bucket as Prometheus' ``histogram_quantile`` does;
* CPU seconds of the daemon and of the producers (``/proc``), in cores;
* the daemon's peak RSS (``VmHWM``; with ``--workers``, summed over its ingest processes, whose CPU
  is counted too), also as it stood when the interval began (the peak of start-up and warm-up) and
  the resident set (``VmRSS``) when it ended.

A level passes when no window was dropped after the warm-up and no message was
lost over the whole run (drops during the warm-up are reported apart: a JIT
backend compiles its batch shapes then), the daemon
handled (scored, or held back by the silence gate) at least 95 % of the windows
the audio holds, and the producers kept to
their schedule (p99 lateness under one chunk).  Without ``--streams`` the
count doubles from ``--start`` until a level fails, then bisects to within
10 %.  ``--baseline`` repeats the search with ``batch.max_batch_size = 1`` (one
predictor call per window, as per-file taggers do), so the speed-up is a ratio
measured side by side.  ``--rate0 N`` sends N streams as fast as possible and
reports audio seconds scored per wall second.

``--overload`` (issue 18) measures graceful overload: the capacity is the
largest level that passes with p99 latency under ``--p99-target`` (the search
above, or the level ``--capacity N`` alone), then a daemon takes
``--overload-factor`` (1.5) times as many streams.  Reported for both runs:
peak RSS, windows dropped (by reason) and p50/p99 latency of the windows
scored; the overload passes when its peak RSS is within 1.2x of the capacity
run's, its drops are counted (more than zero) and its p99 is under
``--overload-p99`` (1 s).  ``--without-age-bound`` runs the overload level a
second time with ``batch.max_age_ms = 0`` (only the queue's bound, as before
issue 18), side by side.

``--analysis-off`` writes ``[analysis] tempo = false, key = false`` (the
trackers, about 1.2 ms of CPU per window; the daemon runs them by default
since issue 16), for figures comparable with runs made before them.  The
configuration allows at most 10,000 streams (``limits.max_streams``): a level
above that has the rest refused (``stream_refused``) unless
``--lift-stream-limit`` starts the daemon through :mod:`benchmarks.serve_lifted`.
Each level also records the peak RSS of every process of the daemon (its
ingest router and workers with ``--workers``).

    python -m benchmarks.daemon_e2e [--model DIR] [--backend jax] [--quick] [--baseline] [--rate0 64]
    python -m benchmarks.daemon_e2e --model models/fast --overload [--capacity N] [--without-age-bound]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    DEFAULT_MODEL,
    SHARED_MUSIC,
    histogram_quantile,
    machine,
    markdown_table,
    proc_sample,
    tree_sample,
    write_json,
)
from benchmarks.producers import LoadSpec, ProducerGroup

LATENCY = "genretag_end_to_end_latency_seconds"


@dataclass(frozen=True)
class DaemonSettings:
    model: Path
    backend: str | None
    max_batch: int
    max_wait_ms: float
    queue_size: int
    chunk_seconds: float
    warmup: float
    seconds: float
    procs_per_1000: float
    max_procs: int
    workers: int = 0
    runtime: str | None = None  # model.runtime; None: the daemon's default
    max_age_ms: float | None = None  # batch.max_age_ms; None: the daemon's default
    p99_target: float = math.inf  # a level passes only with p99 latency under this (seconds)
    analysis_off: bool = False  # [analysis] tempo = false, key = false
    config_extra: str = ""  # TOML appended to the daemon's config (sections the harness does not write)
    lift_stream_limit: bool = False  # limits.max_streams past 10,000 (benchmarks.serve_lifted)


@dataclass
class Level:
    """The outcome of one stream count."""

    streams: int
    rate: float
    producer_procs: int
    passed: bool = False
    why: str = ""
    windows_scored: float = 0.0
    windows_silent: float = 0.0  # the silence gate's: handled, not scored
    windows_expected: float = 0.0
    dropped: float = 0.0  # from the end of the warm-up to the end of the run
    dropped_by_reason: dict[str, float] = field(default_factory=dict)  # the same, by reason
    dropped_warmup: float = 0.0  # before it (first compilations of a JIT backend land here)
    lost_messages: float = 0.0
    source_errors: dict[str, float] = field(default_factory=dict)  # by kind, whole run
    latency_p50_s: float = math.nan
    latency_p99_s: float = math.nan
    mean_batch: float = math.nan
    model_busy: float = math.nan  # share of the interval spent in model calls (near 1: model-bound)
    tracking_skipped: float = math.nan  # share of the interval's scored windows that tempo and key left out
    daemon_cpu_cores: float = 0.0
    producer_cpu_cores: float = 0.0
    daemon_peak_rss_mib: float = 0.0
    daemon_peak_rss_warmup_mib: float = 0.0  # VmHWM when the interval began: start-up and warm-up
    daemon_rss_end_mib: float = 0.0  # VmRSS when the interval ended
    producer_late_p99_s: float = 0.0
    audio_seconds_scored_per_s: float = 0.0
    audio_seconds_sent_per_s: float = 0.0
    buckets: list[tuple[float, float]] = field(default_factory=list)
    runtime: str = ""  # what served the model, as the daemon logged it
    max_streams: int = 0  # the daemon's limits.max_streams
    streams_refused: float = 0.0  # messages of streams beyond it (source error stream_refused)
    # VmHWM of each process at the end: the daemon, then its children by pid ("pid comm": MiB)
    peak_rss_by_process_mib: dict[str, float] = field(default_factory=dict)


def load_music(n_clips: int, sample_rate: int, seconds: float) -> list[np.ndarray]:
    """``n_clips`` real clips (one genre after another) as int16 mono, or synthetic music without the data."""
    from genretag.pipeline.audio import decode, float_to_int16

    if SHARED_MUSIC.is_file():
        import csv

        with open(SHARED_MUSIC, newline="") as f:
            rows = list(csv.DictReader(f))
        by_genre: dict[str, list[str]] = {}
        for row in rows:
            by_genre.setdefault(row["labels"], []).append(row["path"])
        paths = [p for group in zip(*by_genre.values(), strict=False) for p in group][:n_clips]
        return [float_to_int16(decode(SHARED_MUSIC.parent / p, sample_rate, seconds)) for p in paths]
    from genretag.pipeline.synth import electronic_loop, string_chords

    print(f"{SHARED_MUSIC} not found: synthetic music", file=sys.stderr)
    return [
        float_to_int16(
            electronic_loop(seconds, sample_rate, seed=i)
            if i % 2
            else string_chords(seconds, sample_rate, seed=i)
        )
        for i in range(n_clips)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonProcess:
    """``genretag serve`` with a TOML config for one level; logs to a file in ``workdir``."""

    def __init__(self, settings: DaemonSettings, max_batch: int, streams: int, workdir: Path) -> None:
        self.zmq = f"tcp://127.0.0.1:{free_port()}"
        self.metrics_url = f"http://127.0.0.1:{(mport := free_port())}/metrics"
        backend = f'backend = "{settings.backend}"\n' if settings.backend else ""
        runtime = f'runtime = "{settings.runtime}"\n' if settings.runtime else ""
        max_age = f"max_age_ms = {settings.max_age_ms}\n" if settings.max_age_ms is not None else ""
        analysis = "[analysis]\ntempo = false\nkey = false\n" if settings.analysis_off else ""
        self.max_streams = streams + 16 if settings.lift_stream_limit else min(10000, streams + 16)
        config = workdir / "bench.toml"
        config.write_text(
            f'[model]\npath = "{settings.model.resolve()}"\n{backend}{runtime}'
            f"[batch]\nmax_batch_size = {max_batch}\nmax_wait_ms = {settings.max_wait_ms}\n"
            f"queue_size = {settings.queue_size}\n{max_age}"
            f'[publish]\naddress = "tcp://127.0.0.1:{free_port()}"\n'
            f'[metrics]\naddress = "127.0.0.1:{mport}"\n'
            f"{analysis}[limits]\nmax_streams = {self.max_streams}\n"
            f"{settings.config_extra}\n"
            f'[[source]]\nspec = "zmq:{self.zmq}?idle=30&workers={settings.workers}"\n'
        )
        self.log_path = workdir / "daemon.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop)
        entry = "benchmarks.serve_lifted" if settings.lift_stream_limit else "genretag.cli.main"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", entry, "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + 300
        while "serving:" not in self.log_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("daemon did not start:\n" + self.log_path.read_text()[-3000:])
            time.sleep(0.2)

    def scrape(self) -> dict[str, Any]:
        """The counters a level needs, summed over streams, plus the latency buckets."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.metrics_url, timeout=30) as r:
            rendered_at = time.monotonic()  # the headers follow the render (they carry its length)
            text = r.read().decode()
        out: dict[str, Any] = {
            "rendered_at": rendered_at,
            "scored": 0.0,
            "silent": 0.0,
            "dropped": 0.0,
            "lost": 0.0,
            "batch_sum": 0.0,
            "batch_count": 0.0,
            "model_seconds": 0.0,
            "buckets": {},
            "errors": {},
            "drops": {},
            "tracking_skipped": 0.0,
        }
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "genretag_windows_processed_total":
                    out["scored"] += s.value
                elif s.name == "genretag_windows_silent_total":
                    out["silent"] += s.value
                elif s.name == "genretag_windows_dropped_total":
                    out["dropped"] += s.value
                    reason = s.labels.get("reason", "")
                    out["drops"][reason] = out["drops"].get(reason, 0.0) + s.value
                elif s.name == "genretag_source_errors_total":
                    kind = s.labels.get("kind", "")
                    out["errors"][kind] = out["errors"].get(kind, 0.0) + s.value
                    if kind == "seq_gap":
                        out["lost"] += s.value
                elif s.name == "genretag_inference_batch_size_sum":
                    out["batch_sum"] += s.value
                elif s.name == "genretag_inference_batch_size_count":
                    out["batch_count"] += s.value
                elif s.name == "genretag_inference_duration_seconds_sum":
                    out["model_seconds"] += s.value
                elif s.name == f"{LATENCY}_bucket":
                    out["buckets"][float(s.labels["le"])] = s.value
                elif s.name == "genretag_analysis_skipped_windows_total":
                    out["tracking_skipped"] += s.value
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def run_level(
    settings: DaemonSettings,
    music: list[np.ndarray],
    sample_rate: int,
    streams: int,
    max_batch: int,
    rate: float = 1.0,
) -> Level:
    """One daemon, ``streams`` producers' streams, one measured interval; see the module docstring."""
    procs = max(1, min(settings.max_procs, math.ceil(streams * settings.procs_per_1000 / 1000)))
    level = Level(streams, rate, procs)
    with tempfile.TemporaryDirectory(prefix="genretag-bench-") as tmp:
        daemon = DaemonProcess(settings, max_batch, streams, Path(tmp))
        try:
            hop = _hop_seconds(settings)
            # The load outlasts the interval by the time scrapes take: parsing one costs the harness about
            # 0.3 s per 1,000 streams, and an interval running past the load's end expected windows of
            # audio never sent (at 10,000 streams, 2-3 s of them: a daemon that kept up looked 7-11 % short).
            slack = 5.0 + streams / 1000
            load = LoadSpec(
                daemon.zmq,
                music,
                sample_rate,
                settings.chunk_seconds,
                rate,
                settings.warmup + settings.seconds + slack,
                preroll_seconds=hop,
            )
            group = ProducerGroup(load, streams, procs)
            time.sleep(1.0 + settings.warmup)
            a, da, pa = daemon.scrape(), tree_sample(daemon.proc.pid), [proc_sample(p) for p in group.pids]
            time.sleep(max(0.0, a["rendered_at"] + settings.seconds - time.monotonic()))
            b, db, pb = daemon.scrape(), tree_sample(daemon.proc.pid), [proc_sample(p) for p in group.pids]
            if rate > 0 and b["rendered_at"] > group.ends_at:
                raise RuntimeError("the measured interval outlived the load: raise the slack")
            wall = b["rendered_at"] - a["rendered_at"]
            reports = group.join(timeout=60 + settings.seconds)
            time.sleep(1.0)
            final, peak = daemon.scrape(), tree_sample(daemon.proc.pid).peak_rss_bytes
            level.peak_rss_by_process_mib = process_peaks(daemon.proc.pid)
        finally:
            daemon.stop()
        served = re.search(r"served by (\S+)", daemon.log_path.read_text())
        level.runtime = served[1] if served else ""
        level.max_streams = daemon.max_streams
    level.windows_scored = b["scored"] - a["scored"]
    level.windows_silent = b["silent"] - a["silent"]
    level.windows_expected = streams * wall / hop
    level.dropped, level.dropped_warmup = final["dropped"] - a["dropped"], a["dropped"]
    level.dropped_by_reason = {
        reason: n - a["drops"].get(reason, 0.0)
        for reason, n in final["drops"].items()
        if n > a["drops"].get(reason, 0.0)
    }
    level.lost_messages = final["lost"]
    level.streams_refused = final["errors"].get("stream_refused", 0.0)
    level.source_errors = final["errors"]
    bounds = sorted(b["buckets"])
    level.buckets = [(le, b["buckets"][le] - a["buckets"].get(le, 0.0)) for le in bounds]
    level.latency_p50_s = histogram_quantile(0.5, level.buckets)
    level.latency_p99_s = histogram_quantile(0.99, level.buckets)
    batches = b["batch_count"] - a["batch_count"]
    level.mean_batch = (b["batch_sum"] - a["batch_sum"]) / batches if batches else math.nan
    level.model_busy = (b["model_seconds"] - a["model_seconds"]) / wall
    if level.windows_scored:
        level.tracking_skipped = (b["tracking_skipped"] - a["tracking_skipped"]) / level.windows_scored
    level.daemon_cpu_cores = (db.cpu_seconds - da.cpu_seconds) / wall
    level.producer_cpu_cores = sum(y.cpu_seconds - x.cpu_seconds for x, y in zip(pa, pb, strict=True)) / wall
    level.daemon_peak_rss_mib = peak / 2**20
    level.daemon_peak_rss_warmup_mib, level.daemon_rss_end_mib = (
        da.peak_rss_bytes / 2**20,
        db.rss_bytes / 2**20,
    )
    level.producer_late_p99_s = max((r.late_p99_s for r in reports), default=math.inf)
    level.audio_seconds_scored_per_s = level.windows_scored * hop / wall
    level.audio_seconds_sent_per_s = sum(r.audio_seconds for r in reports) / load.seconds
    level.passed, level.why = _judge(level, settings, len(reports) == procs)
    return level


def process_peaks(pid: int) -> dict[str, float]:
    """VmHWM in MiB of ``pid`` and of each of its children (as :func:`tree_sample` finds them)."""
    children: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        tasks = []
    for task in tasks:
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    out: dict[str, float] = {}
    for p in (pid, *sorted(children)):
        try:
            comm = Path(f"/proc/{p}/comm").read_text().strip()
        except OSError:
            comm = "?"
        out[f"{p} {comm}"] = proc_sample(p).peak_rss_bytes / 2**20
    return out


def _judge(level: Level, settings: DaemonSettings, all_reported: bool) -> tuple[bool, str]:
    if level.rate <= 0:
        return False, "as fast as possible: not judged (the queue drops by design)"
    if not all_reported:
        return False, "a producer did not finish"
    if level.streams_refused:
        return False, f"streams refused beyond limits.max_streams ({level.streams_refused:g} messages)"
    if level.dropped or level.lost_messages:
        return False, f"{level.dropped:g} windows dropped, {level.lost_messages:g} messages lost"
    if level.latency_p99_s > settings.p99_target:
        return False, f"p99 {1000 * level.latency_p99_s:.0f} ms over {1000 * settings.p99_target:.0f} ms"
    if level.rate > 0 and level.producer_late_p99_s > settings.chunk_seconds:
        return False, f"producers fell behind (p99 late {level.producer_late_p99_s:.3f} s)"
    handled = level.windows_scored + level.windows_silent
    if level.rate > 0 and handled < 0.95 * level.windows_expected:
        return False, f"handled {handled:.0f} of {level.windows_expected:.0f} windows"
    return True, "ok"


def _hop_seconds(settings: DaemonSettings) -> float:
    """The hop the daemon serves: ``[window] hop_seconds`` of ``--config-extra``, else the artifact's."""
    import tomllib

    from genretag.models.artifact import read_manifest

    served = tomllib.loads(settings.config_extra).get("window", {}).get("hop_seconds")
    return float(served) if served else read_manifest(settings.model).hop_seconds


def search(
    settings: DaemonSettings,
    music: list[np.ndarray],
    sample_rate: int,
    max_batch: int,
    levels: list[int] | None,
    start: int,
    ceiling: int,
) -> list[Level]:
    """Explicit ``levels``, or double from ``start`` until a failure and bisect to within 10 %."""
    done: list[Level] = []

    def run(n: int) -> bool:
        level = run_level(settings, music, sample_rate, n, max_batch)
        done.append(level)
        print(
            f"  batch<={max_batch} N={n}: {'PASS' if level.passed else 'FAIL'} ({level.why}); "
            f"p50 {1000 * level.latency_p50_s:.0f} ms, p99 {1000 * level.latency_p99_s:.0f} ms, "
            f"daemon {level.daemon_cpu_cores:.2f} cores, producers {level.producer_cpu_cores:.2f} cores, "
            f"mean batch {level.mean_batch:.1f}, model busy {100 * level.model_busy:.0f} %, "
            f"tempo/key skipped {100 * level.tracking_skipped:.0f} % of windows, "
            f"producers late p99 {1000 * level.producer_late_p99_s:.0f} ms",
            flush=True,
        )
        return level.passed

    if levels:
        for n in levels:
            run(n)
        return done
    lo, hi, n = 0, 0, start
    while n <= ceiling:
        if not run(n):
            hi = n
            break
        lo, n = n, n * 2
    if hi == 0:
        return done
    while hi - lo > max(2, 0.1 * lo):
        mid = (lo + hi) // 2
        if run(mid):
            lo = mid
        else:
            hi = mid
    return done


def best(levels: list[Level]) -> Level | None:
    passed = [lv for lv in levels if lv.passed]
    return max(passed, key=lambda lv: lv.streams) if passed else None


def plot(results: dict[str, list[Level]], path: Path) -> None:
    """p50/p99 latency against stream count, one line pair per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, levels in results.items():
        pts = sorted((lv.streams, lv.latency_p50_s, lv.latency_p99_s) for lv in levels if lv.rate > 0)
        if pts:
            n, p50, p99 = zip(*pts, strict=True)
            line = ax.plot(n, [1000 * v for v in p99], marker="o", label=f"{name} p99")[0]
            ax.plot(
                n, [1000 * v for v in p50], marker=".", ls="--", color=line.get_color(), label=f"{name} p50"
            )
    ax.set_xlabel("concurrent real-time streams")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--backend", choices=["tensorflow", "jax", "torch"])
    ap.add_argument(
        "--streams", type=lambda s: [int(v) for v in s.split(",")], help="levels to run (no search)"
    )
    ap.add_argument("--start", type=int, default=25, help="first level of the search")
    ap.add_argument("--ceiling", type=int, default=10000)
    ap.add_argument("--baseline", action="store_true", help="also search with max_batch_size 1")
    ap.add_argument(
        "--rate0", type=int, default=0, metavar="N", help="also run N streams as fast as possible"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        help="ingest worker processes of the daemon's ZeroMQ source (zmq:...?workers=N)",
    )
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--max-wait-ms", type=float, default=50.0)
    ap.add_argument("--queue-size", type=int, default=1024)
    ap.add_argument("--sample-rate", type=int, default=44100, help="producers' PCM rate (mono int16)")
    ap.add_argument("--chunk-seconds", type=float, default=0.1, help="audio per message")
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured interval per level")
    ap.add_argument("--procs-per-1000", type=float, default=1.0, help="producer processes per 1000 streams")
    ap.add_argument("--max-procs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument(
        "--quick",
        action="store_true",
        help="levels 10,40 (and baseline 4), 5 s each; with --overload, only the 5 s",
    )
    ap.add_argument("--runtime", choices=["auto", "openvino", "keras"], help="the daemon's model.runtime")
    ap.add_argument("--max-age-ms", type=float, help="the daemon's batch.max_age_ms (default: its default)")
    ap.add_argument(
        "--overload",
        action="store_true",
        help="capacity (zero drops, p99 under --p99-target), then --overload-factor times it",
    )
    ap.add_argument("--capacity", type=int, help="with --overload: this level is the capacity (no search)")
    ap.add_argument("--p99-target", type=float, default=0.25, help="with --overload: seconds (capacity)")
    ap.add_argument("--overload-factor", type=float, default=1.5)
    ap.add_argument("--overload-p99", type=float, default=1.0, help="seconds the overload's p99 must beat")
    ap.add_argument(
        "--without-age-bound",
        action="store_true",
        help="with --overload: run the overload level again with batch.max_age_ms = 0",
    )
    ap.add_argument(
        "--analysis-off",
        action="store_true",
        help="[analysis] tempo = false, key = false (as before issue 16's trackers)",
    )
    ap.add_argument(
        "--config-extra",
        type=Path,
        metavar="TOML",
        help="a TOML file appended to the daemon's config: sections the harness does not write "
        "([window], [smoothing], ...; e.g. deploy/profiles/small-box.toml)",
    )
    ap.add_argument(
        "--lift-stream-limit",
        action="store_true",
        help="allow levels above limits.max_streams' 10,000 (daemon started by benchmarks.serve_lifted)",
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.warmup = 5.0, 4.0
        if not args.overload:
            args.streams = args.streams or [10, 40]
    settings = DaemonSettings(
        args.model,
        args.backend,
        args.max_batch,
        args.max_wait_ms,
        args.queue_size,
        args.chunk_seconds,
        args.warmup,
        args.seconds,
        args.procs_per_1000,
        args.max_procs,
        args.workers,
        args.runtime,
        args.max_age_ms,
        analysis_off=args.analysis_off,
        lift_stream_limit=args.lift_stream_limit,
        config_extra=args.config_extra.read_text() if args.config_extra else "",
    )
    music = load_music(8, args.sample_rate, 30.0)
    if args.overload:
        overload(args, settings, music)
        return
    results: dict[str, list[Level]] = {}
    print(f"batched (max_batch_size {args.max_batch}, max_wait_ms {args.max_wait_ms:g}):", flush=True)
    results["batched"] = search(
        settings, music, args.sample_rate, args.max_batch, args.streams, args.start, args.ceiling
    )
    if args.baseline:
        print("baseline (max_batch_size 1):", flush=True)
        quick_levels = [4] if args.quick else None
        results["unbatched"] = search(settings, music, args.sample_rate, 1, quick_levels, 4, args.ceiling)
    if args.rate0:
        for name, mb in [("batched", args.max_batch)] + ([("unbatched", 1)] if args.baseline else []):
            lv = run_level(settings, music, args.sample_rate, args.rate0, mb, rate=0.0)
            results.setdefault(f"{name}, rate 0", []).append(lv)
            print(
                f"  rate 0, batch<={mb}, N={args.rate0}: {lv.audio_seconds_scored_per_s:.1f} "
                f"audio-s scored per s ({lv.audio_seconds_sent_per_s:.1f} sent), {lv.dropped:g} dropped",
                flush=True,
            )
    report(args, results)


def overload(args: argparse.Namespace, settings: DaemonSettings, music: list[np.ndarray]) -> None:
    """``--overload``: the capacity, then ``--overload-factor`` times as many streams (module docstring)."""
    results: dict[str, list[Level]] = {}
    print(f"capacity (zero drops, p99 under {1000 * args.p99_target:.0f} ms):", flush=True)
    results["capacity"] = search(
        replace(settings, p99_target=args.p99_target),
        music,
        args.sample_rate,
        args.max_batch,
        [args.capacity] if args.capacity else None,
        args.start,
        args.ceiling,
    )
    capacity = best(results["capacity"]) or (results["capacity"][0] if args.capacity else None)
    if capacity is None:
        report(args, results, {"error": "no level passed: lower --start"})
        return
    streams = round(capacity.streams * args.overload_factor)
    runs = [("overload", settings)]
    if args.without_age_bound:
        runs.append(("overload, no age bound", replace(settings, max_age_ms=0.0)))
    summary: dict[str, Any] = {"capacity": asdict(capacity)}
    for name, run_settings in runs:
        level = run_level(run_settings, music, args.sample_rate, streams, args.max_batch)
        results[name] = [level]
        verdict = overload_verdict(capacity, level, args.overload_p99)
        summary[name] = {"level": asdict(level), **verdict}
        print(
            f"  {name}, N={streams} ({args.overload_factor:g}x {capacity.streams}): "
            f"{'PASS' if verdict['passed'] else 'FAIL'}; dropped {level.dropped:g} "
            f"{level.dropped_by_reason}, "
            f"p50/p99 {1000 * level.latency_p50_s:.0f}/{1000 * level.latency_p99_s:.0f} ms, peak RSS "
            f"{level.daemon_peak_rss_mib:.0f} MiB = {verdict['peak_rss_ratio']:.2f}x the capacity run's; "
            f"producers late p99 {1000 * level.producer_late_p99_s:.0f} ms",
            flush=True,
        )
    report(args, results, summary)


def overload_verdict(capacity: Level, over: Level, max_p99: float) -> dict[str, Any]:
    """Issue 18's acceptance at overload: peak RSS within 1.2x of the capacity run's, drops counted,
    p99 of the windows scored under ``max_p99`` seconds."""
    ratio = over.daemon_peak_rss_mib / capacity.daemon_peak_rss_mib
    checks = {
        "peak_rss_within_1.2x": ratio <= 1.2,
        "drops_counted": over.dropped > 0,
        "p99_under_target": over.latency_p99_s < max_p99,
    }
    return {"peak_rss_ratio": ratio, "checks": checks, "passed": all(checks.values())}


def report(
    args: argparse.Namespace, results: dict[str, list[Level]], overload_summary: dict[str, Any] | None = None
) -> None:
    info = machine()
    runtimes = sorted({lv.runtime for levels in results.values() for lv in levels if lv.runtime})
    print(
        f"\nModel {args.model}, served by {', '.join(runtimes) or '?'}, backend "
        f"{args.backend or 'default'}, {info['cores']} cores ({info['cpu']}), GPU {info['gpu']}, "
        f"load {info['load_average']}\n"
    )
    header = [
        "config",
        "streams",
        "pass",
        "p50 ms",
        "p99 ms",
        "mean batch",
        "model busy",
        "scored+silent/expected",
        "dropped (warm-up)",
        "daemon cores",
        "producer cores",
        "daemon peak RSS MiB",
        "peak at warm-up end / RSS at interval end",
        "audio-s scored/s",
    ]
    rows = [
        [
            name,
            lv.streams,
            "yes" if lv.passed else f"no: {lv.why}",
            1000 * lv.latency_p50_s,
            1000 * lv.latency_p99_s,
            lv.mean_batch,
            lv.model_busy,
            f"{lv.windows_scored:.0f}+{lv.windows_silent:.0f}/{lv.windows_expected:.0f}",
            f"{lv.dropped:g} ({lv.dropped_warmup:g})",
            lv.daemon_cpu_cores,
            lv.producer_cpu_cores,
            lv.daemon_peak_rss_mib,
            f"{lv.daemon_peak_rss_warmup_mib:.0f} / {lv.daemon_rss_end_mib:.0f}",
            lv.audio_seconds_scored_per_s,
        ]
        for name, levels in results.items()
        for lv in levels
    ]
    print(markdown_table(header, rows))
    if overload_summary is not None:
        write_json(
            args.json,
            {
                "benchmark": "daemon_e2e overload",
                "summary": overload_summary,
                "args": {k: str(v) for k, v in vars(args).items()},
                "levels": {name: [asdict(lv) for lv in lvs] for name, lvs in results.items()},
            },
        )
        return
    summary: dict[str, Any] = {}
    for name in ("batched", "unbatched"):
        top = best(results.get(name, []))
        summary[name] = asdict(top) if top else None
        if top:
            print(
                f"\n{name}: largest N with zero drops {top.streams}: "
                f"p50 {1000 * top.latency_p50_s:.0f} ms, p99 {1000 * top.latency_p99_s:.0f} ms, "
                f"daemon {top.daemon_cpu_cores:.2f} cores, producers {top.producer_cpu_cores:.2f} cores, "
                f"peak RSS {top.daemon_peak_rss_mib:.0f} MiB"
            )
    if summary.get("batched") and summary.get("unbatched") and not args.streams:  # searched, not given
        ratio = summary["batched"]["streams"] / summary["unbatched"]["streams"]
        summary["speedup_streams"] = ratio
        print(f"speed-up of batching (streams): {ratio:.1f}x")
    write_json(
        args.json,
        {
            "benchmark": "daemon_e2e",
            "args": {k: str(v) for k, v in vars(args).items()},
            "summary": summary,
            "levels": {name: [asdict(lv) for lv in lvs] for name, lvs in results.items()},
        },
    )
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
