"""The fine-tuning experiment's CPU parts: figures from any model's out-of-fold logits, the windows and
crops it trains on, its augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from genretag.models.musicnn import WINDOW_SAMPLES
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.set_head import fit_set_head
from genretag.training.source_cv import CorpusWindows, artist_folds, out_of_fold, source_folds, trained_genres
from genretag.training.tagger_recipe import TaggerRecipe, cross_source_figures, figures_from_logits
from tools import finetune_cv


def _corpus(rng: np.random.Generator) -> CorpusWindows:
    """Sixty clips of three genres from three sources, four windows a clip, two clips an artist."""
    centres = np.array([[0, 0], [4, 0], [0, 4]], float)
    genre = rng.integers(0, 3, 60)
    candidates = np.eye(3, dtype=np.float32)[genre]
    clip_index = np.repeat(np.arange(60), 4)
    features = centres[genre[clip_index]] + rng.normal(0, 1.0, (240, 2))
    sources = np.array(["a", "b", "c"])[np.arange(60) % 3]
    groups = np.array([f"artist{i // 2}" for i in range(60)])
    return CorpusWindows(features, clip_index, candidates, groups, sources)


def test_figures_from_logits_are_the_recipes_figures() -> None:
    corpus = _corpus(np.random.default_rng(0))
    names = ["jazz", "pop", "rock"]
    recipe = TaggerRecipe(artist_folds=3)

    def fit(c: CorpusWindows, mask: np.ndarray):  # type: ignore[no-untyped-def]
        rows = c.windows_of(mask)
        clips = c.clip_index[rows]
        return fit_set_head(c.features[rows], c.candidates[clips], clips, recipe.head.C)

    folds = artist_folds(corpus.candidates, corpus.groups, recipe.artist_folds, recipe.seed)
    loso = out_of_fold(corpus, source_folds(corpus.sources), fit)
    artist = out_of_fold(corpus, folds, fit)
    assert (trained_genres(corpus.candidates, folds) == artist[1]).all()
    expected = cross_source_figures(corpus, names, recipe)
    assert figures_from_logits(corpus, names, recipe, loso, artist) == expected


def test_trained_genres_leave_out_what_a_fold_never_saw_exactly() -> None:
    candidates = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]], np.float32)  # clip 2: a set
    folds = [np.array([1, 0, 0, 1], bool), np.array([0, 1, 1, 0], bool)]
    trained = trained_genres(candidates, folds)
    assert trained[0].tolist() == [False, True, False]  # genre 2 only inside a set in the other part
    assert trained[1].tolist() == [True, False, True]


def test_audio_cuts_the_recipes_windows_and_crops_inside_the_clip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    lengths = [16000 * 5, 16000 * 7 + 123, WINDOW_SAMPLES // 2]  # the last is shorter than a window
    files = []
    for i, n in enumerate(lengths):
        files.append(str(tmp_path / f"{i}.wav"))
        sf.write(files[-1], rng.uniform(-0.5, 0.5, n).astype(np.float32), 16000, subtype="FLOAT")
    audio = finetune_cv.Audio(files, 1.5, tmp_path / "cache")
    spec = WindowSpec(16000, WINDOW_SAMPLES / 16000, 1.5)
    expected = np.concatenate([frame_windows(sf.read(f, dtype="float32")[0], spec)[0] for f in files])
    rows = np.arange(len(audio.clip_index))
    assert np.allclose(audio.windows(rows), expected)
    cached = finetune_cv.Audio(files, 1.5, tmp_path / "cache")  # read back from the cache
    assert np.array_equal(cached.clip_index, audio.clip_index)
    crops = audio.windows(np.repeat(rows[:1], 50), np.random.default_rng(0))  # clip 0's first window, shifted
    clip0 = sf.read(files[0], dtype="float32")[0]
    starts = [int(np.flatnonzero(np.isclose(clip0, c[0]))[0]) for c in crops]
    assert 0 <= min(starts) and max(starts) <= audio.shift and len(set(starts)) > 10


def test_augment_keeps_shape_and_adds_noise_within_its_snr() -> None:
    import jax

    tone = np.sin(2 * np.pi * 440 * np.arange(WINDOW_SAMPLES) / 16000)
    pcm = tone[None].repeat(4, axis=0).astype(np.float32)
    out = np.asarray(finetune_cv.augment(jax.random.PRNGKey(0), pcm))
    assert out.shape == pcm.shape and np.isfinite(out).all()
    assert not np.allclose(out, pcm)
    spectrum = np.abs(np.fft.rfft(out, axis=1))
    tone = spectrum[:, int(round(440 * WINDOW_SAMPLES / 16000))]
    assert (tone > 20 * np.median(spectrum, axis=1)).all()  # 15-35 dB SNR leaves the tone on top
