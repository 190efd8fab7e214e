"""Engineered window features: shape, names, finiteness and batch independence."""

from __future__ import annotations

import numpy as np
import pytest

from genretag.models.features import FEATURES_VERSION, FeatureConfig, feature_names, window_features

SR = 16000
CONFIG = FeatureConfig(sample_rate=SR)


def _signals(n: int = SR) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(n) / SR
    click = np.zeros(n)
    click[n // 2] = 1.0
    return {
        "silence": np.zeros(n),
        "noise": 0.3 * rng.standard_normal(n),
        "tone": 0.5 * np.sin(2 * np.pi * 440.0 * t),
        "click": click,
        "dc": np.full(n, 0.5),
        "full_scale_square": np.sign(np.sin(2 * np.pi * 50.0 * t)),
    }


def test_dimension_matches_names() -> None:
    windows = np.stack(list(_signals().values())).astype(np.float32)
    feats = window_features(windows, CONFIG)
    names = feature_names(CONFIG)
    assert feats.shape == (len(windows), len(names))
    assert feats.dtype == np.float32
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("kind", list(_signals()))
def test_finite_on_degenerate_signals(kind: str) -> None:
    feats = window_features(_signals()[kind][None, :].astype(np.float32), CONFIG)
    bad = [n for n, v in zip(feature_names(CONFIG), feats[0], strict=True) if not np.isfinite(v)]
    assert not bad


def test_window_does_not_depend_on_its_batch() -> None:
    """The daemon batches windows of many streams; a quiet one must not change beside a loud one."""
    signals = _signals()
    quiet = (1e-4 * signals["noise"]).astype(np.float32)[None, :]
    loud = signals["full_scale_square"].astype(np.float32)[None, :]
    alone = window_features(quiet, CONFIG)
    batched = window_features(np.concatenate([quiet, loud]), CONFIG)[:1]
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-3)


def test_empty_batch_and_bad_shape() -> None:
    assert window_features(np.zeros((0, SR), np.float32), CONFIG).shape == (0, len(feature_names(CONFIG)))
    with pytest.raises(ValueError, match="shape"):
        window_features(np.zeros(SR, np.float32), CONFIG)


@pytest.mark.parametrize(
    "bad",
    [
        {"n_mfcc": 0},
        {"n_mfcc": 200},
        {"roll_percent": 1.5},
        {"sample_rate": 8000},  # contrast bands reach past 4 kHz
        {"version": FEATURES_VERSION + 1},
    ],
)
def test_config_validation(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FeatureConfig(**{"sample_rate": SR, **bad})
