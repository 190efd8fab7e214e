"""Start-up time of ``genretag serve`` as a newcomer runs it: no source (the bundled demo audio).

Three moments, from the launch of the process (seconds, wall clock):

* **metrics**: the first ``/metrics`` scrape that answers 200;
* **ready**: the daemon says it serves: its ``serving:`` log line (the same moment
  as systemd READY and, where the daemon has it, ``genretag_ready 1``);
* **first label**: the first ``label`` event with a genre on stdout (``--print``,
  which the demo turns on).  The demo plays in real time and the smoother wants
  a few windows before it names a genre, so this includes about 7.5 s of audio.

It also counts the lines on stderr before ``ready`` that native libraries
wrote (TensorFlow's C++ logging, libmpg123), not genretag.

``--baseline DIR`` runs another checkout side by side, alternating with this
one in every repeat, so both see the same background load: ``DIR`` is a
directory holding a ``genretag`` package (an ``__init__.py`` plus links named
``cli``, ``daemon``, ``models``, ``pipeline``, ``training`` to a ``git
worktree`` of the older commit), put first on ``PYTHONPATH``.

    python -m benchmarks.startup [--repeat 3] [--baseline DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import markdown_table, write_json

LIBRARY_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+\] |WARNING: All log messages before "
    r"absl|To enable the following instructions|\[src/libmpg123/)"
)
TIMEOUT_SECONDS = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, OSError):
        return None


def measure(pythonpath: str | None, model: str) -> dict[str, Any]:
    """One start of ``genretag serve``: the three moments and the foreign stderr lines (module doc)."""
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # measure what a user sees
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    metrics_port = _free_port()
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    cmd = [
        sys.executable,
        "-m",
        "genretag.cli.main",
        "serve",
        "--model",
        model,
        "--publish",
        f"tcp://127.0.0.1:{_free_port()}",
        "--metrics",
        f"127.0.0.1:{metrics_port}",
    ]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    moments: dict[str, float] = {}
    foreign: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "serving:" in line and "ready" not in moments:
                moments["ready"] = time.monotonic() - start
            elif "ready" not in moments and LIBRARY_LINE.match(line):
                foreign.append(line.rstrip())

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["type"] == "label" and event["label"] and "first_label" not in moments:
                moments["first_label"] = time.monotonic() - start

    readers = [
        threading.Thread(target=read_stderr, daemon=True),
        threading.Thread(target=read_stdout, daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        while "first_label" not in moments:
            if proc.poll() is not None:
                raise RuntimeError(f"genretag serve exited with {proc.returncode}")
            if time.monotonic() - start > TIMEOUT_SECONDS:
                raise RuntimeError("no label event in time")
            if "metrics" not in moments and _scrape(url) is not None:
                moments["metrics"] = time.monotonic() - start
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for reader in readers:
        reader.join(5)
    return {**moments, "library_stderr_lines": len(foreign), "library_stderr": foreign}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="default", help="artifact or bundled model [default]")
    parser.add_argument("--baseline", type=Path, help="a directory holding the older genretag package")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    variants = {"this checkout": None}
    if args.baseline:
        variants = {"baseline": str(args.baseline.resolve()), **variants}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for i in range(args.repeat):
        for name, pythonpath in variants.items():
            run = measure(pythonpath, args.model)
            runs[name].append(run)
            print(
                f"run {i + 1} {name}: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in run.items() if isinstance(v, float)),
                file=sys.stderr,
            )
    rows = []
    for name, results in runs.items():

        def median(key: str, results: list[dict[str, Any]] = results) -> float:
            values = [r[key] for r in results if key in r]
            return statistics.median(values) if values else float("nan")

        rows.append(
            [name, median("metrics"), median("ready"), median("first_label"), median("library_stderr_lines")]
        )
    header = ["code", "metrics (s)", "ready (s)", "first label (s)", "library lines on stderr"]
    print(markdown_table(header, rows))
    write_json(args.json, {"model": args.model, "repeat": args.repeat, "runs": runs})


if __name__ == "__main__":
    main()
