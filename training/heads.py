"""The analysis heads of the default model (issue "Beyond genre"): fitted and put into one artifact.

Steps (``genretag train-heads``):

1. read the base artifact, which must be a musicnn tagger (:mod:`genretag.models.tagger`); its genre
   head (the ``scores`` layer), calibration, figures and training data are kept as they are, so genre
   scores do not change;
2. **speech**: the speech/music set of :mod:`genretag.training.speech_data` (talk, music, talk over music
   beds at 0 to -18 dB, noise and band-limit augments; made exactly as ``make bench-speech`` makes it),
   every window above the daemon's silence threshold, a class-balanced logistic regression
   (:func:`genretag.training.speech_music.fit_backbone_head`) at the benchmark's C;
3. **mood**: every window of the clips with a mood quadrant (``mer4q/manifest.csv``), the class-balanced
   softmax regression of :func:`genretag.training.mood.fit_mood_head` at :data:`MOOD_C`;
4. **tags**: a fixed selection of the backbones' own taggram outputs
   (:data:`genretag.models.tagger.CURATED_TAGS`), nothing trained;
5. one Keras model with the base's genre weights and the three heads on the same embedding, checked to
   give the base model's genre scores, and saved as a validated artifact whose ``heads`` entries say what
   each head was trained on, its C and its cross-validated figures.

The figures are those measured by the benchmarks on the same data and recipe (``make bench-speech``,
``make bench-mood``; benchmarks/RESULTS.md): recomputing them would cost ten minutes for numbers that do
not change.  An artifact trained on a subset (``max_music_clips``, ``max_mood_clips``) or at another C
records no figures, since they would not describe it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from genretag.models.artifact import ArtifactManifest, read_manifest
from genretag.models.model_types import TAGGER_ARCHITECTURE
from genretag.models.predictor import import_keras, known_inputs, save_artifact
from genretag.training.backbone_train import HeadConfig
from genretag.training.layouts import LayoutError
from genretag.training.mood import MOODS, QUADRANTS, embed_mood_corpus, fit_mood_head, read_mood_manifest
from genretag.training.speech_data import SetOptions, build_set
from genretag.training.speech_music import embed_items, fit_backbone_head

#: The speech head's C: the benchmark's (benchmarks/RESULTS.md, "Speech/music"; 0.001 and 0.1 within a point).
SPEECH_C = 0.01
#: The mood head's C: the one the nested CV of ``make bench-mood`` chose most (3 of 5 outer folds; 0.003 and
#: 0.01 once each; benchmarks/RESULTS.md, "Mood head").  The grid's values lie within a point of each other.
MOOD_C = 0.001
#: Windows quieter than this are left out of the speech head's training, as the benchmark left them out
#: (the daemon calls them silence and never asks the question).
SILENCE_DB = -50.0

#: Group-disjoint 5-fold figures of the speech head (``make bench-speech``, measured 2026-12-07).
SPEECH_FIGURES: dict[str, Any] = {
    "measured_by": "make bench-speech (benchmarks/RESULTS.md, 'Speech/music'), 2026-12-07",
    "folds": "5 group-disjoint folds (talk recordings, digit speakers, artists)",
    "pure_speech_accuracy": 0.994,
    "pure_music_accuracy": 0.978,
    "pure_balanced_accuracy": 0.986,
    "talk_over_music_accuracy": {"0 dB": 0.776, "-6 dB": 0.926, "-12 dB": 0.994, "-18 dB": 0.994},
    "baseline_handmade_lr_balanced_accuracy": 0.938,
}
#: Artist-grouped 5-fold figures of the mood head (``make bench-mood``, C nested, measured 2026-12-07).
MOOD_FIGURES: dict[str, Any] = {
    "measured_by": "make bench-mood (benchmarks/RESULTS.md, 'Mood head'), 2026-12-07",
    "folds": "5 artist-disjoint folds stratified by quadrant, C nested (inner 3 folds)",
    "accuracy": 0.753,
    "macro_f1": 0.748,
    "per_quadrant_recall": {"happy": 0.780, "tense": 0.883, "sad": 0.682, "calm": 0.650},
    "chance": 0.25,
    "baseline_librosa_accuracy": 0.632,
}
#: What the musicnn authors published about the backbones' tags: overall figures only, on each backbone's
#: own test set (github.com/jordipons/musicnn, musicnn/*/experiment.result; Pons & Serra 2019).
PUBLISHED_TAG_FIGURES: dict[str, Any] = {
    "MTT_musicnn": {"data": "MagnaTagATune test set", "roc_auc": 0.9067, "pr_auc": 0.3831},
    "MSD_musicnn": {"data": "Million Song Dataset test set", "roc_auc": 0.8802, "pr_auc": 0.2891},
    "source": "github.com/jordipons/musicnn, musicnn/MTT_musicnn and MSD_musicnn experiment.result",
    "per_tag": "not published; see the README's tag table",
}


class HeadsError(ValueError):
    """The base artifact or the data cannot make heads; the message says why."""


@dataclass(frozen=True)
class HeadsRecipe:
    """What :func:`train_heads` fits; the defaults are the bundled model's."""

    speech_C: float = SPEECH_C
    mood_C: float = MOOD_C
    seed: int = 0
    #: for quick runs: only this many clips of the music collections in the speech set (None: all)
    max_music_clips: int | None = None
    #: for quick runs: only this many mood clips (None: all)
    max_mood_clips: int | None = None

    @property
    def is_measured(self) -> bool:
        """Whether the benchmarks' figures describe heads made by this recipe."""
        return (
            self.speech_C == SPEECH_C
            and self.mood_C == MOOD_C
            and self.seed == 0
            and self.max_music_clips is None
            and self.max_mood_clips is None
        )


def base_config(manifest: ArtifactManifest) -> HeadConfig:
    """The base artifact's backbones, layers and window layout, or :class:`HeadsError` if it is not a
    musicnn tagger (the only architecture whose embedding the heads know)."""
    if manifest.kind != "keras" or manifest.architecture != TAGGER_ARCHITECTURE:
        raise HeadsError(
            f"the base model is a {manifest.kind} {manifest.architecture!r} artifact: heads go on a musicnn "
            f"tagger (architecture {TAGGER_ARCHITECTURE!r}, the default model's, made by train-tagger)"
        )
    features = manifest.features
    if not {"backbones", "layers", "normalize_db"} <= set(features):
        raise HeadsError("the base model's manifest does not name its backbones, layers and loudness target")
    if "taggram" not in features["layers"]:
        raise HeadsError("the base model's embedding has no taggram, which the tags head reads")
    return HeadConfig(
        variants=tuple(features["backbones"]),
        layers=tuple(features["layers"]),
        C=float(features.get("C", 0.0)),
        hop_seconds=manifest.hop_seconds,
        normalize_db=features["normalize_db"],
    )


def _no_handmade(windows: np.ndarray) -> np.ndarray:
    """The speech set's hand-made features are the benchmark's baseline: the head needs none."""
    return np.zeros((len(windows), 0), np.float32)


def fit_speech(
    config: HeadConfig,
    speech_manifest: Path,
    music_manifests: Sequence[Path],
    recipe: HeadsRecipe,
    cache_dir: Path | None,
    log: Callable[[str], None],
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]:
    """The speech head's Dense ``(kernel, bias)`` and its manifest entry."""
    options = SetOptions(seed=recipe.seed, max_music_clips=recipe.max_music_clips)
    log("speech: building the speech/music set (decoding, mixing, augmenting)")
    items = build_set(speech_manifest, list(music_manifests), options)
    if not any(it.label == 1 for it in items) or not any(it.label == 0 for it in items):
        raise HeadsError(f"{speech_manifest}: the speech set needs both speech and music clips")
    windows = embed_items(items, config, cache_dir, cache_dir, handmade=_no_handmade)
    audible = windows.levels_db > SILENCE_DB
    log(f"speech: fitting on {int(audible.sum())} windows of {len(items)} clips (C = {recipe.speech_C:g})")
    head = fit_backbone_head(
        windows.backbone[audible], windows.labels[audible], windows.item[audible], recipe.speech_C
    )
    fingerprint = hashlib.sha256(
        json.dumps([(it.clip_id, it.label, it.group) for it in items]).encode()
    ).hexdigest()
    entry = {
        "labels": ["music", "speech"],
        "output": "softmax",
        "head": "class-balanced logistic regression on the genre head's embedding "
        "(training/speech_music.py); talk over a music bed is speech",
        "C": recipe.speech_C,
        "trained_on": {
            "speech_manifest": str(speech_manifest),
            "music_manifests": [str(m) for m in music_manifests],
            "clips": len(items),
            "windows": int(audible.sum()),
            "silent_windows_left_out": int((~audible).sum()),
            "set": asdict(options),
            "fingerprint": fingerprint,
        },
        "cross_validated": SPEECH_FIGURES if recipe.is_measured else None,
    }
    return head.folded(), entry


def fit_mood(
    config: HeadConfig,
    mood_manifest: Path,
    recipe: HeadsRecipe,
    cache_dir: Path | None,
    log: Callable[[str], None],
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]:
    """The mood head's Dense ``(kernel, bias)`` and its manifest entry."""
    try:
        clips, quadrants = read_mood_manifest(mood_manifest)
    except LayoutError as err:
        raise HeadsError(str(err)) from None
    if recipe.max_mood_clips is not None:
        pick = np.sort(np.random.default_rng(recipe.seed).permutation(len(clips))[: recipe.max_mood_clips])
        clips, quadrants = [clips[i] for i in pick], quadrants[pick]
    missing = sorted(set(range(len(QUADRANTS))) - set(quadrants.tolist()))
    if missing:
        raise HeadsError(f"{mood_manifest}: no clip of quadrant {', '.join(QUADRANTS[i] for i in missing)}")
    log(f"mood: embedding {len(clips)} clips")
    corpus = embed_mood_corpus(clips, quadrants, config, cache_dir)
    x = corpus.select(config.variants, config.layers)
    log(f"mood: fitting on {len(x)} windows of {len(clips)} clips (C = {recipe.mood_C:g})")
    head = fit_mood_head(x, corpus.quadrants, corpus.clip_index, recipe.mood_C)
    entry = {
        "labels": list(MOODS),
        "output": "softmax",
        "quadrants": dict(zip(MOODS, QUADRANTS, strict=True)),
        "head": "class-balanced softmax regression on the genre head's embedding (training/mood.py)",
        "C": recipe.mood_C,
        "trained_on": {
            "manifest": str(mood_manifest),
            "clips": len(clips),
            "artists": len(np.unique(corpus.groups)),
            "windows": len(x),
        },
        "cross_validated": MOOD_FIGURES if recipe.is_measured else None,
    }
    return head.folded(), entry


def tags_entry(config: HeadConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """The tags head's selection kernel and its manifest entry."""
    from genretag.models.tagger import CURATED_TAGS, tag_selection

    try:
        kernel = tag_selection(config.variants, config.layers, CURATED_TAGS)
    except ValueError as err:
        raise HeadsError(f"the base model cannot carry the curated tags: {err}") from None
    entry = {
        "labels": list(CURATED_TAGS),
        "output": "sigmoid",
        "head": "a fixed selection of the backbones' own taggram outputs (sigmoid probabilities), "
        "not trained here",
        "source": {label: f"{variant}/{tag}" for label, (variant, tag) in CURATED_TAGS.items()},
        "published": PUBLISHED_TAG_FIGURES,
    }
    return kernel, entry


def train_heads(
    base_dir: Path,
    out_dir: Path,
    speech_manifest: Path,
    music_manifests: Sequence[Path],
    mood_manifest: Path,
    recipe: HeadsRecipe = HeadsRecipe(),
    cache_dir: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Any:
    """Run the steps of the module docstring; returns the saved artifact's predictor."""
    from genretag.models.tagger import build_tagger

    base = read_manifest(base_dir)
    config = base_config(base)
    if not music_manifests:
        raise HeadsError("the speech set needs music collections for its music and its beds")
    keras = import_keras()
    base_model = keras.saving.load_model(base_dir / base.model_file, compile=False, safe_mode=True)
    try:
        genre_kernel, genre_bias = base_model.get_layer("scores").get_weights()
    except ValueError:
        raise HeadsError(f"{base_dir}: the base model has no 'scores' layer") from None
    tags_kernel, tags = tags_entry(config)
    speech_weights, speech = fit_speech(config, speech_manifest, music_manifests, recipe, cache_dir, log)
    mood_weights, mood = fit_mood(config, mood_manifest, recipe, cache_dir, log)
    model = build_tagger(
        config.variants,
        config.layers,
        config.normalize_db,
        genre_kernel,
        genre_bias,
        {"speech": speech_weights, "mood": mood_weights, "tags": (tags_kernel, None)},
    )
    probe = known_inputs(base)
    before = np.asarray(_genre(base_model.predict_on_batch(probe)))
    after = np.asarray(model.predict_on_batch(probe)[0])
    if not np.array_equal(before, after):
        raise HeadsError(f"genre scores changed (max diff {np.abs(before - after).max():.2e}): not saved")
    manifest = replace(
        base,
        heads={"speech": speech, "mood": mood, "tags": tags},
        files={},
        serving={},
        package_version=version("genretag"),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    log(f"saving {out_dir}")
    return save_artifact(model, manifest, out_dir)


def _genre(outputs: Any) -> Any:
    """Genre's scores of a tagger's outputs (the first of a list, or the only one)."""
    return outputs[0] if isinstance(outputs, list | tuple) else outputs
