"""Inputs of the GPU distillation (``distill_on_gpu.py``), made where the collections live.

The teacher is the default model's recipe (:mod:`genretag.training.tagger_recipe`) on the
given manifests: the candidate-set head on the frozen musicnn features of every clip, its
logits divided by the recipe's temperature (:func:`~genretag.training.tagger_recipe.calibrated`).
The temperature is read from that teacher's artifact when ``--teacher`` names it (and the
head fitted here must then equal the artifact's, which is checked), else fitted as
``genretag train-tagger`` fits it (:func:`~genretag.training.tagger_recipe.cross_source_figures`).

Writes to ``OUT``:

* ``head.npz``: the calibrated head, its config and labels, and where it came from
  (:func:`genretag.training.distill.save_teacher_head`);
* ``clips.json``: every clip of the manifests as an Opus copy (16 kHz mono, ``--kbps``), made
  once under ``COPIES`` (keep it out of git: the audio is not ours to redistribute);
* with ``--report-on MANIFEST``: the teacher's clip-level figures on that manifest's clips,
  in ``head.npz``'s info (``teacher_figures``), to set the student's beside them.

Run (embeddings are cached per clip, as for ``train-tagger``)::

    python tools/distill_inputs.py --manifest ../shared/data/music/manifest.csv \\
        --manifest ../shared/data/mer4q/manifest.csv --teacher models/default \\
        --copies .dist/audio --out .dist/jobs/all --cache CACHE
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from genretag.models.artifact import read_manifest
from genretag.models.musicnn_input import BACKBONE_RATE
from genretag.pipeline.audio import decode
from genretag.training.backbone_train import LinearHead
from genretag.training.corpus import CorpusClip, corpus_labels, read_corpus
from genretag.training.distill import save_teacher_head
from genretag.training.set_head import fit_set_head
from genretag.training.source_cv import clip_scores, head_logits, set_metrics
from genretag.training.tagger_recipe import (
    TaggerRecipe,
    calibrated,
    corpus_fingerprint,
    cross_source_figures,
    embed_corpus,
)


def opus_copies(clips: Sequence[CorpusClip], root: Path, kbps: int) -> list[Path]:
    """An Opus copy of every clip under ``root`` (``<clip id>.opus``), made with ffmpeg where missing.

    The copy holds the 16 kHz mono signal the backbones see (the project's own decode and resampler),
    so the GPU box decodes what the teacher was fitted on, less the codec's loss.
    """
    paths = []
    for clip in tqdm(clips, desc="opus copies", unit="clip"):
        path = (root / clip.clip_id).with_suffix(".opus")
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            pcm = decode(clip.path, BACKBONE_RATE)
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "f32le",
                    "-ar",
                    str(BACKBONE_RATE),
                    "-ac",
                    "1",
                    "-i",
                    "-",
                    "-c:a",
                    "libopus",
                    "-b:a",
                    f"{kbps}k",
                    str(path),
                ],
                input=pcm.tobytes(),
                check=True,
            )
        paths.append(path)
    return paths


def artifact_temperature(artifact: Path, head: LinearHead, recipe: TaggerRecipe) -> tuple[float, str]:
    """The temperature of a teacher artifact, after checking that ``head`` calibrated by it is its head."""
    from genretag.models.predictor import import_keras

    manifest = read_manifest(artifact)
    temperature = float(manifest.calibration["temperature"])
    model = import_keras().saving.load_model(artifact / manifest.model_file, compile=False, safe_mode=True)
    kernel, bias = model.get_layer("scores").get_weights()
    expected_kernel, expected_bias = calibrated(head, temperature).folded()
    error = max(np.abs(kernel - expected_kernel).max(), np.abs(bias - expected_bias).max())
    if manifest.features.get("C") != recipe.head.C or error > 1e-3 * np.abs(expected_kernel).max():
        raise SystemExit(
            f"{artifact}: not this recipe's head on these manifests "
            f"(C {manifest.features.get('C')}, largest weight difference {error:.2e})"
        )
    return temperature, f"{artifact}: {manifest.calibration.get('fitted_on', '')}"


def teacher_figures(
    manifest: Path, head: LinearHead, names: list[str], recipe: TaggerRecipe, cache_dir: Path | None
) -> dict[str, Any]:
    """Clip-level figures (mean of window probabilities) of the calibrated ``head`` on a manifest's clips."""
    corpus = embed_corpus(read_corpus([manifest]), names, recipe.head, cache_dir)
    scores = clip_scores(
        head_logits(head, corpus.features),
        corpus.clip_index,
        len(corpus.candidates),
        levels_db=corpus.levels_db,
    )
    return set_metrics(scores, corpus.candidates, names)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--manifest",
        type=Path,
        action="append",
        required=True,
        help="a collection to train the teacher and distil the student on (repeatable)",
    )
    parser.add_argument("--copies", type=Path, required=True, help="folder of the Opus copies (git-ignored)")
    parser.add_argument("--out", type=Path, required=True, help="folder for head.npz and clips.json")
    parser.add_argument("--teacher", type=Path, help="the teacher's artifact, for its temperature [fit it]")
    parser.add_argument(
        "--report-on",
        type=Path,
        action="append",
        default=[],
        metavar="MANIFEST",
        help="score the teacher on this manifest's clips (repeatable)",
    )
    parser.add_argument("--cache", type=Path, help="embedding cache folder (as train-tagger --cache)")
    parser.add_argument("--kbps", type=int, default=24, help="Opus bit rate, kb/s [24]")
    args = parser.parse_args()

    recipe = TaggerRecipe()
    clips = read_corpus(args.manifest)
    names = corpus_labels(clips)
    corpus = embed_corpus(clips, names, recipe.head, args.cache)
    head = fit_set_head(
        corpus.features, corpus.candidates[corpus.clip_index], corpus.clip_index, recipe.head.C
    )
    if args.teacher:
        temperature, fitted_on = artifact_temperature(args.teacher, head, recipe)
    else:
        _, temperature, fitted_on = cross_source_figures(corpus, names, recipe)
    teacher = calibrated(head, temperature)
    figures = {str(m): teacher_figures(m, teacher, names, recipe, args.cache) for m in args.report_on}
    args.out.mkdir(parents=True, exist_ok=True)
    save_teacher_head(
        args.out / "head.npz",
        teacher,
        recipe.head,
        names,
        manifests=[str(m) for m in args.manifest],
        clips=len(clips),
        fingerprint=corpus_fingerprint(clips),
        temperature=temperature,
        temperature_fitted_on=fitted_on,
        min_confidence=recipe.min_confidence,
        teacher_figures=figures,
        audio=f"{args.kbps} kb/s Opus copies (16 kHz mono)",
    )
    copies = opus_copies(clips, args.copies, args.kbps)
    entries = [
        {"file": os.path.relpath(path, args.out), "split": "train", "clip_id": clip.clip_id}
        for clip, path in zip(clips, copies, strict=True)
    ]
    (args.out / "clips.json").write_text(json.dumps({"clips": entries}, indent=0))
    print(f"{len(clips)} clips, temperature {temperature:.3f} ({fitted_on}); {args.out}/head.npz, clips.json")


if __name__ == "__main__":
    main()
