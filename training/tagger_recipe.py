"""The bundled default model's recipe: a musicnn head trained on several collections, chosen and
calibrated on sources it did not see.

Steps (``genretag train-tagger``):

1. read the collections' manifests as one corpus (:mod:`genretag.training.corpus`): candidate
   sets for labels, artists grouped across collections, the source of every clip;
2. embed every window (3 s, 1.5 s hop) with the frozen backbones, cached per clip;
3. figures that predict other sources: out-of-fold clip scores with leave-one-source-out folds
   and with artist-grouped folds (:mod:`genretag.training.source_cv`);
4. a temperature fitted on the leave-one-source-out scores (artist-grouped ones with fewer than three
   sources), so that a score of 0.6 means what it says on unseen sources; it is folded into the
   shipped ``Dense`` softmax;
5. the head (:func:`genretag.training.set_head.fit_set_head`) on every clip, assembled into one
   Keras model from PCM to calibrated genre probabilities, saved as a validated artifact whose
   manifest carries the figures and the calibration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from genretag.models.musicnn_input import BACKBONE_RATE
from genretag.models.predictor import save_artifact
from genretag.pipeline.audio import decode
from genretag.training.backbone_train import (
    HeadConfig,
    LinearHead,
    backbone_window_levels,
    build_tagger,
    embed_clips,
    tagger_manifest,
)
from genretag.training.corpus import CorpusClip, candidates_of, corpus_labels, read_corpus
from genretag.training.reader import Clip
from genretag.training.set_head import fit_set_head
from genretag.training.source_cv import (
    CorpusWindows,
    artist_folds,
    clip_scores,
    fit_temperature,
    out_of_fold,
    set_metrics,
    source_folds,
)

#: Sources needed before the temperature is fitted on leave-one-source-out scores (see
#: :func:`cross_source_figures`).
MIN_SOURCES_FOR_LOSO_CALIBRATION = 3


@dataclass(frozen=True)
class TaggerRecipe:
    """What :func:`train_tagger` fits; the defaults are the bundled model's."""

    head: HeadConfig = field(default_factory=lambda: HeadConfig(C=0.0003))
    artist_folds: int = 5
    seed: int = 0
    #: the smoothed score below which the daemon's rolling label abstains (chosen on the programme
    #: benchmark, see the README); recorded in the artifact's calibration
    min_confidence: float = 0.2


def embed_corpus(
    clips: Sequence[CorpusClip], names: Sequence[str], config: HeadConfig, cache_dir: Path | None
) -> CorpusWindows:
    """Every window's features of ``config``'s layers, its clip and level, and the clips' candidate
    sets (over ``names``), artist groups and sources: what the folds and the head are fitted on."""
    decoded = [
        Clip(c.clip_id, c.group, np.zeros(0, np.float32), decode(c.path, BACKBONE_RATE))
        for c in tqdm(clips, desc="decoding", unit="clip")
    ]
    emb = embed_clips(decoded, config.variants, config.hop_seconds, config.normalize_db, cache_dir)
    index = {c.clip_id: i for i, c in enumerate(clips)}
    return CorpusWindows(
        emb.select(config),
        np.array([index[i] for i in emb.clip_ids]),
        candidates_of(clips, names),
        np.array([c.group for c in clips]),
        np.array([c.source for c in clips]),
        levels_db=backbone_window_levels(decoded, config.hop_seconds),
    )


def _fitter(config: HeadConfig) -> Any:
    def fit(corpus: CorpusWindows, clip_mask: np.ndarray) -> LinearHead:
        rows = corpus.windows_of(clip_mask)
        clip_index = corpus.clip_index[rows]
        return fit_set_head(corpus.features[rows], corpus.candidates[clip_index], clip_index, config.C)

    return fit


def cross_source_figures(
    corpus: CorpusWindows, names: Sequence[str], recipe: TaggerRecipe
) -> tuple[dict[str, Any], float, str]:
    """Leave-one-source-out and artist-grouped figures, the temperature, and which folds it was fitted on.

    The temperature comes from the leave-one-source-out scores when there are at least
    :data:`MIN_SOURCES_FOR_LOSO_CALIBRATION` sources; with two, each fold learns from one source only (GTZAN
    alone has 10 clips a genre), its scores say little about a model trained on both, and the fitted
    temperature runs to its bound: the artist-grouped scores are used instead.
    """
    fit = _fitter(recipe.head)
    loso = out_of_fold(corpus, source_folds(corpus.sources), fit)
    folds = artist_folds(corpus.candidates, corpus.groups, recipe.artist_folds, recipe.seed)
    return figures_from_logits(corpus, names, recipe, loso, out_of_fold(corpus, folds, fit))


def figures_from_logits(
    corpus: CorpusWindows,
    names: Sequence[str],
    recipe: TaggerRecipe,
    loso: tuple[np.ndarray, np.ndarray],
    artist: tuple[np.ndarray, np.ndarray],
) -> tuple[dict[str, Any], float, str]:
    """:func:`cross_source_figures` from out-of-fold window logits made by any model (a fine-tuned one,
    say): ``loso`` and ``artist`` are ``(window logits, trained genres)`` as
    :func:`~genretag.training.source_cv.out_of_fold` returns them for the leave-one-source-out and the
    artist-grouped folds (``recipe.artist_folds`` folds of seed ``recipe.seed``)."""
    (loso_logits, loso_trained), (artist_logits, artist_trained) = loso, artist
    n_clips = len(corpus.candidates)
    fitted_on = (
        "leave_one_source_out"
        if len(np.unique(corpus.sources)) >= MIN_SOURCES_FOR_LOSO_CALIBRATION
        else "artist_grouped_cv"
    )
    temperature = fit_temperature(
        loso_logits if fitted_on == "leave_one_source_out" else artist_logits,
        corpus.candidates,
        corpus.clip_index,
        corpus.levels_db,
    )
    scores = clip_scores(loso_logits, corpus.clip_index, n_clips, temperature, corpus.levels_db)
    figures: dict[str, Any] = {
        "leave_one_source_out": {
            **set_metrics(scores, corpus.candidates, names, loso_trained),
            "per_source": {
                str(s): set_metrics(
                    scores[corpus.sources == s],
                    corpus.candidates[corpus.sources == s],
                    names,
                    loso_trained[corpus.sources == s],
                )
                for s in np.unique(corpus.sources)
            },
        }
    }
    scores = clip_scores(artist_logits, corpus.clip_index, n_clips, temperature, corpus.levels_db)
    figures["artist_grouped_cv"] = {
        "folds": recipe.artist_folds,
        "seed": recipe.seed,
        **set_metrics(scores, corpus.candidates, names, artist_trained),
    }
    return figures, temperature, fitted_on


def calibrated(head: LinearHead, temperature: float) -> LinearHead:
    """The same head with its logits divided by ``temperature`` (softmax(z / T))."""
    return LinearHead(head.mean, head.scale, head.coef / temperature, head.intercept / temperature)


def corpus_fingerprint(clips: Sequence[CorpusClip]) -> str:
    payload = json.dumps([(c.clip_id, c.labels, c.group, c.source) for c in clips], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def train_tagger(
    manifests: Sequence[Path],
    out_dir: Path,
    recipe: TaggerRecipe = TaggerRecipe(),
    cache_dir: Path | None = None,
) -> Any:
    """Run the recipe (module docstring) on ``manifests`` and save the artifact to ``out_dir``."""
    clips = read_corpus(manifests)
    names = corpus_labels(clips)
    config = recipe.head
    corpus = embed_corpus(clips, names, config, cache_dir)
    figures, temperature, fitted_on = cross_source_figures(corpus, names, recipe)
    head = fit_set_head(corpus.features, corpus.candidates[corpus.clip_index], corpus.clip_index, config.C)
    model = build_tagger(config, calibrated(head, temperature), len(names))
    manifest = tagger_manifest(
        config,
        names,
        "class-balanced softmax regression on candidate sets",
        training_data={
            "manifests": [str(m) for m in manifests],
            "clips": len(clips),
            "sources": sorted({c.source for c in clips}),
            "fingerprint": corpus_fingerprint(clips),
            "recipe": asdict(recipe),
        },
        dev_metrics=figures,
        calibration={
            "temperature": temperature,
            "min_confidence": recipe.min_confidence,
            "fitted_on": f"{fitted_on.replace('_', '-')} clip scores (set log-loss)",
        },
    )
    return save_artifact(model, manifest, out_dir)
