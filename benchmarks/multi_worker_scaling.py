"""Training speed on one worker and on two (``MultiWorkerMirroredStrategy`` on loopback), same global batch.

Builds a small dataset of synthetic genres (as ``tests/training/test_multi_worker.py``
does, more clips), then runs ``genretag train --model-type cnn1d`` alone and as
two workers with ``TF_CONFIG``, alternately, ``--rounds`` times each.  Reported
per run: the wall time of each epoch after the first (the first includes
tracing and the input cache) from Keras' epoch lines, and windows per second
at the global batch.  Both workers run on this machine, so they share its cores.

    python -m benchmarks.multi_worker_scaling [--batch-size 16] [--steps 8] [--epochs 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 8000
EPOCH_LINE = re.compile(r"^(\d+)/\1 - (\d+)s - (\d+)(ms|s)/step", re.M)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(root: Path, clips_per_genre: int) -> Path:
    from genretag.pipeline.synth import electronic_loop, string_chords

    makers = {
        "electronic": lambda i: electronic_loop(4.0, SR, bpm=110 + 2 * i, seed=i),
        "classical": lambda i: string_chords(4.0, SR, seed=i),
        "noise": lambda i: (0.3 * np.random.default_rng(i).standard_normal(4 * SR)).astype(np.float32),
    }
    for genre, make in makers.items():
        (root / "src" / genre).mkdir(parents=True)
        for i in range(clips_per_genre):
            sf.write(root / "src" / genre / f"{genre}{i}.wav", make(i), SR)
    out = root / "ds"
    cmd = [
        sys.executable,
        "-m",
        "genretag.cli.main",
        "dataset",
        "build",
        str(root / "src"),
        "--out",
        str(out),
    ]
    cmd += ["--sample-rate", str(SR), "--split-fractions", "0.6,0.2,0.2", "--workers", "1"]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def train(dataset: Path, out: Path, workers: int, args: argparse.Namespace) -> list[float]:
    """Seconds per step of every epoch after the first, as Keras printed them (chief's for two workers)."""
    cmd = [
        sys.executable,
        "-m",
        "genretag.cli.main",
        "train",
        "--data",
        str(dataset),
        "--model-type",
        "cnn1d",
    ]
    cmd += ["--out", str(out), "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps)]
    cmd += ["--batch-size", str(args.batch_size), "--seed", "1", "--patience", str(args.epochs)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    addresses = [f"127.0.0.1:{_port()}" for _ in range(workers)]
    procs = []
    for i in range(workers):
        if workers > 1:
            task = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}}
            env = {**env, "TF_CONFIG": json.dumps(task)}
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        )
    outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"training failed: {outputs}")
    steps = [(int(m[2]) / (1000 if m[3] == "ms" else 1)) for m in EPOCH_LINE.findall(outputs[0])]
    return steps[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16, help="global batch")
    parser.add_argument("--steps", type=int, default=8, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clips-per-genre", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = build(Path(tmp), args.clips_per_genre)
        print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.1f}")
        results: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.rounds):
            for workers in (1, 2):
                t0 = time.monotonic()
                per_step = train(dataset, Path(tmp) / f"m{r}{workers}", workers, args)
                results[workers] += per_step
                print(
                    f"{workers} worker(s): s/step {per_step}, run {time.monotonic() - t0:.0f} s, "
                    f"load {os.getloadavg()[0]:.1f}"
                )
        for workers, per_step in results.items():
            step = float(np.median(per_step))
            epoch = step * args.steps
            print(
                f"{workers} worker(s): median {step * 1000:.0f} ms/step, {epoch:.1f} s/epoch, "
                f"{args.batch_size / step:.1f} windows/s (global batch {args.batch_size})"
            )


if __name__ == "__main__":
    main()
