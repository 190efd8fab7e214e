"""Clip-level accuracy of a bundled model served through OpenVINO against the same model through Keras.

Every clip of the given collections is cut into ``--windows`` windows spread over
its length (the rule ``classify`` uses), scored by both runtimes, and averaged
per clip.  Reported per runtime: hit@1 (the top genre is one of the clip's
candidates), macro ROC-AUC and mean per-genre recall, plus how often the two
agree on the top genre and the largest score difference.  The test
``tests/models/test_serving_accuracy.py`` checks the same on a sample of clips.

    python -m benchmarks.serving_accuracy --manifest ../shared/data/music/manifest.csv \\
        --manifest ../shared/data/mer4q/manifest.csv --model default --model fast --json out.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.common import machine, markdown_table, write_json

METRICS = ("hit_at_1", "macro_roc_auc", "mean_per_genre_recall")


def clip_scores(predictor: Any, clips: list[np.ndarray]) -> np.ndarray:
    """Each clip's score by the clip rule (its windows are already the spread ones)."""
    from genretag.models.clip_scoring import clip_score, window_levels

    return np.stack(
        [
            clip_score(predictor.predict(windows), window_levels(windows))
            for windows in tqdm(clips, leave=False)
        ]
    )


def compare(model: str, manifests: list[Path], windows: int) -> dict[str, Any]:
    from genretag.models.bundled import resolve_model
    from genretag.models.predictor import load_predictor, runtime_name, window_spec
    from genretag.pipeline.audio import decode
    from genretag.pipeline.windows import spread_windows
    from genretag.training.corpus import candidates_of, read_corpus
    from genretag.training.metrics import summarize

    served = load_predictor(resolve_model(model))
    reference = load_predictor(resolve_model(model), runtime="keras")
    corpus = read_corpus(manifests)
    spec = window_spec(served.manifest)
    clips = [
        spread_windows(decode(clip.path, spec.sample_rate), spec, windows)[0]
        for clip in tqdm(corpus, desc="decoding", leave=False)
    ]
    truth = candidates_of(corpus, served.manifest.labels)
    scores = {runtime_name(p): clip_scores(p, clips) for p in (reference, served)}
    (ref_name, ref), (name, got) = scores.items()
    return {
        "model": model,
        "clips": len(corpus),
        "windows_per_clip": windows,
        "metrics": {key: summarize(value, truth, served.manifest.labels) for key, value in scores.items()},
        "top_label_agreement": float(np.mean(got.argmax(1) == ref.argmax(1))),
        "max_abs_difference": float(np.abs(got - ref).max()),
        "runtimes": [ref_name, name],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, action="append", required=True)
    ap.add_argument("--model", action="append", required=True, help="bundled model name or artifact dir")
    ap.add_argument("--windows", type=int, default=6, help="windows per clip, spread over its length")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = [compare(model, args.manifest, args.windows) for model in args.model]
    rows = []
    for result in results:
        for runtime, metrics in result["metrics"].items():
            rows.append(
                [
                    result["model"],
                    runtime,
                    *(metrics[key] for key in METRICS),
                    result["top_label_agreement"],
                    result["max_abs_difference"],
                ]
            )
    print(markdown_table(["model", "runtime", *METRICS, "same top label", "max score diff"], rows))
    write_json(args.json, {"benchmark": "serving_accuracy", "machine": machine(), "results": results})


if __name__ == "__main__":
    main()
