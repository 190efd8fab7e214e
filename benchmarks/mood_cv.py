"""Mood quadrants (issue 16 point 2): artist-grouped CV of the mood head, chance and a features-only baseline.

Every clip of ``mer4q/manifest.csv`` with a ``mood_quadrant`` (774 clips, 566 artists) is scored out of
fold over 5 artist-disjoint folds stratified by quadrant (:func:`genretag.training.mood.mood_cv`), with
the clip rule of ``classify``:

- the mood head: a class-balanced softmax regression per window on the frozen musicnn features the
  genre head uses (MSD and MTT backbones; penultimate, taggram or both), at each ``--c-grid`` value on
  the outer folds (a small grid, reported whole: the best of it is optimistic by the choice), and (both
  layers; ``--no-nested`` skips it) with ``C`` chosen from that grid inside each outer fold by an inner
  3-fold artist-grouped CV;
- the same features pooled per clip (mean, mean and std) with the same fit, ``C`` by nested CV;
- the baseline: classic clip-level librosa features (:mod:`genretag.training.mood_baseline`), same
  folds, same fit, ``C`` by nested CV;
- chance: uniform (0.25) and the majority quadrant's share.

Backbone embeddings come from the genre recipe's per-clip cache (``--cache-dir``; a miss embeds the clip,
about a second of CPU each); the librosa features are cached in ``--baseline-cache``.

    python -m benchmarks.mood_cv [--manifest CSV] [--cache-dir DIR] [--no-nested] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, markdown_table, write_json
from genretag.training.backbone_train import BACKBONE_RATE, HeadConfig
from genretag.training.corpus import CorpusClip
from genretag.training.mood import (
    CLIP_C_GRID,
    MOODS,
    QUADRANTS,
    MoodCorpus,
    embed_mood_corpus,
    fit_mood_head,
    mood_cv,
    read_mood_manifest,
)
from genretag.training.mood_baseline import clip_features, feature_names

MANIFEST = REPO.parent / "shared" / "data" / "mer4q" / "manifest.csv"
CACHE = REPO.parent / "cache" / "emb"
LAYER_SETS = {"both": ("penultimate", "taggram"), "penultimate": ("penultimate",), "taggram": ("taggram",)}
WINDOW_GRID = (0.001, 0.003, 0.01)
ROWS = ("baseline", "window-both", "pooled-both", "window-single", "pooled-single")


def load(manifest: Path, cache_dir: Path, baseline_cache: Path) -> tuple[MoodCorpus, np.ndarray, float]:
    """The corpus with every layer, the librosa feature table (cached) and its CPU seconds per clip."""
    clips, quadrants = read_mood_manifest(manifest)
    described = repr([(c.clip_id, c.path.stat().st_size) for c in clips] + feature_names())
    key = hashlib.sha256(described.encode()).hexdigest()[:16]
    cached = baseline_cache.with_name(f"{baseline_cache.stem}_{key}.npz")
    rows: list[np.ndarray] = []
    seconds = [0.0]

    def features(_: CorpusClip, pcm: np.ndarray) -> None:
        start = time.process_time()
        rows.append(clip_features(pcm, BACKBONE_RATE))
        seconds[0] += time.process_time() - start

    have = cached.is_file()
    corpus = embed_mood_corpus(clips, quadrants, HeadConfig(), cache_dir, None if have else features)
    if have:
        with np.load(cached) as stored:
            table, per_clip = stored["features"], float(stored["cpu_seconds_per_clip"])
    else:
        table, per_clip = np.stack(rows), seconds[0] / len(rows)
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, features=table, cpu_seconds_per_clip=per_clip)
    return corpus, table, per_clip


def summary(name: str, r: dict[str, Any], how: str) -> dict[str, Any]:
    return {"variant": name, "C_setting": how, **{k: v for k, v in r.items() if k != "clip_probabilities"}}


def row(s: dict[str, Any]) -> list[Any]:
    return [
        s["variant"],
        s["C_setting"],
        s["accuracy"],
        s["macro_f1"],
        s["log_loss"],
        *s["per_quadrant_recall"].values(),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mood_cv", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument(
        "--cache-dir", type=Path, default=CACHE, help="backbone embedding cache (train-tagger's)"
    )
    parser.add_argument("--baseline-cache", type=Path, default=REPO.parent / "cache" / "mood" / "librosa.npz")
    parser.add_argument(
        "--c-grid",
        type=float,
        nargs="+",
        default=list(WINDOW_GRID),
        help="C values of the per-window head on both layers, each scored on the outer folds",
    )
    parser.add_argument(
        "--c-single",
        type=float,
        nargs="+",
        default=[0.003],
        help="C values of the per-window heads on one layer (penultimate, taggram)",
    )
    parser.add_argument(
        "--clip-c-grid",
        type=float,
        nargs="+",
        default=list(CLIP_C_GRID),
        help="C values the nested CV of the clip-level heads (baseline, pooled) chooses from",
    )
    parser.add_argument(
        "--no-nested",
        dest="nested",
        action="store_false",
        help="skip the nested CV of the per-window head on both layers (the slowest row)",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=ROWS,
        default=list(ROWS),
        help="rows to run (default all): the baseline, per-window heads on both layers or on one, "
        "clip-pooled heads on both layers or on one",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    corpus, baseline, baseline_cpu = load(args.manifest, args.cache_dir, args.baseline_cache)
    config = HeadConfig()
    q, g, ci, lv = corpus.quadrants, corpus.groups, corpus.clip_index, corpus.levels_db
    n_clips = len(q)
    kw = {"n_folds": args.folds, "seed": args.seed}
    results: list[dict[str, Any]] = []

    def record(name: str, r: dict[str, Any], how: str, started: float) -> None:
        results.append({**summary(name, r, how), "seconds": round(time.monotonic() - started, 1)})
        print(markdown_table([], [row(results[-1])]).splitlines()[-1], flush=True)

    if "baseline" in args.rows:
        t = time.monotonic()
        record(
            "baseline: librosa clip features",
            mood_cv(baseline, q, np.arange(n_clips), g, c_grid=args.clip_c_grid, **kw),
            "nested",
            t,
        )
    for name, layers in LAYER_SETS.items():
        kind = "both" if name == "both" else "single"
        x = corpus.select(config.variants, layers)
        if f"window-{kind}" in args.rows:
            for c in args.c_grid if name == "both" else args.c_single:
                t = time.monotonic()
                record(f"window, {name}", mood_cv(x, q, ci, g, C=c, levels_db=lv, **kw), f"{c:g}", t)
            if args.nested and name == "both":
                t = time.monotonic()
                record(
                    f"window, {name}",
                    mood_cv(x, q, ci, g, c_grid=args.c_grid, levels_db=lv, inner_folds=3, **kw),
                    "nested",
                    t,
                )
        if f"pooled-{kind}" in args.rows:
            for pooling in ("mean", "mean_std"):
                t = time.monotonic()
                record(
                    f"clip {pooling.replace('_', '+')}, {name}",
                    mood_cv(x, q, ci, g, c_grid=args.clip_c_grid, levels_db=lv, pooling=pooling, **kw),
                    "nested",
                    t,
                )
    majority = float(np.bincount(q).max() / n_clips)

    header = [
        "variant",
        "C",
        "accuracy",
        "macro F1",
        "log-loss",
        *(f"recall {qq} {m}" for qq, m in zip(QUADRANTS, MOODS, strict=True)),
    ]
    print()
    print(
        markdown_table(
            header,
            [row(s) for s in results]
            + [
                ["chance: uniform", "", 0.25, 0.25, float(np.log(4)), 0.25, 0.25, 0.25, 0.25],
                [
                    "chance: majority quadrant",
                    "",
                    majority,
                    float("nan"),
                    float("nan"),
                    *(1.0 if k == int(np.bincount(q).argmax()) else 0.0 for k in range(4)),
                ],
            ],
        )
    )

    # serving cost of the shipped configuration: one Dense on the genre head's embedding
    x = corpus.select(config.variants, config.layers)
    head = fit_mood_head(x, q, ci, args.c_grid[len(args.c_grid) // 2])
    kernel, bias = head.folded()
    batch = x[:4096].astype(np.float32)
    start = time.perf_counter()
    for _ in range(20):
        z = batch @ kernel + bias
        np.exp(z - z.max(axis=1, keepdims=True))
    head_us = (time.perf_counter() - start) / (20 * len(batch)) * 1e6
    print(
        f"\nmood head: Dense {kernel.shape[0]} -> {kernel.shape[1]} "
        f"({kernel.size + bias.size} parameters), "
        f"{head_us:.2f} us per window in numpy; "
        f"librosa baseline features {baseline_cpu * 1000:.0f} ms CPU per clip"
    )
    write_json(
        args.json,
        {
            "manifest": str(args.manifest),
            "clips": n_clips,
            "artists": int(len(np.unique(g))),
            "quadrant_counts": dict(zip(QUADRANTS, np.bincount(q, minlength=4).tolist(), strict=True)),
            "folds": args.folds,
            "seed": args.seed,
            "c_grid_window": args.c_grid,
            "c_single_layer": args.c_single,
            "c_grid_nested_clip_level": args.clip_c_grid,
            "chance": {"uniform": 0.25, "majority": majority},
            "backbones": list(config.variants),
            "hop_seconds": config.hop_seconds,
            "normalize_db": config.normalize_db,
            "results": results,
            "cost": {
                "head_parameters": int(kernel.size + bias.size),
                "head_us_per_window_numpy": head_us,
                "baseline_cpu_ms_per_clip": baseline_cpu * 1000,
            },
        },
    )


if __name__ == "__main__":
    main()
