"""The scikit-learn baselines end to end on a synthetic 3-class problem, and their safe loading."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from genretag.models.artifact import ArtifactError, ArtifactManifest
from genretag.models.features import FeatureConfig
from genretag.models.predictor import SKLEARN_FILE, SklearnPredictor, load_predictor
from genretag.models.sklearn_io import load_estimator, save_estimator
from genretag.models.sklearn_models import BASELINES, fit_baseline
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.sklearn_train import (
    WindowTable,
    build_sklearn_artifact,
    cached_feature_table,
    clip_metrics,
    feature_table,
    first_label_index,
    train_sklearn,
)

SR = 16000
SPEC = WindowSpec(SR, window_seconds=1.0, hop_seconds=0.5)
CONFIG = FeatureConfig(sample_rate=SR)
# "unheard" never occurs in training: every baseline must still score it (as 0).
LABELS = ["low", "high", "noise", "unheard"]
CLIP_SECONDS = 2.0


def _clip(kind: int, rng: np.random.Generator) -> np.ndarray:
    """A low tone, a high tone, or bursts of noise, at a random level."""
    n = int(CLIP_SECONDS * SR)
    t = np.arange(n) / SR
    level = rng.uniform(0.1, 0.6)
    if kind == 2:
        envelope = np.sin(2 * np.pi * rng.uniform(2, 6) * t + rng.uniform(0, 6)) > 0.3
        signal = envelope * rng.standard_normal(n)
    else:
        freq = rng.uniform(120, 300) if kind == 0 else rng.uniform(2000, 4000)
        signal = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6))
    return (level * signal + 0.005 * rng.standard_normal(n)).astype(np.float32)


def _clips(per_class: int, seed: int) -> Iterator[tuple[str, np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    for kind in range(3):
        for i in range(per_class):
            yield f"s{seed}-{kind}-{i}", frame_windows(_clip(kind, rng), SPEC)[0], kind


@pytest.fixture(scope="module")
def tables() -> tuple[WindowTable, WindowTable]:
    return feature_table(_clips(8, seed=1), CONFIG), feature_table(_clips(4, seed=2), CONFIG)


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    clips = list(_clips(5, seed=3))
    windows = np.concatenate([w for _, w, _ in clips])
    targets = np.concatenate([np.full(len(w), t) for _, w, t in clips])
    return windows, targets


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_trains_saves_reloads_and_classifies(
    name: str,
    tables: tuple[WindowTable, WindowTable],
    held_out: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    train, dev = tables
    estimator, metrics = train_sklearn(name, train, dev, len(LABELS))
    assert metrics["selected_by"] == "clip_macro_f1"
    assert metrics["clip_macro_f1"] == max(r["clip_macro_f1"] for r in metrics["grid"])

    build_sklearn_artifact(
        estimator,
        name,
        LABELS,
        SPEC,
        CONFIG,
        tmp_path / "model",
        dev_metrics=metrics,
        training_data={"source": "synthetic"},
    )
    predictor = load_predictor(tmp_path / "model")
    assert predictor.manifest.architecture == name
    assert predictor.manifest.features == asdict(CONFIG)

    windows, targets = held_out
    scores = predictor.predict(windows)
    assert scores.shape == (len(windows), len(LABELS))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-4)
    assert np.all(scores[:, LABELS.index("unheard")] == 0)
    assert np.mean(scores.argmax(axis=1) == targets) >= 0.9


def test_tampered_model_file_is_refused(tables: tuple[WindowTable, WindowTable], tmp_path: Path) -> None:
    train, dev = tables
    estimator, _ = train_sklearn("gnb", train, dev, len(LABELS))
    build_sklearn_artifact(estimator, "gnb", LABELS, SPEC, CONFIG, tmp_path / "model")
    model_file = tmp_path / "model" / SKLEARN_FILE
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="files"):
        load_predictor(tmp_path / "model")


class Doubler(TransformerMixin, BaseEstimator):
    """A custom class: loading it would mean importing and running code from the file's author."""

    def fit(self, x: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, x: Any) -> Any:
        return 2 * x


@pytest.mark.parametrize(
    ("step", "offender"),
    [
        (FunctionTransformer(np.log1p), "FunctionTransformer"),
        (Doubler(), "Doubler"),
    ],
)
def test_disallowed_types_are_refused(step: Any, offender: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pipeline = make_pipeline(step, GaussianNB()).fit(rng.random((30, 4)), np.arange(30) % 3)
    path = tmp_path / "model.skops"
    skops.io.dump(pipeline, path)
    with pytest.raises(ArtifactError, match=offender):
        load_estimator(path)
    with pytest.raises(ArtifactError, match=offender):
        save_estimator(pipeline, tmp_path / "again.skops")
    assert not (tmp_path / "again.skops").exists()


def test_non_skops_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"\x80\x04 not a zip, perhaps a pickle")
    with pytest.raises(ArtifactError, match="not a skops"):
        load_estimator(path)


def test_estimator_with_more_classes_than_labels_is_refused(
    tables: tuple[WindowTable, WindowTable],
) -> None:
    train, _ = tables
    estimator = fit_baseline("gnb", train.features, train.targets)
    manifest = ArtifactManifest(
        kind="sklearn",
        architecture="gnb",
        labels=["low", "high"],
        output="softmax",
        sample_rate=SR,
        window_seconds=1.0,
        hop_seconds=0.5,
        model_file=SKLEARN_FILE,
        features=asdict(CONFIG),
    )
    with pytest.raises(ArtifactError, match="labels"):
        SklearnPredictor(manifest, estimator)


def test_clip_metrics_average_windows_per_clip() -> None:
    # Clip "a" (class 0) has one wrong window but wins on the mean; clip "b" (class 1) is wrong.
    scores = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
    table = WindowTable(np.zeros((3, 1), np.float32), np.array([0, 0, 1]), np.array(["a", "a", "b"]))
    metrics = clip_metrics(scores, table)
    assert metrics["clips"] == 2
    assert metrics["clip_accuracy"] == 0.5
    assert metrics["window_accuracy"] == pytest.approx(1 / 3)


def test_feature_cache_is_reused_only_for_same_key(tmp_path: Path) -> None:
    cache = tmp_path / "features.npz"
    first = cached_feature_table(cache, "k1", CONFIG, _clips(1, seed=4))

    def must_not_decode() -> Iterator[tuple[str, np.ndarray, int]]:
        raise AssertionError("cache hit should not decode")
        yield  # pragma: no cover

    again = cached_feature_table(cache, "k1", CONFIG, must_not_decode())
    np.testing.assert_array_equal(again.features, first.features)
    np.testing.assert_array_equal(again.clips, first.clips)
    with pytest.raises(AssertionError, match="should not decode"):
        cached_feature_table(cache, "k2", CONFIG, must_not_decode())


def test_first_label_index() -> None:
    assert first_label_index(["noise", "low"], LABELS) == 2
    with pytest.raises(ValueError):
        first_label_index([], LABELS)
