"""Speech or music per window (issue 16 point 1): the backbone head against a hand-made-feature baseline.

Builds the set of :mod:`genretag.training.speech_data` (talk, music, talk over
music beds at 0/-6/-12/-18 dB, noise and band-limit augments; all in memory),
embeds every 3 s window (1.5 s hop) with the genre model's frozen backbones
(cached per clip: the music collections' clips reuse the genre head's cache),
computes the hand-made features, and scores out-of-fold window accuracy with
group-disjoint folds (talk recordings, digit speakers and artists each in one
fold) for:

* ``backbone``: logistic regression on the genre head's layers (a ``Dense(2)``
  more at serving time);
* ``baseline-lr`` / ``baseline-gbt``: logistic regression / gradient-boosted
  trees on the hand-made features (:mod:`genretag.pipeline.speech_features`).

Also: the three radio-style examples scored by models trained on everything,
and each method's CPU cost per window (one thread).

    python -m benchmarks.speech_music [--quick] [--json out.json] [--save-head head.npz]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, machine, markdown_table, write_json
from genretag.pipeline.speech_features import FEATURE_NAMES, window_features
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.backbone_train import HeadConfig
from genretag.training.speech_data import (
    CLASSES,
    MUSIC,
    SPEECH,
    SetOptions,
    SpeechItem,
    build_set,
    read_radio_examples,
)
from genretag.training.speech_music import (
    CONDITIONS,
    METHODS,
    WINDOW_SECONDS,
    SpeechWindows,
    embed_items,
    figures,
    fit_backbone_head,
    fit_method,
    out_of_fold,
)

SHARED = REPO.parent / "shared" / "data"
SCRATCH = REPO.parent / "scratch" / "speech"
GENRE_CACHE = REPO.parent / "cache" / "emb"


def log(message: str) -> None:
    print(f"[speech_music] {message}", file=sys.stderr, flush=True)


def set_summary(items: list[SpeechItem]) -> dict[str, Any]:
    """Clips and groups per condition and fold: what the figures stand on."""
    out: dict[str, Any] = {"clips": len(items), "by_condition": {}, "folds": {}}
    for it in items:
        row = out["by_condition"].setdefault(it.condition, {"clips": 0, "augmented": 0, "groups": set()})
        row["clips"] += 1
        row["augmented"] += it.augment != "none"
        row["groups"].add(it.group)
        fold = out["folds"].setdefault(str(it.fold), {"groups": set(), "clips": 0})
        fold["groups"].add(it.group)
        fold["clips"] += 1
    for row in (*out["by_condition"].values(), *out["folds"].values()):
        row["groups"] = len(row["groups"])
    return out


def costs(windows: SpeechWindows, repeats: int = 5) -> dict[str, float]:
    """CPU ms per window, one thread: the backbone head's Dense(2) on features the genre model
    computes anyway, the hand-made features, and each baseline classifier on them."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    pick = rng.choice(len(windows.labels), size=min(2000, len(windows.labels)), replace=False)
    sample = windows.subset(np.isin(np.arange(len(windows.labels)), pick))
    out: dict[str, float] = {}
    with threadpool_limits(1):
        head = fit_backbone_head(sample.backbone, sample.labels, sample.item, 0.01)
        kernel, bias = head.folded()
        batch = sample.backbone[:64].astype(np.float32)
        started = time.process_time()
        for _ in range(repeats * 100):
            logits = batch @ kernel + bias
            np.exp(logits - logits.max(axis=1, keepdims=True))
        out["backbone head (Dense 2)"] = 1000 * (time.process_time() - started) / (repeats * 100 * len(batch))
        pcm = (rng.standard_normal((64, round(WINDOW_SECONDS * 16000))) * 0.1).astype(np.float32)
        started = time.process_time()
        for _ in range(repeats):
            window_features(pcm)
        out["hand-made features"] = 1000 * (time.process_time() - started) / (repeats * len(pcm))
        for method in ("baseline-lr", "baseline-gbt"):
            predict = fit_method(method, sample)
            started = time.process_time()
            for _ in range(repeats):
                predict(sample.subset(np.arange(len(sample.labels)) < 64))
            out[f"{method} classifier"] = 1000 * (time.process_time() - started) / (repeats * 64)
    return out


def radio_examples(
    speech_manifest: Path,
    windows: SpeechWindows,
    methods: list[str],
    C: float,
    config: HeadConfig,
    cache_dir: Path | None,
    silence_db: float,
) -> dict[str, Any]:
    """The radio-style examples' windows, scored by models trained on the whole set."""
    examples = read_radio_examples(speech_manifest)
    if not examples:
        return {}
    spec = WindowSpec(16000, WINDOW_SECONDS, config.hop_seconds)
    as_items = [
        SpeechItem(e.clip_id, e.clip_id, -1, MUSIC, "radio", "none", "synth_radio", e.pcm) for e in examples
    ]
    ex = embed_items(as_items, config, cache_dir)
    truth = np.concatenate([e.window_labels(frame_windows(e.pcm, spec)[1], WINDOW_SECONDS) for e in examples])
    audible = windows.levels_db > silence_db
    out: dict[str, Any] = {"windows": len(truth), "speech_windows": int((truth == SPEECH).sum())}
    for m in methods:
        predict = fit_method(m, windows.subset(audible), C)
        out[m] = float(np.mean((predict(ex) >= 0.5) == (truth == SPEECH)))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.speech_music", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--speech-manifest", type=Path, default=SHARED / "speech" / "manifest.csv")
    parser.add_argument(
        "--music-manifest",
        type=Path,
        action="append",
        help="a music collection for pure music and beds (repeat; default music/ and mer4q/)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=SCRATCH / "emb",
        help="embedding and feature cache of the generated audio",
    )
    parser.add_argument(
        "--music-cache-dir",
        type=Path,
        default=GENRE_CACHE if GENRE_CACHE.is_dir() else None,
        help="the genre head's embedding cache, for the music collections' clips",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--C", type=float, default=0.01, help="the backbone head's regularisation")
    parser.add_argument(
        "--sweep-C",
        type=str,
        default="",
        help="comma-separated C values for which the backbone head is also scored",
    )
    parser.add_argument(
        "--silence-db",
        type=float,
        default=-50.0,
        help="windows below this level are left out (the daemon's silence threshold)",
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--quick", action="store_true", help="only 120 clips of the music collections")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--save-head",
        type=Path,
        help="write the backbone head trained on everything (kernel, bias, layers) as .npz",
    )
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    config = HeadConfig()
    music = args.music_manifest or [SHARED / "music" / "manifest.csv", SHARED / "mer4q" / "manifest.csv"]

    started = time.time()
    options = SetOptions(folds=args.folds, seed=args.seed, max_music_clips=120 if args.quick else None)
    items = build_set(args.speech_manifest, music, options)
    log(f"{len(items)} clips built in {time.time() - started:.0f} s")
    windows = embed_items(items, config, args.cache_dir, args.music_cache_dir)
    log(f"{len(windows.labels)} windows embedded at {time.time() - started:.0f} s")
    scores = out_of_fold(items, windows, methods, args.C, args.silence_db, log)
    result = figures(items, windows, scores)
    sweep = {}
    for c in [float(v) for v in args.sweep_C.split(",") if v]:
        s = out_of_fold(items, windows, ["backbone"], c, args.silence_db, log)
        f = figures(items, windows, s)
        sweep[str(c)] = {
            "summary": f["summary"]["backbone"],
            "conditions": {k: v["backbone"] for k, v in f["conditions"].items()},
        }
    radio = radio_examples(
        args.speech_manifest, windows, methods, args.C, config, args.cache_dir, args.silence_db
    )
    cost = costs(windows)
    if args.save_head:
        audible = windows.levels_db > args.silence_db
        head = fit_backbone_head(
            windows.backbone[audible], windows.labels[audible], windows.item[audible], args.C
        )
        kernel, bias = head.folded()
        args.save_head.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            args.save_head,
            kernel=kernel,
            bias=bias,
            labels=np.array(CLASSES),
            layers=np.array([f"{v}/{la}" for v in config.variants for la in config.layers]),
        )
        log(f"head written to {args.save_head}")

    header = ["condition", "clips", "windows", *methods]
    rows = [
        [name, r["clips"], r["windows"], *(r[m] for m in methods)] for name, r in result["conditions"].items()
    ]
    print(markdown_table(header, rows))
    print()
    print(
        markdown_table(
            ["method", "pure speech", "pure music", "pure balanced", "pure pooled", "all windows"],
            [
                [
                    m,
                    s["pure_speech_accuracy"],
                    s["pure_music_accuracy"],
                    s["pure_balanced_accuracy"],
                    s["pure_accuracy"],
                    s["all_accuracy"],
                ]
                for m, s in result["summary"].items()
            ],
        )
    )
    print()
    for m, s in result["summary"].items():
        (mm, ms), (sm, ss) = s["confusion"]
        print(
            f"{m}: confusion (rows true music/speech, columns predicted music/speech): "
            f"[[{mm}, {ms}], [{sm}, {ss}]]"
        )
    print()
    print(
        markdown_table(
            ["music collections' clips, by label", "windows", *methods],
            [[g, r["windows"], *(r[m] for m in methods)] for g, r in result["music_by_genre"].items()],
        )
    )
    if sweep:
        print()
        print(
            markdown_table(
                ["backbone C", "pure balanced", *(n for n, _ in CONDITIONS)],
                [
                    [c, v["summary"]["pure_balanced_accuracy"], *v["conditions"].values()]
                    for c, v in sweep.items()
                ],
            )
        )
    if radio:
        print(
            f"\nradio-style examples ({radio['windows']} windows, {radio['speech_windows']} talk): "
            + ", ".join(f"{m} {radio[m]:.3f}" for m in methods)
        )
    print("\ncost, CPU ms per window (one thread): " + ", ".join(f"{k} {v:.3g}" for k, v in cost.items()))
    write_json(
        args.json,
        {
            "machine": machine(),
            "seconds": time.time() - started,
            "folds": args.folds,
            "seed": args.seed,
            "C": args.C,
            "silence_db": args.silence_db,
            "features": list(FEATURE_NAMES),
            "head": {
                "variants": list(config.variants),
                "layers": list(config.layers),
                "hop_seconds": config.hop_seconds,
                "normalize_db": config.normalize_db,
            },
            "set": set_summary(items),
            **result,
            "C_sweep": sweep,
            "radio_examples": radio,
            "cost_ms_per_window": cost,
        },
    )


if __name__ == "__main__":
    main()
