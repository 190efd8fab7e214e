"""``genretag train-heads``: real clips of ../shared, the real bundled model as the base."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from genretag.cli.main import cli
from genretag.models.artifact import HEAD_NAMES
from genretag.models.bundled import bundled_model_dir
from genretag.models.predictor import load_predictor

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shared(shared_music: Path) -> Path:
    return shared_music.parent


def test_train_heads_refuses_a_base_that_is_not_a_musicnn_tagger(shared: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "train-heads",
            "--model",
            str(REPO / "models" / "fast"),
            "--speech-data",
            str(shared / "speech"),
            "--music-manifest",
            str(shared / "music" / "manifest.csv"),
            "--mood-manifest",
            str(shared / "mer4q" / "manifest.csv"),
            "--out",
            str(tmp_path / "art"),
        ],
    )
    assert result.exit_code == 1
    assert "'musicnn-student' artifact: heads go on a musicnn tagger" in result.output
    assert not (tmp_path / "art").exists()


def _subset(source: Path, out: Path, rows: list[dict[str, str]]) -> Path:
    """A manifest of some of ``source``'s rows, paths made absolute (the audio stays in ../shared)."""
    with source.open(newline="") as f:
        fields = csv.DictReader(f).fieldnames or []
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(row | {"path": str(source.parent / row["path"])})
    return out


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_train_heads_on_a_small_subset_makes_a_valid_artifact(shared: Path, tmp_path: Path) -> None:
    """Three talk and two music clips, three music-collection clips, two clips a mood quadrant: about
    100 s on 2 cores, most of it embedding."""
    speech_rows = _rows(shared / "speech/manifest.csv")
    talk = [r for r in speech_rows if r["class"] == "speech"]
    speech = _subset(
        shared / "speech/manifest.csv",
        tmp_path / "speech" / "manifest.csv",
        [*talk[-2:], talk[0], *[r for r in speech_rows if r["class"] == "music"][:2]],
    )
    music = _subset(
        shared / "music/manifest.csv", tmp_path / "music.csv", _rows(shared / "music/manifest.csv")[:3]
    )
    mood_rows = _rows(shared / "mer4q/manifest.csv")
    mood = _subset(
        shared / "mer4q/manifest.csv",
        tmp_path / "mood.csv",
        [r for q in ("Q1", "Q2", "Q3", "Q4") for r in [r for r in mood_rows if r["mood_quadrant"] == q][:2]],
    )
    out = tmp_path / "art"
    args = ["train-heads", "--model", str(bundled_model_dir()), "--speech-data", str(speech.parent)]
    args += ["--music-manifest", str(music), "--mood-manifest", str(mood), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--cache", str(tmp_path / "cache"), "--max-mood-clips", "8"])
    assert result.exit_code == 0, result.output
    assert "speech: music, speech (" in result.stdout and "saved" in result.stdout

    predictor = load_predictor(out)
    m, base = predictor.manifest, load_predictor(bundled_model_dir()).manifest
    assert list(m.heads) == list(HEAD_NAMES) and m.serving["max_abs_error"] <= 1e-4
    assert m.heads["speech"]["trained_on"]["clips"] > 10 and m.heads["mood"]["trained_on"]["clips"] == 8
    assert m.heads["mood"]["cross_validated"] is None  # a subset: the benchmarks' figures do not apply
    assert (m.labels, m.calibration, m.dev_metrics) == (base.labels, base.calibration, base.dev_metrics)
    assert m.training_data == base.training_data
