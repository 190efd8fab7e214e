"""Cost of the analysis beside genre, per scored window, on the daemon's inference thread.

Every scored window of every stream goes through its stream's
:class:`~genretag.daemon.analysis.StreamAnalysis` after the model has run (speech
gate, mood smoother, tag average, tempo and key trackers); this is the CPU time
that adds to each window's model cost.  The heads themselves are Dense layers on
features the genre model computes anyway: their cost is inside the model's
figure (``make bench-model`` runs every output).

Streams of synthetic music (``genretag.pipeline.synth``, 16 kHz, the bundled
models' rate) are cut into the served windows (2.976 s every 1.5 s) and fed
window by window, interleaved across streams as the batcher delivers them, with
head scores drawn at random (the gate and smoothers cost the same whatever the
values).  Each configuration of ``[analysis]`` switches is timed over the same
windows; the figure is process CPU time per window (median of ``--repeat`` runs).

    python -m benchmarks.analysis_cost [--streams 8] [--seconds 60] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine, markdown_table, write_json
from genretag.daemon.analysis import AnalysisSetup
from genretag.daemon.config import AnalysisConfig, SmoothingConfig
from genretag.daemon.stream import Window
from genretag.pipeline.synth import electronic_loop, string_chords
from genretag.pipeline.windows import WindowSpec, frame_windows

SR = 16000
SPEC = WindowSpec(SR, 2.976, 1.5)
HEADS = {
    "speech": ["music", "speech"],
    "mood": ["happy", "tense", "sad", "calm"],
    "tags": [f"tag{i}" for i in range(12)],
}
OFF = {"speech": False, "mood": False, "tags": False, "tempo": False, "key": False}
#: (name, the [analysis] switches on)
CONFIGS: list[tuple[str, dict[str, bool]]] = [
    ("heads: speech + mood + tags", {"speech": True, "mood": True, "tags": True}),
    ("tempo", {"tempo": True}),
    ("key", {"key": True}),
    ("everything (the default)", {k: True for k in OFF}),
]


def stream_windows(streams: int, seconds: float) -> list[list[Window]]:
    """Each stream's windows of its own synthetic music, stamped with their end positions."""
    out = []
    for s in range(streams):
        if s % 2:
            audio = string_chords(seconds, SR, seed=s)
        else:
            audio = electronic_loop(seconds, SR, 90.0 + 8 * s, seed=s)
        windows, _ = frame_windows(audio.astype(np.float32), SPEC)
        ends = SPEC.window_seconds + SPEC.hop_seconds * np.arange(len(windows))
        out.append([Window(w, float(e), 0.0, False) for w, e in zip(windows, ends, strict=True)])
    return out


def head_scores(n: int, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Random head rows: softmax speech (mostly music) and mood, sigmoid tags."""
    rows = []
    for _ in range(n):
        mood = rng.dirichlet(np.ones(4)).astype(np.float32)
        p = float(rng.uniform(0.0, 0.3))
        rows.append(
            {
                "speech": np.array([1 - p, p], np.float32),
                "mood": mood,
                "tags": rng.uniform(0, 1, 12).astype(np.float32),
            }
        )
    return rows


def time_config(switches: dict[str, bool], windows: list[list[Window]], heads: list[dict[str, Any]]) -> float:
    """CPU seconds per window for one configuration, over every stream's windows, interleaved."""
    setup = AnalysisSetup(replace(AnalysisConfig(), **(OFF | switches)), SmoothingConfig(), HEADS, SR, 1.5)
    streams = [setup.new_stream() for _ in windows]
    n = 0
    started = time.process_time()
    for i in range(max(len(w) for w in windows)):
        for stream, own in zip(streams, windows, strict=True):
            if i < len(own):
                stream.update(own[i], heads[n % len(heads)])
                n += 1
    return (time.process_time() - started) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio per stream")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 streams of 20 s, once")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.streams, args.seconds, args.repeat = 2, 20.0, 1
    windows = stream_windows(args.streams, args.seconds)
    heads = head_scores(997, np.random.default_rng(0))
    rows = []
    for name, switches in CONFIGS:
        per_window = statistics.median(time_config(switches, windows, heads) for _ in range(args.repeat))
        rows.append({"analysis": name, "cpu_ms_per_window": 1000 * per_window})
        print(f"{name}: {1000 * per_window:.3f} ms CPU per window", flush=True)
    info = machine()
    total = sum(len(w) for w in windows)
    print(f"\n{args.streams} streams, {total} windows (1.5 s hop), {info['cores']} cores\n")
    print(
        markdown_table(
            ["analysis on", "CPU ms per window"], [[r["analysis"], r["cpu_ms_per_window"]] for r in rows]
        )
    )
    write_json(
        args.json, {"benchmark": "analysis_cost", "streams": args.streams, "windows": total, "rows": rows}
    )


if __name__ == "__main__":
    main()
