"""Training input: is training ever input-bound?  Dataset build and ``tf.data`` read throughput vs the model.

Three figures, on the same machine:

* **dataset build**: ``genretag dataset build`` (the real CLI, ``--workers`` = all
  cores) on the shared data set into a temporary directory, in clips per second;
* **reader**: examples (3 s training windows) per second out of the full
  :func:`~genretag.training.reader.window_dataset` training pipeline (parallel
  interleave and parse, cache, random crops, shuffle, batch, prefetch), after a
  first pass has filled the cache, as in every epoch but the first;
* **model**: examples per second the ``cnn2d`` and ``cnn1d`` models consume in
  training steps on in-memory batches (the input-free ceiling), and the same
  steps through ``fit`` on the reader, which shows whether the input slows them.

The target is a reader at least 3x the model's consumption.  Reader and model
are timed apart first (each gets every core), so the ratio is of ceilings; the
``fit`` figure is the honest joint one.

    python -m benchmarks.training_input [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import SHARED_MUSIC, machine, markdown_table, write_json

BATCH = 32


def build_dataset(manifest: Path, out: Path, limit: int | None) -> dict[str, float]:
    """Run the dataset builder (all cores); return clips and clips per second."""
    source = manifest
    if limit:
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
        by_label: dict[str, list[dict[str, str]]] = {}
        for r in rows:  # every genre, so the quick model still has all its labels
            by_label.setdefault(r["labels"], []).append(r)
        rows = [r for group in itertools.zip_longest(*by_label.values()) for r in group if r][:limit]
        rows = [{**r, "path": str((manifest.parent / r["path"]).resolve())} for r in rows]
        source = out.parent / "subset.csv"
        with open(source, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    workers = os.cpu_count() or 1
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "genretag.cli.main",
            "dataset",
            "build",
            str(source),
            "--out",
            str(out),
            "--resplit",
            "--seed",
            "0",
            "--workers",
            str(workers),
        ],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    import json

    clips = len(json.loads((out / "dataset.json").read_text())["clips"])
    return {"clips": clips, "seconds": seconds, "clips_per_s": clips / seconds, "workers": workers}


def reader_rate(dataset: Path, window: int, passes: int) -> dict[str, float]:
    """Examples per second of the training pipeline: first pass (parse, cache) and cached passes."""
    from genretag.training.reader import window_dataset

    ds = window_dataset(dataset, "train", window, BATCH, training=True, seed=0)
    rates = []
    for _ in range(1 + passes):
        n, started = 0, time.perf_counter()
        for x, _y in ds:
            n += int(x.shape[0])
        rates.append(n / (time.perf_counter() - started))
    return {
        "first_pass_examples_per_s": rates[0],
        "examples_per_s": float(np.median(rates[1:])),
        "examples_per_pass": n,
    }


def model_rate(
    dataset: Path, architecture: str, window: int, sample_rate: int, n_labels: int, steps: int
) -> dict[str, float]:
    """Training examples per second of one model: in-memory steps, then ``fit`` on the reader."""
    import keras

    from genretag.models.keras_builders import BUILDERS, KerasSpec
    from genretag.training.reader import window_dataset

    model = BUILDERS[architecture](KerasSpec(window, sample_rate, n_labels))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((BATCH, window))).astype(np.float32)
    y = np.eye(n_labels, dtype=np.float32)[rng.integers(0, n_labels, BATCH)]
    for _ in range(3):
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    in_memory = steps * BATCH / (time.perf_counter() - started)
    ds = window_dataset(dataset, "train", window, BATCH, training=True, seed=0).repeat()
    model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)  # warm-up: tracing, the reader's cache
    started = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    through_fit = steps * BATCH / (time.perf_counter() - started)
    return {"in_memory_examples_per_s": in_memory, "fit_examples_per_s": through_fit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=SHARED_MUSIC)
    ap.add_argument("--architectures", default="cnn2d,cnn1d")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per model")
    ap.add_argument("--passes", type=int, default=2, help="timed cached passes of the reader")
    ap.add_argument("--quick", action="store_true", help="40 clips, 5 steps, cnn2d only")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    limit = 40 if args.quick else None
    steps = 5 if args.quick else args.steps
    archs = ["cnn2d"] if args.quick else args.architectures.split(",")
    if not args.manifest.is_file():
        sys.exit(f"{args.manifest}: no such manifest (the shared data set lies beside the repository)")
    with tempfile.TemporaryDirectory(prefix="genretag-bench-data-") as tmp:
        dataset = Path(tmp) / "data"
        build = build_dataset(args.manifest, dataset, limit)
        print(
            f"dataset build: {build['clips']} clips in {build['seconds']:.1f} s = "
            f"{build['clips_per_s']:.2f} clips/s on {build['workers']} workers",
            flush=True,
        )
        from genretag.training.reader import read_dataset

        info = read_dataset(dataset)
        window = int(round(3.0 * info.sample_rate))
        reader = reader_rate(dataset, window, args.passes)
        print(
            f"reader: {reader['examples_per_s']:.0f} examples/s cached "
            f"({reader['first_pass_examples_per_s']:.0f} on the first pass)",
            flush=True,
        )
        models: dict[str, Any] = {}
        for arch in archs:
            models[arch] = model_rate(dataset, arch, window, info.sample_rate, len(info.labels), steps)
            print(
                f"{arch}: {models[arch]['in_memory_examples_per_s']:.1f} examples/s in memory, "
                f"{models[arch]['fit_examples_per_s']:.1f} through fit on the reader",
                flush=True,
            )
    rows = [
        [
            arch,
            m["in_memory_examples_per_s"],
            m["fit_examples_per_s"],
            reader["examples_per_s"],
            reader["examples_per_s"] / m["in_memory_examples_per_s"],
        ]
        for arch, m in models.items()
    ]
    info_m = machine()
    print(
        f"\n{info_m['cores']} cores ({info_m['cpu']}), load {info_m['load_average']}; build "
        f"{build['clips_per_s']:.2f} clips/s\n"
    )
    print(
        markdown_table(
            [
                "model",
                "train examples/s (in memory)",
                "train examples/s (fit on reader)",
                "reader examples/s",
                "reader / model",
            ],
            rows,
        )
    )
    write_json(
        args.json,
        {
            "benchmark": "training_input",
            "build": build,
            "reader": reader,
            "models": models,
            "batch_size": BATCH,
            "window_samples": window,
        },
    )


if __name__ == "__main__":
    main()
