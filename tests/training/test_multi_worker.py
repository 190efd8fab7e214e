"""Training on two workers (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``) equals training on one.

The two-worker test runs the real ``genretag train --model-type cnn1d`` three
times on a dataset built from generated audio: once alone (no ``TF_CONFIG``)
and once as each of two workers on loopback.  What "equal" means and why it
can hold (see :mod:`genretag.training.strategy`):

- same global batch: ``--batch-size 8`` is the global batch; each worker
  trains on 4 windows a step, its half of the batch a single worker would see
  (DATA auto-shard: both workers run the whole seeded input pipeline);
- same initial weights (same seed; the strategy broadcasts the chief's);
- the same computation per step: the loss is the mean over the global batch
  (Keras scales each replica's loss by 1/2, the gradients are summed),
  BatchNormalization uses the global batch's moments and Dropout each
  worker's rows of the global batch's mask, with op determinism on.

What remains is floating-point order: the gradient is summed as two halves
instead of in one pass, and synchronised batch statistics are computed as
E[x^2] - E[x]^2 instead of in two passes.  After one step the weights agree
to about 4e-5 (a few percent of one Adam step, lr 1e-3); over the test's six
steps Adam's normalised updates let that grow.  Measured on the 2-core
development box: weights within 7.7e-5, scores on known inputs within
2.5e-6, every logged loss and metric equal.  The test allows scores within
1e-4 (the tolerance `save_artifact` allows a reloaded model) and weights
within 1e-3 (one Adam step): a real difference in the computation is far
outside both (per-replica dropout masks: weights 5e-2 and scores 2e-2 apart).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genretag.training.strategy import is_chief, worker_output

SR = 8000
SCORE_TOLERANCE = 1e-4
WEIGHT_TOLERANCE = 1e-3
TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _train_args(dataset: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "genretag.cli.main",
        "train",
        "--data",
        str(dataset),
        "--model-type",
        "cnn1d",
        "--out",
        str(out),
        "--epochs",
        "2",
        "--steps-per-epoch",
        "3",
        "--batch-size",
        "8",
        "--seed",
        "1",
    ]


def _wait_all(procs: list[subprocess.Popen[str]], logs: list[Path]) -> None:
    """Wait for every process; if one fails, stop the others (a worker left alone waits forever)."""
    deadline = time.monotonic() + TIMEOUT_S
    while any(p.poll() is None for p in procs):
        failed = [p for p in procs if p.poll() not in (None, 0)]
        if failed or time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            break
        time.sleep(0.5)
    for p, log in zip(procs, logs, strict=True):
        if p.returncode != 0:
            raise AssertionError(f"{log.name}: exit {p.returncode}\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve 4 s clips of three synthetic genres at 8 kHz, built by ``genretag dataset build``."""
    from genretag.pipeline.synth import electronic_loop, string_chords

    root = tmp_path_factory.mktemp("genres")
    makers = {
        "electronic": lambda i: electronic_loop(4.0, SR, bpm=118 + 4 * i, seed=i),
        "classical": lambda i: string_chords(4.0, SR, seed=i),
        "noise": lambda i: (0.3 * np.random.default_rng(i).standard_normal(4 * SR)).astype(np.float32),
    }
    for genre, make in makers.items():
        (root / genre).mkdir()
        for i in range(4):
            sf.write(root / genre / f"{genre}{i}.wav", make(i), SR)
    out = tmp_path_factory.mktemp("ds")
    subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", "dataset", "build", str(root), "--out", str(out)]
        + ["--sample-rate", str(SR), "--split-fractions", "0.5,0.25,0.25", "--workers", "1"]
        + ["--shard-size", "2"],
        check=True,
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    return out


@pytest.mark.slow
def test_two_workers_train_the_single_worker_model(dataset: Path, tmp_path: Path) -> None:
    """Two workers on loopback and one worker alone, same seed: same artifact within the tolerances
    stated in the module docstring; only the chief writes the artifact."""
    from genretag.models.predictor import known_inputs, load_predictor
    from genretag.pipeline.windows import WindowSpec, frame_windows
    from genretag.training.reader import load_clips_numpy

    alone, together = tmp_path / "alone", tmp_path / "together"
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    logs = [tmp_path / name for name in ("alone.log", "worker0.log", "worker1.log")]
    runs = [(alone, env), *((together, {**env, "TF_CONFIG": _tf_config(workers, i)}) for i in range(2))]
    procs = []
    for (out, run_env), log in zip(runs, logs, strict=True):
        with log.open("w") as f:
            procs.append(
                subprocess.Popen(
                    _train_args(dataset, out), env=run_env, stdout=f, stderr=subprocess.STDOUT, text=True
                )
            )
    _wait_all(procs, logs)

    assert "saved" in logs[0].read_text() and "replicas" not in logs[0].read_text()
    assert "(cnn1d, 3 labels, trained on 2 replicas)" in logs[1].read_text()
    assert "trained as a worker of the TF_CONFIG cluster; the chief saves" in logs[2].read_text()
    # the chief wrote the artifact and its logs; the other worker left nothing behind
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("together")) == [
        "together",
        "together.logs",
    ]
    a, b = load_predictor(alone, runtime="keras"), load_predictor(together, runtime="keras")
    assert a.manifest.labels == b.manifest.labels
    assert "replicas" not in a.manifest.training_data and b.manifest.training_data["replicas"] == 2

    weights = max(
        float(np.abs(np.asarray(x) - np.asarray(y)).max())
        for x, y in zip(a.model.weights, b.model.weights, strict=True)  # type: ignore[attr-defined]
    )
    clips = load_clips_numpy(dataset, "test")
    spec = WindowSpec(SR, a.manifest.window_seconds, a.manifest.hop_seconds)
    probe = np.concatenate([known_inputs(a.manifest), *(frame_windows(c.pcm, spec)[0] for c in clips)])
    scores = float(np.abs(a.predict(probe) - b.predict(probe)).max())
    print(f"two workers vs one: weights max |diff| {weights:.2e}, scores max |diff| {scores:.2e}")
    assert weights <= WEIGHT_TOLERANCE
    assert scores <= SCORE_TOLERANCE
    for key in ("hit_at_1", "macro_roc_auc"):
        assert b.manifest.dev_metrics["clip"][key] == pytest.approx(a.manifest.dev_metrics["clip"][key])


def test_chief_is_worker_zero_or_the_chief_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    workers = ["127.0.0.1:1", "127.0.0.1:2"]
    monkeypatch.setenv("TF_CONFIG", _tf_config(workers, 0))
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", _tf_config(workers, 1))
    assert not is_chief()
    with_chief = {"cluster": {"chief": ["127.0.0.1:3"], "worker": workers}}
    monkeypatch.setenv("TF_CONFIG", json.dumps({**with_chief, "task": {"type": "worker", "index": 0}}))
    assert not is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({**with_chief, "task": {"type": "chief", "index": 0}}))
    assert is_chief()


def test_only_the_chief_writes_to_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    workers = ["127.0.0.1:1", "127.0.0.1:2"]
    monkeypatch.setenv("TF_CONFIG", _tf_config(workers, 0))
    with worker_output(tmp_path / "model") as target:
        assert target == tmp_path / "model"
    monkeypatch.setenv("TF_CONFIG", _tf_config(workers, 1))
    with worker_output(tmp_path / "model") as target:
        assert target.name == "model" and tmp_path not in target.parents
        target.mkdir()
        (target / "model.keras").write_bytes(b"x")
    assert not target.parent.exists()
    assert list(tmp_path.iterdir()) == []
