"""The whole offline flow through the real ``genretag`` command: build, train, classify, evaluate, compare.

Synthetic "genres" (a drum loop, string chords, noise bursts) stand in for
music so the run takes seconds; the real-music figures are in the README.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genretag.pipeline.synth import electronic_loop, string_chords

SR = 16000
CLIPS_PER_GENRE = 6


def genretag(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"genretag {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def _noise_bursts(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * SR)).astype(np.float32) * 0.3
    gate = (np.sin(2 * np.pi * rng.uniform(1, 3) * np.arange(len(x)) / SR) > 0).astype(np.float32)
    return x * gate


@pytest.fixture(scope="module")
def genre_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("genres")
    makers = {
        "electronic": lambda i: electronic_loop(5.0, SR, bpm=118 + 4 * i, seed=i),
        "classical": lambda i: string_chords(5.0, SR, seed=i),
        "noise": lambda i: _noise_bursts(5.0, i),
    }
    for genre, make in makers.items():
        (root / genre).mkdir()
        for i in range(CLIPS_PER_GENRE):
            sf.write(root / genre / f"{genre}{i}.wav", make(i), SR)
    return root


@pytest.fixture(scope="module")
def dataset(genre_folders: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds")
    proc = genretag(
        "dataset",
        "build",
        genre_folders,
        "--out",
        out,
        "--sample-rate",
        SR,
        "--split-fractions",
        "0.5,0.25,0.25",
        "--workers",
        1,
    )
    assert "18 clips" in proc.stdout and "0 skipped" in proc.stdout
    return out


@pytest.fixture(scope="module")
def cnn_artifact(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "cnn2d"
    proc = genretag(
        "train",
        "--data",
        dataset,
        "--model-type",
        "cnn2d",
        "--out",
        out,
        "--epochs",
        3,
        "--steps-per-epoch",
        4,
        "--batch-size",
        8,
        "--seed",
        1,
    )
    assert "saved" in proc.stdout
    return out


def test_help_is_light() -> None:
    """``genretag --help`` must not import TensorFlow or Keras (it has to be instant)."""
    code = (
        "import sys; from click.testing import CliRunner; from genretag.cli.main import cli; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('tensorflow', 'keras', 'librosa', 'sklearn') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_trained_keras_artifact_is_complete(cnn_artifact: Path) -> None:
    manifest = json.loads((cnn_artifact / "manifest.json").read_text())
    assert manifest["labels"] == ["classical", "electronic", "noise"]
    assert manifest["kind"] == "keras" and manifest["sample_rate"] == SR
    assert manifest["dev_metrics"]["clip"]["n"] > 0
    assert (cnn_artifact.parent / "cnn2d.logs").is_dir()  # TensorBoard logs


@pytest.mark.slow
def test_classify_json_and_bad_file(cnn_artifact: Path, genre_folders: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"not audio at all" * 100)
    good = genre_folders / "electronic" / "electronic0.wav"
    proc = genretag("classify", "--model", cnn_artifact, "--json", bad, good, check=False)
    assert proc.returncode == 1
    assert "broken.mp3" in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 1
    result = lines[0]
    assert result["path"] == str(good)
    assert set(result["scores"]) == {"classical", "electronic", "noise"}
    assert result["label"] == max(result["scores"], key=result["scores"].get)
    assert abs(sum(result["scores"].values()) - 1) < 1e-3
    assert result["windows"] and {"start", "scores"} <= set(result["windows"][0])


@pytest.mark.slow
def test_evaluate_writes_reports(cnn_artifact: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    genretag("evaluate", "--model", cnn_artifact, "--data", dataset, "--split", "test", "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"window", "clip"} <= set(metrics)
    assert metrics["clip"]["n"] >= 3
    assert 0 <= metrics["clip"]["hit_at_1"] <= 1
    assert (out / "confusion.png").stat().st_size > 1000
    assert "| clip |" in (out / "metrics.md").read_text()


@pytest.mark.slow
def test_sklearn_baseline_learns_the_synthetic_genres(
    dataset: Path, genre_folders: Path, tmp_path: Path
) -> None:
    out = tmp_path / "logreg"
    genretag("train", "--data", dataset, "--model-type", "logreg", "--out", out)
    proc = genretag(
        "classify",
        "--model",
        out,
        "--json",
        *(genre_folders / g / f"{g}5.wav" for g in ("classical", "electronic", "noise")),
    )
    labels = [json.loads(line)["label"] for line in proc.stdout.splitlines()]
    assert labels == ["classical", "electronic", "noise"]


@pytest.mark.slow
def test_compare_tabulates_models(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    proc = genretag("compare", "--data", dataset, "--out", out, "--models", "gnb,knn")
    assert "| gnb |" in proc.stdout and "| knn |" in proc.stdout
    rows = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in rows] == ["gnb", "knn"]
    assert rows[0]["dev"]["n"] > 0 and rows[0]["test"]["n"] > 0
    assert (out / "results.png").is_file()
    again = genretag("compare", "--data", dataset, "--out", out, "--models", "gnb")
    assert "| gnb |" in again.stdout  # reused, not retrained (same fingerprint)
    assert json.loads((out / "results.json").read_text()) == rows[:1]  # same artifact, same figures
