"""``dataset build`` on the local process pool against Apache Beam's DirectRunner, side by side.

Builds the same source (the shared corpus by default) with ``--runner local`` and ``--runner
direct``, alternately, ``--rounds`` times each, with the same ``--workers``, each into a fresh
folder, timing the whole command (start-up included: that is what a user waits for).  Every
Beam build's shards must equal the local build's (SHA-256), or the run fails.

    python -m benchmarks.dataset_build [--source MANIFEST] [--workers 2] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import SHARED_MUSIC, machine, write_json

RUNNERS = ("local", "direct")


def shard_hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.tfrecord"))}


def build_seconds(source: Path, out: Path, runner: str, workers: int) -> float:
    command = [sys.executable, "-m", "genretag.cli.main", "dataset", "build", str(source), "-o", str(out)]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "--workers", str(workers), "--runner", runner], capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"{runner} build failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SHARED_MUSIC)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    seconds: dict[str, list[float]] = {r: [] for r in RUNNERS}
    with tempfile.TemporaryDirectory(prefix="genretag-bench-build-") as tmp:
        reference: dict[str, str] = {}
        for round_ in range(args.rounds):
            for runner in RUNNERS if round_ % 2 == 0 else RUNNERS[::-1]:  # ABBA: no order advantage
                out = Path(tmp) / f"{runner}-{round_}"
                seconds[runner].append(build_seconds(args.source, out, runner, args.workers))
                hashes = shard_hashes(out)
                reference = reference or hashes
                if hashes != reference:
                    raise SystemExit(f"{runner} round {round_}: shards differ from the first build")
        shards = len(reference)

    median = {r: statistics.median(s) for r, s in seconds.items()}
    print(f"| runner | median s ({args.rounds} rounds, {args.workers} workers, {shards} shards) | runs |")
    print("|---|---|---|")
    for runner in RUNNERS:
        print(f"| {runner} | {median[runner]:.1f} | {', '.join(f'{s:.1f}' for s in seconds[runner])} |")
    ratio = median["direct"] / median["local"]
    print(f"\nBeam DirectRunner / local: {ratio:.2f}x the time; every build's shards identical")
    if args.json:
        write_json(
            args.json,
            {
                "machine": machine(),
                "source": str(args.source),
                "workers": args.workers,
                "shards": shards,
                "seconds": seconds,
                "median": median,
                "direct_over_local": ratio,
            },
        )


if __name__ == "__main__":
    main()
