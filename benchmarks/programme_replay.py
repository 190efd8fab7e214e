"""Replay kept programmes offline: one model's window scores, many smoothing settings, in seconds.

The programme benchmark (:mod:`benchmarks.programme`) plays programmes through
the real daemon, which takes minutes per run.  The rolling label, though, is a
pure function of the window scores and the ``[smoothing]`` settings, so tuning
needs the model only once:

1. every programme that ``python -m benchmarks.programme --keep --workdir DIR`` kept
   (``programme-NN.flac`` with its cue sheet) is decoded at the model's rate and cut
   into the model's windows, which are scored once and cached beside it
   (``programme-NN.scores-<artifact fingerprint>.npz``);
2. each combination of the ``--set`` values is replayed through
   :class:`~genretag.daemon.smoothing.LabelSmoother`, built from the daemon's
   :class:`~genretag.daemon.config.SmoothingConfig` exactly as ``serve`` builds it,
   into label events scored by :mod:`benchmarks.programme_score`.

With a model that has a speech head, each window's P(speech) is cached too and the
replay holds the genre on talk as the daemon does (its own
:class:`~genretag.daemon.analysis.StreamAnalysis`, ``[analysis]`` defaults; ``--no-speech-hold``
replays without it, as the daemon with ``[analysis] speech = false``).

The daemon resamples a stream with soxr as it arrives, so its window scores can
differ from these in the last digits; a daemon run of the benchmark checks a
setting chosen here (the README quotes both).

    python -m benchmarks.programme_replay --workdir DIR --model default \\
        --set change_windows=2,3 --set min_confidence=0.2,0.3 [--every 2] [--json out.json]

``--every 2`` replays the windows a daemon cuts at twice the artifact's hop (``[window]
hop_seconds = 3`` for the bundled models): the same grid, every other window.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import markdown_table, write_json
from benchmarks.programme_score import score_programme, summarise
from genretag.daemon.analysis import SPEECH, AnalysisSetup, StreamAnalysis
from genretag.daemon.config import AnalysisConfig, SmoothingConfig
from genretag.daemon.smoothing import smoother_from_config
from genretag.daemon.stream import Window
from genretag.models.artifact import GENRE, SPEECH_LABELS, read_manifest
from genretag.models.bundled import resolve_model

#: Columns of the table: summary key, heading, format.
COLUMNS = [
    ("right_share", "right", "{:.1%}"),
    ("precision", "precision", "{:.1%}"),
    ("unlabelled_share", "no label", "{:.1%}"),
    ("delay_median", "delay median", "{:.1f} s"),
    ("delay_p90", "delay p90", "{:.1f} s"),
    ("never_right", "never right", "{}"),
    ("wrong_changes", "wrong changes", "{}"),
]


def window_scores(
    flac: Path, model_dir: Path, runtime: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(ends, scores, speech)``: each window's end position (seconds), its genre scores and, for a
    model with a speech head, its speech head's scores; cached beside ``flac``."""
    served_by = "" if runtime == "auto" else f"-{runtime}"  # OpenVINO's bf16 scores differ in the last digits
    cache = flac.with_name(f"{flac.stem}.scores-{read_manifest(model_dir).fingerprint()}{served_by}.npz")
    if cache.exists():
        with np.load(cache) as stored:
            return stored["ends"], stored["scores"], stored["speech"] if "speech" in stored else None
    from genretag.models.predictor import load_predictor, window_spec
    from genretag.pipeline.audio import decode
    from genretag.pipeline.windows import frame_windows

    predictor = load_predictor(model_dir, runtime)
    spec = window_spec(predictor.manifest)
    windows, starts = frame_windows(decode(flac, spec.sample_rate), spec)
    outputs = [predictor.predict_outputs(windows[i : i + 64]) for i in range(0, len(windows), 64)]
    scores = np.concatenate([o[GENRE] for o in outputs])
    ends = starts + spec.window_seconds
    if SPEECH not in outputs[0]:
        np.savez(cache, ends=ends, scores=scores)
        return ends, scores, None
    speech = np.concatenate([o[SPEECH] for o in outputs])
    np.savez(cache, ends=ends, scores=scores, speech=speech)
    return ends, scores, speech


def replay(
    cue: dict[str, Any],
    ends: np.ndarray,
    scores: np.ndarray,
    labels: list[str],
    config: SmoothingConfig,
    calibrated_threshold: float,
    speech: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The label events the daemon's smoother publishes for one programme's window scores (held on
    the windows its speech gate calls talk, given the ``speech`` head's scores)."""
    smoother = smoother_from_config(labels, config, calibrated_threshold)
    analysis = None
    if speech is not None:
        only_speech = AnalysisConfig(mood=False, tags=False, tempo=False, key=False)
        analysis = StreamAnalysis(AnalysisSetup(only_speech, config, {SPEECH: SPEECH_LABELS}, 1, 0.0))
    no_audio = np.zeros(0, np.float32)  # tempo and key are off: the gate reads the head's scores only
    events = []
    for i, (pos, row) in enumerate(zip(ends, scores, strict=True)):
        held = False
        if analysis is not None and speech is not None:
            held = analysis.update(Window(no_audio, float(pos), 0.0, False), {SPEECH: speech[i]}).held
        result = smoother.current() if held else smoother.update(row, float(pos))
        if result.changed:
            events.append({"type": "label", "stream": cue["name"], "pos": float(pos), "label": result.label})
    return events


def _cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def parse_settings(items: list[str]) -> list[SmoothingConfig]:
    """Every combination of ``key=v1,v2,...`` over the daemon's default smoothing settings."""
    kinds = {f.name: f.type for f in fields(SmoothingConfig)}
    axes: list[list[tuple[str, Any]]] = []
    for item in items:
        key, _, values = item.partition("=")
        if key not in kinds or not values:
            raise SystemExit(f"--set {item!r}: expected KEY=V1[,V2...] with KEY one of {sorted(kinds)}")
        cast = str if key == "method" else float if "float" in str(kinds[key]) else int
        axes.append([(key, cast(v)) for v in values.split(",")])
    return [replace(SmoothingConfig(), **dict(combo)) for combo in itertools.product(*axes)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.programme_replay", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        required=True,
        help="folder of programme-NN.flac and .json (benchmarks.programme --keep --workdir)",
    )
    parser.add_argument("--model", default="default", help="artifact dir or bundled name [default]")
    parser.add_argument("--runtime", default="auto", help="serving runtime for the scores [auto]")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1[,V2...]",
        help="smoothing setting(s) to replay (repeatable; the product is replayed)",
    )
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="K",
        help="replay every K-th window only: the windows of a daemon at K times the artifact's hop "
        "([window] hop_seconds) [1]",
    )
    parser.add_argument(
        "--no-speech-hold",
        action="store_true",
        help="update genre on every window, talk included ([analysis] speech = false)",
    )
    parser.add_argument("--json", type=Path, help="write the figures of every combination here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = resolve_model(args.model)
    manifest = read_manifest(model_dir)
    threshold = float((manifest.calibration or {}).get("min_confidence", 0.0))
    cues = sorted(args.workdir.glob("programme-*.json"))
    if not cues:
        raise SystemExit(f"{args.workdir}: no programme-*.json (keep a benchmark's programmes with --keep)")
    programmes = []
    for cue_path in cues:
        print(f"scoring {cue_path.stem} ...", file=sys.stderr, flush=True)
        programmes.append(
            (
                json.loads(cue_path.read_text()),
                *window_scores(cue_path.with_suffix(".flac"), model_dir, args.runtime),
            )
        )
    results = []
    every = args.every
    for config in parse_settings(args.set):
        songs = [
            s
            for cue, ends, scores, speech in programmes
            for s in score_programme(
                cue,
                replay(
                    cue,
                    ends[::every],
                    scores[::every],
                    manifest.labels,
                    config,
                    threshold,
                    None if speech is None or args.no_speech_hold else speech[::every],
                ),
            )
        ]
        results.append({"smoothing": asdict(config), "overall": summarise(songs)})
    varied = [k for k in asdict(SmoothingConfig()) if len({str(r["smoothing"][k]) for r in results}) > 1]
    rows = [
        [*(r["smoothing"][k] for k in varied), *(_cell(r["overall"][key], fmt) for key, _, fmt in COLUMNS)]
        for r in results
    ]
    print(markdown_table([*varied, *(head for _, head, _ in COLUMNS)], rows))
    write_json(
        args.json,
        {
            "model": str(model_dir),
            "calibrated_threshold": threshold,
            "every": args.every,
            "speech_hold": any(p[3] is not None for p in programmes) and not args.no_speech_hold,
            "programmes": [p[0]["name"] for p in programmes],
            "runs": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
