"""Distillation: the student learns the teacher's outputs and ships as one PCM -> probabilities graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genretag.models.musicnn_input import BACKBONE_RATE
from genretag.models.predictor import load_predictor, save_artifact
from genretag.pipeline.synth import electronic_loop, string_chords
from genretag.training.backbone_train import HeadConfig, LinearHead
from genretag.training.distill import (
    StudentConfig,
    assemble_student,
    augmented_windows,
    config_from_json,
    fit_student,
    label_windows,
    load_teacher_head,
    save_teacher_head,
    spec_augment,
    student_manifest,
    teacher_windows,
)

LABELS = ["a", "b", "c"]


@pytest.mark.slow
def test_student_moves_towards_the_teacher_and_ships(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clips = [electronic_loop(8.0, BACKBONE_RATE, seed=1), string_chords(8.0, BACKBONE_RATE, seed=2)]
    teacher = HeadConfig(variants=("MSD_musicnn",))
    dim = 250  # MSD penultimate (200) + taggram (50)
    head = LinearHead(np.zeros(dim), np.ones(dim), rng.standard_normal((3, dim)) * 0.3, np.zeros(3))
    config = StudentConfig(
        widths=(8, 16),
        final_width=16,
        epochs=30,
        batch_size=8,
        learning_rate=3e-3,
        teacher_hop_seconds=1.0,
        augmented_windows=16,
    )
    windows = teacher_windows(clips, config.teacher_hop_seconds)
    assert windows.shape == (12, 47616)
    data = label_windows(windows, head, teacher, config.augmented_windows, rng, batch_size=8)
    assert data.mels.shape == (len(windows) + 16, 187, 96) and data.probs.shape == (len(windows) + 16, 3)

    def kl(student: object) -> float:
        p = np.asarray(student.predict_on_batch(data.mels.astype(np.float32)))  # type: ignore[attr-defined]
        return float(np.mean(np.sum(data.probs * np.log(data.probs / np.clip(p, 1e-7, 1)), axis=1)))

    untrained = kl(fit_student(data, head, StudentConfig(**{**config.__dict__, "epochs": 0})))
    trained_scores = fit_student(data, head, config)
    assert kl(trained_scores) < 0.75 * untrained, (kl(trained_scores), untrained)

    model = assemble_student(trained_scores, teacher.normalize_db)
    manifest = student_manifest(
        LABELS,
        config,
        teacher,
        distillation={"windows": len(data.mels)},
        calibration={"temperature": 1.3, "min_confidence": 0.2},
    )
    artifact = save_artifact(model, manifest, tmp_path / "student")
    reloaded = load_predictor(tmp_path / "student")
    assert reloaded.manifest.architecture == artifact.manifest.architecture == "musicnn-student"
    assert reloaded.manifest.features["distillation"] == {"windows": 28}
    assert reloaded.manifest.calibration["min_confidence"] == 0.2
    probs = reloaded.predict(windows[:4])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_augmented_windows_are_new_finite_audio() -> None:
    rng = np.random.default_rng(1)
    windows = rng.standard_normal((5, 47616)).astype(np.float32) * 0.1
    out = augmented_windows(windows, 7, rng)
    assert out.shape == (7, 47616) and out.dtype == np.float32 and np.isfinite(out).all()
    assert not any(np.allclose(o, w) for o in out for w in windows)


def test_spec_augment_zeroes_whole_bands_and_frames_of_at_most_an_eighth() -> None:
    config = StudentConfig(freq_masks=1, time_masks=1)
    mels = np.ones((64, 187, 96), np.float16)
    out = spec_augment(mels, config, np.random.default_rng(2))
    assert out.dtype == np.float32 and mels.min() == 1  # a copy
    zero_bands = (out == 0).all(axis=1).sum(axis=1)  # bands zero at every frame, per example
    zero_frames = (out == 0).all(axis=2).sum(axis=1)
    assert zero_bands.max() <= 96 // 8 and zero_frames.max() <= 187 // 8
    assert zero_bands.max() > 0 and zero_frames.max() > 0 and len(set(zero_bands)) > 1
    zero = out == 0  # only whole bands and whole frames are zeroed
    assert np.array_equal(zero, zero.all(axis=1, keepdims=True) | zero.all(axis=2, keepdims=True))


def test_teacher_head_round_trips_with_its_config(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    head = LinearHead(
        rng.standard_normal(5), rng.random(5) + 0.5, rng.standard_normal((3, 5)), rng.standard_normal(3)
    )
    teacher = HeadConfig(variants=("MSD_musicnn",), C=0.0003)
    save_teacher_head(tmp_path / "head.npz", head, teacher, LABELS, temperature=1.3, manifests=["m.csv"])
    loaded, loaded_teacher, labels, info = load_teacher_head(tmp_path / "head.npz")
    assert loaded_teacher == teacher and labels == LABELS
    assert info == {"temperature": 1.3, "manifests": ["m.csv"]}
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(loaded.predict(x), head.predict(x))
    assert config_from_json(StudentConfig, {"widths": [8, 16]}) == StudentConfig(widths=(8, 16))
