"""Per-stream memory of the daemon's tagging pipeline, in one process (issue 18).

A real :class:`~genretag.daemon.tagging.Tagger` (the model of ``--model`` through
its default runtime, default settings, real metrics) takes N streams of 44.1 kHz
mono int16 music in ``--chunk-seconds`` messages, interleaved as a ZeroMQ source
delivers them, until every stream has been scored ``--windows`` times.  Then,
with the queue drained, it reports per stream:

* the resident set size gained over the Tagger with no stream (``VmRSS``, after
  ``malloc_trim`` so freed heap is given back first), which counts C allocations
  (soxr's resampler state, numpy buffers) as well as Python objects;
* what ``tracemalloc`` traces still allocated, by source line (largest first).

``--windower`` measures one :class:`~genretag.daemon.stream.StreamWindower` per
stream alone (no model), for the same chunks, and the CPU they take per stream and second of audio.

    python -m benchmarks.stream_memory [--model models/fast] [--streams 300,900] [--chunk-seconds 0.5]
    python -m benchmarks.stream_memory --windower [--resample-block 0.05]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import SHARED_MUSIC, write_json

MIB = 1024 * 1024


def rss_bytes() -> int:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def music(seconds: float, sr: int = 44100) -> np.ndarray:
    """``seconds`` of a shared clip as mono int16 at ``sr`` (a synthetic mix when the data set is absent)."""
    try:
        from genretag.pipeline.audio import decode

        clip = next(p for p in sorted(SHARED_MUSIC.parent.rglob("*")) if p.suffix in (".wav", ".mp3", ".au"))
        x = decode(clip, sr, max_seconds=seconds)
    except (StopIteration, OSError, ValueError):
        rng = np.random.default_rng(0)
        t = np.arange(int(seconds * sr)) / sr
        x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    x = np.resize(np.asarray(x, np.float32), int(seconds * sr))
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def top_lines(snapshot: tracemalloc.Snapshot, streams: int, limit: int = 12) -> list[dict[str, Any]]:
    stats = snapshot.statistics("lineno")
    return [
        {
            "where": f"{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno}",
            "bytes_per_stream": s.size / max(streams, 1),
            "blocks": s.count,
        }
        for s in stats[:limit]
    ]


def run_windowers(streams: int, chunk_seconds: float, seconds: float) -> dict[str, Any]:
    from genretag.daemon.stream import StreamWindower
    from genretag.pipeline.windows import WindowSpec

    spec = WindowSpec(16000, 2.976, 1.5)
    sr, step = 44100, int(chunk_seconds * 44100)
    audio = music(seconds + 1)

    def feed(windowers: list[StreamWindower]) -> int:
        pushed = 0
        for i in range(0, int(seconds * sr) - step, step):
            for w in windowers:
                w.push(audio[i : i + step], sr, 0.0)
            pushed += step
        return pushed

    cpu = time.process_time()
    pushed = feed([StreamWindower(spec) for _ in range(streams)])  # CPU, without tracemalloc's cost
    cpu = time.process_time() - cpu
    base = rss_bytes()
    tracemalloc.start()
    windowers = [StreamWindower(spec) for _ in range(streams)]
    feed(windowers)
    snap = tracemalloc.take_snapshot()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss = rss_bytes()
    return {
        "what": "windowers",
        "streams": streams,
        "rss_bytes_per_stream": (rss - base) / streams,
        "traced_bytes_per_stream": traced / streams,
        "cpu_ms_per_stream_audio_second": 1e3 * cpu / (streams * pushed / sr),
        "top": top_lines(snap, streams),
    }


def run_tagger(
    model: str, streams: int, chunk_seconds: float, windows: int, trackers: bool
) -> dict[str, Any]:
    from genretag.daemon.config import Config
    from genretag.daemon.metrics import Metrics
    from genretag.daemon.sources.base import Chunk
    from genretag.daemon.tagging import Tagger
    from genretag.models.predictor import load_predictor

    predictor = load_predictor(model)
    metrics = Metrics()
    config = replace(Config(), limits=replace(Config().limits, max_streams=streams))
    config = replace(config, analysis=replace(config.analysis, tempo=trackers, key=trackers))
    tagger = Tagger(config, predictor, lambda event: None, metrics)
    tagger.start()
    spec = tagger.windowing.spec
    seconds = spec.window_seconds + spec.hop_seconds * (windows - 1) + 1.0
    sr, step = 44100, int(chunk_seconds * 44100)
    audio = music(seconds + 2)
    time.sleep(0.5)
    base = rss_bytes()
    tracemalloc.start()
    offsets = np.random.default_rng(1).integers(0, sr, streams)
    for i in range(0, int(seconds * sr), step):
        for s in range(streams):
            at = int(offsets[s]) + i
            tagger.audio(Chunk(f"stream-{s}", audio[at : at + step], sr, time.monotonic()))
        while tagger.batcher.depth > 256:  # as a real-time source would: the model keeps up
            time.sleep(0.01)
    done = threading.Event()
    tagger.batcher.call(done.set)
    done.wait(120)
    metrics.render()  # a scrape, as Prometheus makes: its escaped labels are per-stream state too
    snap = tracemalloc.take_snapshot()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss = rss_bytes()
    result = {
        "what": "tagger",
        "model": model,
        "trackers": trackers,
        "streams": streams,
        "windows_scored": tagger.windows_scored,
        "rss_bytes_per_stream": (rss - base) / streams,
        "traced_bytes_per_stream": traced / streams,
        "top": top_lines(snap, streams),
    }
    tagger.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/fast")
    ap.add_argument(
        "--streams",
        default="300,900",
        help="stream counts, each in a fresh process; two or more give the slope (bytes a stream) "
        "and the intercept (what the run adds whatever the count: batches, the model's buffers)",
    )
    ap.add_argument("--chunk-seconds", type=float, default=0.5)
    ap.add_argument("--windows", type=int, default=4, help="windows scored per stream (Tagger run)")
    ap.add_argument("--windower", action="store_true", help="the windowers alone, no model")
    ap.add_argument("--resample-block", type=float, help="seconds: the windower's RESAMPLE_BLOCK_SECONDS")
    ap.add_argument(
        "--without-trackers", action="store_true", help="[analysis] tempo and key off (Tagger run)"
    )
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.resample_block:
        import genretag.daemon.stream as stream

        stream.RESAMPLE_BLOCK_SECONDS = args.resample_block  # type: ignore[attr-defined,unused-ignore]
    counts = [int(n) for n in args.streams.split(",")]
    if len(counts) > 1:
        slope(args, counts)
        return
    if args.windower:
        result = run_windowers(counts[0], args.chunk_seconds, 8.0)
    else:
        result = run_tagger(
            args.model, counts[0], args.chunk_seconds, args.windows, not args.without_trackers
        )
    print(
        f"{result['what']}: {result['streams']} streams, chunks {args.chunk_seconds} s: "
        f"RSS {result['rss_bytes_per_stream'] / 1024:.1f} KiB/stream, "
        f"traced {result['traced_bytes_per_stream'] / 1024:.1f} KiB/stream"
        + (
            f", CPU {cpu:.3f} ms per stream-second"
            if (cpu := result.get("cpu_ms_per_stream_audio_second"))
            else ""
        )
    )
    for row in result["top"]:
        print(
            f"  {row['bytes_per_stream'] / 1024:9.1f} KiB/stream  {row['blocks']:7d} blocks  {row['where']}"
        )
    if args.json:
        write_json(Path(args.json), result)


def slope(args: argparse.Namespace, counts: list[int]) -> None:
    """Run each count in a fresh process; fit resident and traced bytes against the count."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            out = Path(tmp) / f"{n}.json"
            cmd = [sys.executable, "-m", "benchmarks.stream_memory", "--streams", str(n), "--json", str(out)]
            cmd += [
                "--model",
                args.model,
                "--chunk-seconds",
                str(args.chunk_seconds),
                "--windows",
                str(args.windows),
            ]
            cmd += ["--windower"] if args.windower else []
            cmd += ["--without-trackers"] if args.without_trackers else []
            cmd += ["--resample-block", str(args.resample_block)] if args.resample_block else []
            subprocess.run(cmd, check=True)
            runs.append(json.loads(out.read_text()))
    n = np.array(counts, dtype=float)
    summary: dict[str, Any] = {"streams": counts, "chunk_seconds": args.chunk_seconds, "runs": runs}
    for key in ("rss", "traced"):
        total = np.array([r[f"{key}_bytes_per_stream"] * r["streams"] for r in runs])
        per_stream, fixed = np.polyfit(n, total, 1)
        summary[f"{key}_bytes_per_stream"], summary[f"{key}_fixed_bytes"] = per_stream, fixed
        print(f"fit over {counts}: {key} {per_stream / 1024:.1f} KiB a stream + {fixed / MIB:.1f} MiB")
    if args.json:
        write_json(Path(args.json), summary)


if __name__ == "__main__":
    main()
