"""Tempo and key against the GTZAN references: the plain librosa recipes beside the streaming trackers.

Every clip of ``gtzan_tempo_key.csv`` is scored with the standard measures:
tempo Accuracy1 (within 4 %) and Accuracy2 (also at 2x, 1/2, 3x, 1/3), each
against ``bpm`` (Marchand & Peeters) and ``percival2014_bpm``; key MIREX
weighted score (exact 1, fifth above 0.5, relative 0.3, parallel 0.2, as
mir_eval's default) against ``key`` and ``key_alt``, clips without a key in a
column left out and counted.  The streaming trackers are run as the daemon
will run them, fed the clip in ``--block-seconds`` blocks and read at the
end, and also read every few seconds on the way (how the estimate evolves).
Each method's confidence is checked for being informative: the figures on
the more confident half of the clips.  CPU cost is process time per second
of audio, decoding and librosa's one-off numba compilation excluded.

    python -m benchmarks.tempo_key [--references CSV] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, markdown_table, write_json
from genretag.pipeline.audio import decode, resample
from genretag.pipeline.key import PITCH_CLASSES, KeyTracker, estimate_key, key_correlations, key_templates
from genretag.pipeline.tempo import TempoTracker

REFERENCES = REPO.parent / "shared" / "data" / "music" / "gtzan_tempo_key.csv"
SR = 22050
TEMPO_FACTORS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
#: the instants (seconds into the clip) at which the streaming estimate is also read
CHECKPOINTS = (4.0, 7.0, 10.0, 15.0, 20.0, 25.0, 30.0)
NOTES = {name: i for i, name in enumerate(("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"))}


def tempo_accuracy(estimate: float | None, reference: float, tolerance: float = 0.04) -> tuple[bool, bool]:
    """(Accuracy1, Accuracy2) hits of one estimate: within ``tolerance``, then also at 2x, 1/2, 3x, 1/3."""
    if estimate is None:
        return False, False
    hits = [abs(estimate - reference * f) <= tolerance * reference * f for f in TEMPO_FACTORS]
    return hits[0], any(hits)


def parse_key(name: str) -> tuple[int, str] | None:
    """``"A# minor"`` -> (10, "minor"); None for an empty or mode-less annotation."""
    parts = name.split()
    if len(parts) != 2 or parts[0] not in NOTES or parts[1] not in ("major", "minor"):
        return None
    return NOTES[parts[0]], parts[1]


def mirex_key_score(estimate: tuple[int, str] | None, reference: tuple[int, str]) -> float:
    """MIREX weighted key score: 1 same, 0.5 a fifth above, 0.3 relative, 0.2 parallel, else 0."""
    if estimate is None:
        return 0.0
    (tonic, mode), (ref_tonic, ref_mode) = estimate, reference
    step = (tonic - ref_tonic) % 12
    if mode == ref_mode:
        return 1.0 if step == 0 else 0.5 if step == 7 else 0.0
    if (ref_mode == "major" and step == 9) or (ref_mode == "minor" and step == 3):
        return 0.3
    return 0.2 if step == 0 else 0.0


@dataclass
class Clip:
    path: Path
    bpm: float
    percival_bpm: float | None
    key: tuple[int, str] | None
    key_alt: tuple[int, str] | None


def read_references(csv_path: Path) -> list[Clip]:
    with csv_path.open(newline="") as handle:
        return [
            Clip(
                csv_path.parent / row["path"],
                float(row["bpm"]),
                float(row["percival2014_bpm"]) if row["percival2014_bpm"] else None,
                parse_key(row["key"]),
                parse_key(row["key_alt"]),
            )
            for row in csv.DictReader(handle)
        ]


def librosa_recipes(y: np.ndarray) -> dict[str, tuple[Any, float, float]]:
    """The plain librosa recipes, each as (estimate, confidence, CPU seconds).

    Tempo: ``beat.beat_track`` (its tempo) and ``feature.tempo``, with the mean
    tempogram at the chosen tempo as confidence.  Key: the mean STFT chroma
    correlated with the Krumhansl-Kessler profiles of the 24 keys, with the
    margin of the best correlation over the second as confidence.
    """
    import librosa

    def tempogram_at(bpm: float) -> float:
        mean = tempogram.mean(axis=1)[1:][::-1]
        return float(np.interp(bpm, librosa.tempo_frequencies(tempogram.shape[0], sr=SR)[1:][::-1], mean))

    started = time.process_time()
    beat_bpm = float(np.atleast_1d(librosa.beat.beat_track(y=y, sr=SR)[0])[0])
    beat_seconds = time.process_time() - started
    started = time.process_time()
    onset = librosa.onset.onset_strength(y=y, sr=SR)
    tempo_bpm = float(librosa.feature.tempo(onset_envelope=onset, sr=SR)[0])
    tempo_seconds = time.process_time() - started
    tempogram = librosa.feature.tempogram(onset_envelope=onset, sr=SR)
    started = time.process_time()
    chroma = librosa.feature.chroma_stft(y=y, sr=SR).mean(axis=1)
    correlations = key_correlations(chroma, key_templates("krumhansl"))
    key_seconds = time.process_time() - started
    best = int(np.argmax(correlations))
    ordered = np.sort(correlations)
    return {
        "librosa beat_track tempo": (beat_bpm, tempogram_at(beat_bpm), beat_seconds),
        "librosa feature.tempo": (tempo_bpm, tempogram_at(tempo_bpm), tempo_seconds),
        "librosa chroma_stft key, Krumhansl": (
            (best % 12, "major" if best < 12 else "minor"),
            float(ordered[-1] - ordered[-2]),
            key_seconds,
        ),
    }


def streaming(y: np.ndarray, block_seconds: float, sr: int = SR, profile: str = "edma") -> dict[str, Any]:
    """The trackers fed ``y`` (at ``sr``) in blocks as the daemon would, read on the way and at the end."""

    tempo, key = TempoTracker(sr), KeyTracker(sr, profile=profile)
    block = max(1, int(block_seconds * sr))
    tempo_seconds = key_seconds = 0.0
    evolution: list[tuple[float, float | None, tuple[int, str] | None]] = []
    checkpoints = [int(c * sr) for c in CHECKPOINTS]
    for start in range(0, y.size, block):
        piece = y[start : start + block]
        started = time.process_time()
        tempo.push(piece)
        tempo_seconds += time.process_time() - started
        started = time.process_time()
        key.push(piece)
        key_seconds += time.process_time() - started
        end = start + piece.size
        for instant in checkpoints:
            if start < instant <= end:
                k = key.estimate
                evolution.append(
                    (
                        instant / sr,
                        tempo.estimate.bpm,
                        None if k.tonic is None else (PITCH_CLASSES.index(k.tonic), str(k.mode)),
                    )
                )
    started = time.process_time()
    t = tempo.finish()
    tempo_seconds += time.process_time() - started
    started = time.process_time()
    k = key.finish()
    key_seconds += time.process_time() - started
    key_estimate = None if k.tonic is None else (PITCH_CLASSES.index(k.tonic), str(k.mode))
    return {
        "tempo": (t.bpm, t.confidence, tempo_seconds),
        "key": (key_estimate, k.confidence, key_seconds),
        "evolution": evolution,
    }


def key_of(name: str) -> tuple[int, str] | None:
    """:class:`KeyEstimate.name` -> (pitch class, mode)."""
    return parse_key(name) if name else None


def signature_hit(estimate: tuple[int, str] | None, relative_major: int) -> bool:
    """Whether an estimate has the key signature of a mode-less annotation ('relative-major D')."""
    if estimate is None:
        return False
    tonic, mode = estimate
    return (tonic if mode == "major" else (tonic + 3) % 12) == relative_major


def tempo_figures(
    estimates: list[float | None], confidences: list[float], clips: list[Clip]
) -> dict[str, Any]:
    """Accuracy1/2 against both references, on all clips and on the more confident half."""
    out: dict[str, Any] = {}
    order = np.argsort(-np.asarray(confidences), kind="stable")
    confident = set(order[: len(order) // 2].tolist())
    for column in ("bpm", "percival_bpm"):
        hits = [
            (i, tempo_accuracy(estimates[i], getattr(c, column)))
            for i, c in enumerate(clips)
            if getattr(c, column) is not None
        ]
        for j, measure in enumerate(("acc1", "acc2")):
            out[f"{measure}_{column}"] = float(np.mean([h[j] for _, h in hits]))
            out[f"{measure}_{column}_confident_half"] = float(
                np.mean([h[j] for i, h in hits if i in confident])
            )
        out[f"clips_{column}"] = len(hits)
    return out


def key_figures(
    estimates: list[tuple[int, str] | None],
    confidences: list[float],
    clips: list[Clip],
    signatures: dict[int, int],
) -> dict[str, Any]:
    """MIREX weighted score against both references (empty ones left out), all and the more confident half."""
    out: dict[str, Any] = {}
    for column in ("key", "key_alt"):
        scored = [i for i, c in enumerate(clips) if getattr(c, column) is not None]
        scores = {i: mirex_key_score(estimates[i], getattr(clips[i], column)) for i in scored}
        order = sorted(scored, key=lambda i: -confidences[i])
        out[f"mirex_{column}"] = float(np.mean(list(scores.values())))
        out[f"mirex_{column}_confident_half"] = float(np.mean([scores[i] for i in order[: len(order) // 2]]))
        out[f"correct_{column}"] = float(np.mean([scores[i] == 1.0 for i in scored]))
        out[f"clips_{column}"] = len(scored)
        out[f"skipped_{column}"] = len(clips) - len(scored)
    out["signature_hits_modeless"] = (
        f"{sum(signature_hit(estimates[i], m) for i, m in signatures.items())}/{len(signatures)}"
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tempo_key", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--references", type=Path, default=REFERENCES, help="gtzan_tempo_key.csv")
    parser.add_argument("--block-seconds", type=float, default=0.5, help="block size fed to the trackers")
    parser.add_argument("--limit", type=int, help="only the first N clips (a smoke run)")
    parser.add_argument(
        "--sr",
        type=int,
        default=SR,
        help="the trackers' sample rate (the models use 16000); librosa stays at 22050",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    clips = read_references(args.references)[: args.limit]
    with args.references.open(newline="") as handle:
        alt_raw = [row["key_alt"] for row in csv.DictReader(handle)][: len(clips)]
    signatures = {
        i: NOTES[raw.split()[1]] for i, raw in enumerate(alt_raw) if raw.startswith("relative-major ")
    }
    librosa_recipes(np.random.default_rng(0).standard_normal(5 * SR).astype(np.float32))  # numba compiles
    rows: dict[str, dict[str, list[Any]]] = {}
    evolution: list[list[tuple[float, float | None, tuple[int, str] | None]]] = []
    audio_seconds = 0.0
    for n, clip in enumerate(clips, 1):
        y = decode(clip.path, SR)
        audio_seconds += y.size / SR
        results = librosa_recipes(y)
        y_sr = y if args.sr == SR else resample(y, SR, args.sr)
        ours = streaming(y_sr, args.block_seconds, args.sr)
        results["streaming tempo (ours)"] = ours["tempo"]
        results["streaming key (ours)"] = ours["key"]
        for profile in ("krumhansl", "temperley", "shaath"):  # the same chroma, other profiles: an ablation
            started = time.process_time()
            k = estimate_key(y_sr, args.sr, profile=profile)
            results[f"streaming key, {profile} profile"] = (
                key_of(k.name or ""),
                k.confidence,
                time.process_time() - started,
            )
        evolution.append(ours["evolution"])
        for name, (estimate, confidence, seconds) in results.items():
            row = rows.setdefault(name, {"estimates": [], "confidences": [], "seconds": []})
            row["estimates"].append(estimate)
            row["confidences"].append(confidence)
            row["seconds"].append(seconds)
        if n % 10 == 0:
            print(f"[tempo_key] {n}/{len(clips)} clips", file=sys.stderr, flush=True)

    figures: dict[str, Any] = {}
    for name, row in rows.items():
        is_key = "key" in name
        measured = (
            key_figures(row["estimates"], row["confidences"], clips, signatures)
            if is_key
            else tempo_figures(row["estimates"], row["confidences"], clips)
        )
        figures[name] = {
            **measured,
            "cpu_ms_per_audio_second": 1000 * sum(row["seconds"]) / audio_seconds,
            "no_estimate": sum(e is None for e in row["estimates"]),
        }
    over_time = []
    for t in CHECKPOINTS:
        at = [
            (i, bpm, key)
            for i, clip_evolution in enumerate(evolution)
            for (s, bpm, key) in clip_evolution
            if s == t
        ]
        if not at:
            continue
        tempo_hits = [tempo_accuracy(bpm, clips[i].bpm) for i, bpm, _ in at]
        key_scores = [mirex_key_score(key, clips[i].key) for i, _, key in at if clips[i].key is not None]
        over_time.append(
            {
                "seconds": t,
                "clips": len(at),
                "acc1_bpm": float(np.mean([h[0] for h in tempo_hits])),
                "acc2_bpm": float(np.mean([h[1] for h in tempo_hits])),
                "mirex_key": float(np.mean(key_scores)) if key_scores else float("nan"),
            }
        )

    tempo_names = [name for name in rows if "key" not in name]
    key_names = [name for name in rows if "key" in name]
    measures = [
        ("acc1_bpm", "Acc1 vs bpm"),
        ("acc1_percival_bpm", "Acc1 vs percival"),
        ("acc2_bpm", "Acc2 vs bpm"),
        ("acc2_percival_bpm", "Acc2 vs percival"),
    ]
    print(
        f"Tempo: {figures[tempo_names[0]]['clips_bpm']} clips with bpm, "
        f"{figures[tempo_names[0]]['clips_percival_bpm']} with percival2014_bpm; "
        "(more confident half) in brackets\n"
    )
    print(
        markdown_table(
            ["method", *(label for _, label in measures), "CPU ms / audio s"],
            [
                [
                    name,
                    *(
                        f"{figures[name][m]:.3f} ({figures[name][m + '_confident_half']:.3f})"
                        for m, _ in measures
                    ),
                    figures[name]["cpu_ms_per_audio_second"],
                ]
                for name in tempo_names
            ],
        )
    )
    first = figures[key_names[0]]
    print(
        f"\nKey: MIREX weighted score on {first['clips_key']} clips with `key` "
        f"({first['skipped_key']} without) "
        f"and {first['clips_key_alt']} with a moded `key_alt` ({first['skipped_key_alt']} without); "
        "(more confident half) in brackets; signature: estimates with the key signature of the mode-less "
        "classical annotations\n"
    )
    print(
        markdown_table(
            [
                "method",
                "MIREX vs key",
                "MIREX vs key_alt",
                "exact vs key",
                "exact vs key_alt",
                "signature",
                "CPU ms / audio s",
            ],
            [
                [
                    name,
                    f"{figures[name]['mirex_key']:.3f} ({figures[name]['mirex_key_confident_half']:.3f})",
                    f"{figures[name]['mirex_key_alt']:.3f} "
                    f"({figures[name]['mirex_key_alt_confident_half']:.3f})",
                    figures[name]["correct_key"],
                    figures[name]["correct_key_alt"],
                    figures[name]["signature_hits_modeless"],
                    figures[name]["cpu_ms_per_audio_second"],
                ]
                for name in key_names
            ],
        )
    )
    print(
        f"\nStreaming estimate over time ({args.block_seconds} s blocks at {args.sr} Hz; "
        "tempo vs bpm, key vs key)\n"
    )
    print(
        markdown_table(
            ["seconds of audio", "clips", "Acc1", "Acc2", "MIREX key"],
            [[o["seconds"], o["clips"], o["acc1_bpm"], o["acc2_bpm"], o["mirex_key"]] for o in over_time],
        )
    )
    write_json(
        args.json,
        {
            "references": str(args.references),
            "block_seconds": args.block_seconds,
            "tracker_sample_rate": args.sr,
            "audio_seconds": audio_seconds,
            "figures": figures,
            "over_time": over_time,
        },
    )


if __name__ == "__main__":
    main()
