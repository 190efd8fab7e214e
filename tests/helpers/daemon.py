"""Helpers of the daemon tests: fast artifacts, the daemon as a subprocess, a PCM producer.

The bundled default model scores about 20 windows/s on a 2-core CPU, too slow
for most daemon tests, so a session fixture trains small scikit-learn
artifacts (8 kHz, 1 s windows, 0.5 s hop; hundreds of windows/s) on the
project's synthetic genres: string chords ("classical"), a drum loop
("electronic") and white noise ("noise"), which they separate cleanly.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from genretag.daemon.protocol import encode_frame
from genretag.pipeline.audio import float_to_int16
from genretag.pipeline.synth import electronic_loop, string_chords

SR = 8000
WINDOW_S, HOP_S = 1.0, 0.5
LABELS = ["classical", "electronic", "noise"]


def clip(genre: str, seconds: float, seed: int = 0) -> np.ndarray:
    """float32 mono audio of one synthetic genre at :data:`SR`."""
    if genre == "classical":
        return string_chords(seconds, SR, seed=seed)
    if genre == "electronic":
        return electronic_loop(seconds, SR, bpm=112 + 4 * (seed % 5), seed=seed)
    if genre == "noise":
        return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)
    if genre == "silence":
        return np.zeros(int(seconds * SR), np.float32)
    raise ValueError(genre)


def expected_windows(n_samples: int) -> int:
    win, hop = int(WINDOW_S * SR), int(HOP_S * SR)
    return 0 if n_samples < win else 1 + (n_samples - win) // hop


def train_artifact(out: Path, seeds: range, c: float) -> Path:
    from genretag.models.artifact import ArtifactManifest
    from genretag.models.features import FeatureConfig, window_features
    from genretag.models.predictor import save_artifact
    from genretag.models.sklearn_models import fit_baseline

    cfg = FeatureConfig(sample_rate=SR, n_fft=512, hop_length=256, n_mels=40, n_contrast_bands=4)
    win, hop = int(WINDOW_S * SR), int(HOP_S * SR)
    windows, targets = [], []
    for label, genre in enumerate(LABELS):
        for seed in seeds:
            x = clip(genre, 6.0, seed)
            for start in range(0, len(x) - win + 1, hop):
                windows.append(x[start : start + win])
                targets.append(label)
    features = window_features(np.stack(windows), cfg)
    model = fit_baseline("logreg", features, np.array(targets), {"C": c})
    manifest = ArtifactManifest(
        kind="sklearn",
        architecture="logreg",
        labels=LABELS,
        output="softmax",
        sample_rate=SR,
        window_seconds=WINDOW_S,
        hop_seconds=HOP_S,
        model_file="",
        features=asdict(cfg),
    )
    save_artifact(model, manifest, out)
    return out


def not_live(path: Path, more: str = "") -> Path:
    """Write a config (plus ``more`` TOML) for a daemon fed faster than real time on purpose, in a burst or
    from a file at ``rate=0``: no age bound (``batch.max_age_ms = 0``), so the windows queued behind the
    burst are scored rather than dropped as stale, as a live daemon would."""
    path.write_text("[batch]\nmax_age_ms = 0\n" + more)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS just handed out (free unless someone races for it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_started: list[subprocess.Popen[str]] = []


def genretag(*args: object, **kwargs: Any) -> subprocess.Popen[str]:
    """``genretag ARGS`` as a process that :func:`reap` kills after the test if it still runs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "genretag.cli.main", *map(str, args)],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )
    _started.append(proc)
    return proc


def reap() -> None:
    """Kill every process :func:`genretag` started that still runs (a test's teardown, pass or fail).

    A test that fails while waiting for a process (a ``send`` that ignored SIGINT, a
    subscriber that never got its events) must not leave it running for good.
    """
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()  # its pipes stay open: a Daemon's reader threads may still be reading them


class Daemon:
    """``genretag serve ARGS`` as a subprocess; collects stderr lines and ``--print`` events."""

    def __init__(self, *args: object, env: dict[str, str] | None = None, ready_timeout: float = 90) -> None:
        self.args = args
        self.proc = genretag("serve", *args, env=env)
        self.log: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.wait_for(lambda: any("serving:" in line for line in self.log), ready_timeout, "the start")
        ready = next(line for line in self.log if "serving:" in line)
        self.events_address = re.search(r"events on (\S+);", ready).group(1)  # type: ignore[union-attr]
        self.metrics_url = re.search(r"metrics on (\S+)", ready).group(1)  # type: ignore[union-attr]

    def _read(self, pipe: Any, events: bool) -> None:
        for line in pipe:
            if events:
                self.events.append(json.loads(line))
            else:
                self.log.append(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers catch the last lines
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) waiting for {what}:\n"
                    + "\n".join(self.log[-30:])
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; log:\n" + "\n".join(self.log[-30:]))
            time.sleep(0.1)

    def scrape(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return str(response.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0 when there is none)."""
        total = 0.0
        for family in text_string_to_metric_families(self.scrape()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def stream_events(self, stream: str, *types: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["stream"] == stream and (not types or e["type"] in types)]

    def labels(self, stream: str) -> list[str]:
        """The genres a stream's label events gave, in order (leaving out the label going null)."""
        return [e["label"] for e in self.stream_events(stream, "label") if e["label"] is not None]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Producer:
    """A PUSH socket sending PCM frames of any number of streams, numbering each stream's seq."""

    def __init__(self, address: str) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.socket = self.context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.SNDHWM, 100_000)
        self.socket.connect(address)
        self.seq: dict[str, int] = {}

    def frame(self, stream: str, samples: np.ndarray) -> None:
        seq = self.seq.get(stream, 0)
        self.socket.send_multipart(encode_frame(stream, float_to_int16(samples), SR, seq))
        self.seq[stream] = seq + 1

    def send(self, stream: str, samples: np.ndarray, chunk_seconds: float = 0.1, rate: float = 0) -> None:
        """All of ``samples`` in chunks, as fast as possible (``rate`` 0) or paced at ``rate`` x real time."""
        step, start = int(chunk_seconds * SR), time.monotonic()
        for i in range(0, len(samples), step):
            self.frame(stream, samples[i : i + step])
            if rate > 0:
                time.sleep(max(0.0, start + (i + step) / SR / rate - time.monotonic()))

    def close(self) -> None:
        self.context.destroy(linger=2000)


def promtool_check_metrics(exposition: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on an exposition (Prometheus' own linter and parser)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's prometheus package (apt-get install prometheus)")
    return subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
