"""What tempo and key cost the inference thread at many streams, with a model that costs nothing.

A real :class:`~genretag.daemon.tagging.Tagger` (default config, its batcher and inference thread)
serves a predictor that returns constant scores instantly, so the thread's time is the daemon's own
per-window work.  N streams of synthetic music at 16 kHz go in as fast as the caller can push them
(1 s chunks, interleaved as a ZeroMQ source delivers them), with ``[analysis] tempo`` and ``key`` off,
then on, in one process; reported: windows scored per second of wall time, windows dropped, and
the windows tempo and key left out (their ``analysis.cpu_share``).  Run it under py-spy to see
where the thread's time goes.

    python -m benchmarks.tracking_cost [--streams 2000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import replace

import numpy as np

from genretag.daemon.config import Config
from genretag.daemon.metrics import Metrics
from genretag.daemon.sources.base import Chunk
from genretag.daemon.tagging import Tagger
from genretag.models.artifact import ArtifactManifest
from genretag.pipeline.synth import electronic_loop

SR = 16000


class FreeModel:
    """The fast model's windows (2.976 s every 1.5 s at 16 kHz), scored at no cost."""

    def __init__(self) -> None:
        self.manifest = ArtifactManifest(
            kind="sklearn",
            architecture="constant",
            labels=["a", "b"],
            output="softmax",
            sample_rate=SR,
            window_seconds=2.976,
            hop_seconds=1.5,
            model_file="m",
        )

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.tile(np.array([0.9, 0.1], np.float32), (len(windows), 1))

    def predict_outputs(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        return {"genre": self.predict(windows)}


def run(streams: int, trackers: bool, seconds: float) -> dict[str, float]:
    config = replace(Config(), limits=replace(Config().limits, max_streams=streams))
    config = replace(config, analysis=replace(config.analysis, tempo=trackers, key=trackers))
    metrics = Metrics()
    tagger = Tagger(config, FreeModel(), lambda _event: None, metrics)  # type: ignore[arg-type]
    tagger.start()
    audio = (electronic_loop(seconds + 2, SR, seed=1) * 20000).astype(np.int16)
    started = time.perf_counter()
    for at in range(0, int(seconds * SR), SR):
        for s in range(streams):
            tagger.audio(Chunk(f"s{s}", audio[at : at + SR], SR, time.monotonic()))
    done = threading.Event()
    tagger.batcher.call(done.set)
    done.wait(600)
    wall = time.perf_counter() - started
    expected = streams * (1 + int((seconds - 2.976) / 1.5))
    result = {
        "windows_per_s": tagger.windows_scored / wall,
        "scored": tagger.windows_scored,
        "dropped": expected - tagger.windows_scored,
        "left_out": sum(metrics.analysis_skipped._values.values()),
    }
    tagger.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print("| tempo and key | windows/s | scored | dropped | left out of tempo and key |")
    print("|---|---|---|---|---|")
    for trackers in (False, True):
        r = run(args.streams, trackers, args.seconds)
        print(
            f"| {'on' if trackers else 'off'} | {r['windows_per_s']:.0f} | {r['scored']:.0f} | "
            f"{r['dropped']:.0f} | {r['left_out']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
