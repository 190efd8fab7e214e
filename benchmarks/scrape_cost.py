"""What one Prometheus scrape of the daemon costs, by stream count, against prometheus-client doing it all.

Every scrape renders every series while holding the interpreter lock, so
no window is received, collected or scored meanwhile: at 10,000 streams the
exposition was 160,000 series, and its cost showed up as a stall in the
daemon's latency.  This renders the daemon's :class:`Metrics` populated as
the tagger does (five per-stream families and eleven smoothed scores per
stream) and, side by side in the same run, the same series made the way the
daemon made them before (prometheus-client ``Counter``/``Gauge`` children and
a ``GaugeMetricFamily`` collector): the median of ``--repeat`` renders each.

    python -m benchmarks.scrape_cost [--streams 1000,5000,10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily

from benchmarks.common import markdown_table, write_json
from genretag.daemon.metrics import Metrics

GENRES = [f"genre{k}" for k in range(11)]
FAMILIES = (
    ("genretag_windows_processed", Counter),
    ("genretag_windows_silent", Counter),
    ("genretag_stream_up", Gauge),
    ("genretag_silence_seconds", Counter),
    ("genretag_label_changes", Counter),
)


def daemon_metrics(streams: list[str]) -> Callable[[], bytes]:
    metrics = Metrics()
    metrics.scores.start(GENRES)
    for k, stream in enumerate(streams):
        for family in (
            metrics.windows_processed,
            metrics.windows_silent,
            metrics.silence,
            metrics.label_changes,
        ):
            family.inc(stream, k)
        metrics.stream_up.set(stream, 1)
        metrics.scores.latest[stream] = [k / 11 for k in range(11)]
    return metrics.render


class _Scores:
    """The smoothed-score collector as the daemon had it: one ``add_metric`` per series at scrape time."""

    def __init__(self, latest: dict[str, list[float]]) -> None:
        self.latest = latest

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("genretag_smoothed_score", "Scores.", labels=["stream", "genre"])
        for stream, values in self.latest.items():
            for genre, value in zip(GENRES, values, strict=True):
                family.add_metric([stream, genre], value)
        return [family]


def prometheus_client_only(streams: list[str]) -> Callable[[], bytes]:
    registry = CollectorRegistry()
    children: list[Any] = []
    for name, kind in FAMILIES:
        metric = kind(name, "A per-stream family.", ["stream"], registry=registry)
        children += [metric.labels(stream) for stream in streams]
    for k, child in enumerate(children):
        child.set(1) if isinstance(child, Gauge) else child.inc(k)
    registry.register(_Scores({stream: [k / 11 for k in range(11)] for stream in streams}))
    return lambda: generate_latest(registry)


def median_seconds(render: Callable[[], bytes], repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(render())
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", default="1000,5000,10000", help="comma-separated stream counts")
    parser.add_argument("--repeat", type=int, default=5, help="renders per figure (median)")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args()
    rows, raw = [], []
    for n in (int(v) for v in args.streams.split(",")):
        streams = [f"station-{k:05d}" for k in range(n)]
        ours, size = median_seconds(daemon_metrics(streams), args.repeat)
        theirs, their_size = median_seconds(prometheus_client_only(streams), args.repeat)
        raw.append(
            {
                "streams": n,
                "daemon_s": ours,
                "prometheus_client_s": theirs,
                "bytes": size,
                "prometheus_client_bytes": their_size,
            }
        )
        rows.append([n, 16 * n, ours * 1000, theirs * 1000, theirs / ours, size / 2**20])
    header = ["streams", "per-stream series", "daemon ms", "prometheus-client ms", "ratio", "MiB"]
    print(markdown_table(header, rows))
    write_json(
        args.json, {"benchmark": "scrape_cost", "args": vars(args) | {"json": str(args.json)}, "levels": raw}
    )


if __name__ == "__main__":
    main()
