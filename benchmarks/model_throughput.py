"""Model throughput: windows per second of an artifact's predictor at batch sizes 1 ... 1024.

This is the ceiling of the daemon: whatever the streaming side does, it cannot
score more windows per second than the predictor at the batch sizes the
batcher forms.  The predictor is the daemon's own (``load_predictor``), on the
serving runtime chosen with ``--runtime`` (several, comma-separated, are
measured one after the other in one run) and, for ``keras``, on the Keras
backend chosen with ``--backend`` (set before Keras is imported), fed noise
windows (never zeros: they can run faster than music).

Each batch size is warmed up (first call: graph tracing, compilation), then
called repeatedly for at least ``--seconds``; the figure is windows over the
median call time.  A batch size whose single call would take longer than
``--max-call-seconds`` (estimated from the previous size) is skipped, so the
slow bundled model on a 2-core CPU does not spend minutes per point.

    python -m benchmarks.model_throughput [--model DIR] [--runtime keras,openvino] [--backend jax] [--quick]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_MODEL, machine, markdown_table, write_json

SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
QUICK_SIZES = [1, 8, 64]


def measure(predictor: Any, batch: int, seconds: float, rng: np.random.Generator) -> dict[str, float]:
    """Warm up, then time calls for ``seconds``; windows/s over the median call."""
    n = predictor.manifest.window_samples
    x = (0.1 * rng.standard_normal((batch, n))).astype(np.float32)
    started = time.perf_counter()
    predictor.predict_outputs(x)
    first = time.perf_counter() - started
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        t = time.perf_counter()
        predictor.predict_outputs(x)
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    return {
        "batch": batch,
        "calls": len(times),
        "first_call_s": first,
        "median_call_s": median,
        "windows_per_s": batch / median,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument(
        "--runtime",
        default="auto",
        type=lambda s: s.split(","),
        help="serving runtimes to measure, comma-separated (auto, openvino, keras) [auto]",
    )
    ap.add_argument("--backend", choices=["tensorflow", "jax", "torch"])
    ap.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--seconds", type=float, default=3.0, help="timed calls per batch size, at least")
    ap.add_argument("--max-call-seconds", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true", help=f"batch sizes {QUICK_SIZES}, 1 s each")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    seconds = 1.0 if args.quick else args.seconds

    from genretag.models.predictor import load_predictor, runtime_name

    rows: list[dict[str, Any]] = []
    for runtime in args.runtime:
        predictor = load_predictor(args.model, runtime)
        name = runtime_name(predictor)
        rng = np.random.default_rng(0)
        done: list[dict[str, Any]] = []
        for batch in sizes:
            if done and batch / done[-1]["windows_per_s"] > args.max_call_seconds:
                print(
                    f"{name}, batch {batch}: skipped (one call would take > {args.max_call_seconds:g} s)",
                    flush=True,
                )
                continue
            done.append({"runtime": name, **measure(predictor, batch, seconds, rng)})
            print(f"{name}, batch {batch}: {done[-1]['windows_per_s']:.1f} windows/s", flush=True)
        rows += done
    info = machine()
    print(
        f"\nModel {args.model} ({predictor.manifest.architecture}), {info['cores']} cores, "
        f"GPU {info['gpu']}\n"
    )
    print(
        markdown_table(
            ["runtime", "batch", "windows/s", "ms per window", "first call (s)", "calls"],
            [
                [
                    r["runtime"],
                    r["batch"],
                    r["windows_per_s"],
                    1000 / r["windows_per_s"],
                    r["first_call_s"],
                    r["calls"],
                ]
                for r in rows
            ],
        )
    )
    write_json(
        args.json,
        {
            "benchmark": "model_throughput",
            "model": str(args.model),
            "architecture": predictor.manifest.architecture,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
