"""Clip-level figures of artifacts on a collection, as ``genretag classify`` labels its files.

Every clip of the manifests is classified (:func:`genretag.models.clip_scoring.classify_file`:
the mean of its windows' scores) by every model, and scored on candidate sets as the
cross-source figures are (:func:`genretag.training.source_cv.set_metrics`: hit@1, top 2,
macro ROC-AUC, mean per-genre recall, precision on the 70 % most confident clips). Point
it at a collection the models did not train on.

    python -m benchmarks.clip_level --manifest ../shared/data/mer4q/manifest.csv \\
        --model fast:models/fast --model student:DIR [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine, markdown_table

FIGURES = ("hit_at_1", "top_2", "macro_roc_auc", "mean_per_genre_recall", "precision_at_70")


def score_model(artifact: Path, manifests: list[Path]) -> dict[str, Any]:
    """:func:`set_metrics` of one artifact on the manifests' clips, and the seconds it took."""
    from genretag.models.clip_scoring import classify_file
    from genretag.models.predictor import load_predictor
    from genretag.training.corpus import candidates_of, read_corpus
    from genretag.training.source_cv import set_metrics

    started = time.monotonic()
    predictor = load_predictor(artifact)
    labels = list(predictor.manifest.labels)
    clips = read_corpus(manifests)
    scores = np.stack([classify_file(predictor, clip.path).clip_scores for clip in clips])
    return {
        **set_metrics(scores, candidates_of(clips, labels), labels),
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.clip_level", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--manifest", type=Path, action="append", required=True, help="clips to score (repeatable)"
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME:DIR",
        help="an artifact to score (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    results = {}
    for spec in args.model:
        name, _, artifact = spec.partition(":")
        results[name] = score_model(Path(artifact or name), args.manifest)
        print(
            f"[clip_level] {name}: hit@1 {results[name]['hit_at_1']:.3f} in {results[name]['seconds']} s",
            file=sys.stderr,
            flush=True,
        )
    print(markdown_table(["figure", *results], [[f, *(r[f] for r in results.values())] for f in FIGURES]))
    if args.json:
        doc = {"machine": machine(), "manifests": [str(m) for m in args.manifest], "models": results}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
