"""The musicnn head: fitting, folding into Keras, loudness invariance, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genretag.models.artifact import ArtifactManifest
from genretag.models.musicnn_input import BACKBONE_RATE, WINDOW_SAMPLES
from genretag.models.predictor import load_predictor, save_artifact
from genretag.pipeline.synth import electronic_loop, string_chords
from genretag.training.backbone_train import (
    HeadConfig,
    build_tagger,
    embed_clips,
    fit_head,
    tagger_manifest,
)
from genretag.training.reader import Clip

LABELS = ["classical", "electronic", "unused"]
CONFIG = HeadConfig(variants=("MSD_musicnn",), layers=("taggram",), C=0.1)


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    out = []
    for i in range(3):
        for label, make in ((0, string_chords), (1, electronic_loop)):
            vec = np.zeros(len(LABELS), np.float32)
            vec[label] = 1
            out.append(
                Clip(f"{LABELS[label]}{i}", f"artist{label}{i}", vec, make(4.5, BACKBONE_RATE, seed=i))
            )
    return out


def test_fit_head_weights_clips_equally_and_handles_absent_labels() -> None:
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (40, 4)), rng.normal(3, 1, (4, 4))])
    labels = np.zeros((44, 3), np.float32)
    labels[:40, 0] = 1
    labels[40:, 1] = 1
    ids = np.array(["a"] * 40 + ["b", "c", "d", "e"])  # one long clip vs four short ones
    head = fit_head(x, labels, ids, C=1.0)
    probs = head.predict(x)
    assert probs[:, 2].max() < 1e-6  # never-seen label
    assert probs[40:, 1].mean() > 0.5  # the minority class is not swamped
    kernel, bias = head.folded()
    logits = x @ kernel + bias
    folded = np.exp(logits - logits.max(1, keepdims=True))
    assert np.allclose(folded / folded.sum(1, keepdims=True), probs, atol=1e-5)


def test_embedding_cache_is_reused(clips: list[Clip], tmp_path: Path) -> None:
    first = embed_clips(clips[:2], CONFIG.variants, 1.5, CONFIG.normalize_db, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    again = embed_clips(clips[:2], CONFIG.variants, 1.5, CONFIG.normalize_db, tmp_path)
    assert np.array_equal(first.features["MSD_musicnn/taggram"], again.features["MSD_musicnn/taggram"])
    assert len(first.clip_ids) == 2 * 2  # 4.5 s clips: windows at 0 and 1.5 s


@pytest.mark.slow
def test_tagger_matches_head_is_gain_invariant_and_exports(clips: list[Clip], tmp_path: Path) -> None:
    emb = embed_clips(clips, CONFIG.variants, 1.5, CONFIG.normalize_db, tmp_path / "cache")
    x = emb.select(CONFIG)
    head = fit_head(x, emb.labels, emb.clip_ids, CONFIG.C)
    model = build_tagger(CONFIG, head, len(LABELS))
    windows = np.stack([c.pcm[:WINDOW_SAMPLES] for c in clips])
    scores = np.asarray(model.predict_on_batch(windows))
    assert np.allclose(scores, head.predict(x[::2]), atol=1e-4)  # first window of each clip
    quieter = np.asarray(model.predict_on_batch(windows * 0.1))
    assert np.allclose(quieter, scores, atol=1e-3)  # -20 dB changes nothing
    assert list(scores.argmax(axis=1)) == [0, 1, 0, 1, 0, 1]

    predictor = save_artifact(model, tagger_manifest(CONFIG, LABELS, "test head"), tmp_path / "art")
    assert predictor.manifest.serving["max_abs_error"] <= 1e-4  # the export of a one-backbone tagger
    assert np.allclose(load_predictor(tmp_path / "art", runtime="keras").predict(windows), scores, atol=1e-5)
    assert np.allclose(load_predictor(tmp_path / "art", precision="f32").predict(windows), scores, atol=1e-4)
    assert predictor.manifest.window_samples == WINDOW_SAMPLES

    bare = ArtifactManifest(
        kind="keras",
        architecture="musicnn",
        labels=LABELS,
        output="softmax",
        sample_rate=BACKBONE_RATE,
        window_seconds=WINDOW_SAMPLES / BACKBONE_RATE,
        hop_seconds=1.5,
        model_file="",
    )
    assert save_artifact(model, bare, tmp_path / "bare").manifest.serving == {}  # no features: Keras serves
