"""Programme benchmark: how right the rolling label is on radio-like programmes (issue 13, point 1).

On a live radio programme the rolling label was right 43 % of the time;
window and clip accuracy do not show why (slow to follow a song change?
flapping inside songs?).  This benchmark measures what the listener sees:

1. build programmes of songs (2-3 held-out clips of one genre, 45-75 s), consecutive songs of
   different genres (:mod:`benchmarks.programme_build`), as FLAC files plus JSON cue sheets;
2. play them through the real ``genretag serve``, every programme one ``file:`` stream of one daemon,
   once per run (model + optional smoothing config; :mod:`benchmarks.programme_daemon`);
3. score the rolling label from the events alone (:mod:`benchmarks.programme_score`): right share,
   no-label share, precision, delay to the first right label, wrong changes inside songs.

Every run replays the same programmes, so the columns compare models and settings
side by side.  A Markdown table goes to stdout, progress to stderr, the raw figures
(and every song's score) to ``--json``.

    python -m benchmarks.programme --source mer4q --run default:default --run fast:fast \\
        [--run NAME:MODEL:CONFIG.toml] [--programmes 2] [--songs 16] [--json out.json] [--keep --workdir DIR]

Clips are the manifests' rows of the ``--source`` values, less ``--exclude-artist`` and the
artists of ``--exclude-artists-of`` manifests: pick sources and artists the models did not
train on (the bundled models trained on ``music/`` only, so ``mer4q`` is held out).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, machine, markdown_table
from benchmarks.programme_build import (
    artists_of,
    genre_name,
    genre_pools,
    plan_programme,
    read_programme_clips,
    render,
    select_clips,
    write_programme,
)
from benchmarks.programme_daemon import RunSpec, run_programmes
from benchmarks.programme_score import report, score_programme

SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_MANIFESTS = [SHARED_DATA / "music" / "manifest.csv", SHARED_DATA / "mer4q" / "manifest.csv"]
DEFAULT_RUNS = ["default:default", "fast:fast"]


def note(message: str) -> None:
    """A progress line on stderr (stdout carries the table)."""
    print(f"[programme {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.programme", description=(__doc__ or "").split("\n")[0]
    )
    clips = parser.add_argument_group("clips")
    clips.add_argument(
        "--manifest",
        type=Path,
        action="append",
        help="clip manifest (repeatable) [../shared/data/{music,mer4q}/manifest.csv]",
    )
    clips.add_argument(
        "--source",
        action="append",
        required=True,
        help="manifest source value to use (repeatable): clips the models did not train on",
    )
    clips.add_argument(
        "--exclude-artists-of",
        type=Path,
        action="append",
        default=[],
        metavar="MANIFEST",
        help="leave out the artists of this (training) manifest (repeatable)",
    )
    clips.add_argument(
        "--exclude-artist",
        action="append",
        default=[],
        metavar="NAME",
        help="leave out this artist (repeatable)",
    )
    clips.add_argument("--split", action="append", default=[], help="keep only this split value (repeatable)")
    clips.add_argument(
        "--min-genre-clips", type=int, default=10, help="leave out candidate sets with fewer clips [10]"
    )
    prog = parser.add_argument_group("programmes")
    prog.add_argument("--programmes", type=int, default=2, help="programmes (daemon streams) [2]")
    prog.add_argument("--songs", type=int, default=16, help="songs per programme [16]")
    prog.add_argument(
        "--song-seconds",
        type=float,
        nargs=2,
        default=[45.0, 75.0],
        metavar=("MIN", "MAX"),
        help="song length range, seconds [45 75]",
    )
    prog.add_argument("--crossfade", type=float, default=1.0, help="crossfade between clips, seconds [1]")
    prog.add_argument("--sample-rate", type=int, default=22050, help="programme audio rate, Hz [22050]")
    prog.add_argument("--seed", type=int, default=0, help="random seed of the programmes [0]")
    runs = parser.add_argument_group("runs")
    runs.add_argument(
        "--run",
        action="append",
        metavar="NAME:MODEL[:CONFIG.toml]",
        help="a column: model dir or bundled name, optional daemon config (repeatable) "
        "[default:default, fast:fast]",
    )
    runs.add_argument("--timeout", type=float, default=3600.0, help="longest run, seconds [3600]")
    out = parser.add_argument_group("output")
    out.add_argument("--workdir", type=Path, help="where programmes and events go [a temporary folder]")
    out.add_argument("--keep", action="store_true", help="keep the workdir (programmes, cue sheets, events)")
    out.add_argument("--json", type=Path, help="write the raw figures here")
    return parser.parse_args(argv)


def build_programmes(args: argparse.Namespace, work: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """Select clips, plan and render the programmes into ``work``: (FLAC paths, cue sheets)."""
    clips = []
    for manifest in args.manifest or DEFAULT_MANIFESTS:
        clips += read_programme_clips(manifest)
    excluded = set(args.exclude_artist)
    for manifest in args.exclude_artists_of:
        excluded |= artists_of(manifest)
    chosen = select_clips(clips, args.source, exclude_artists=excluded, splits=args.split)
    pools = genre_pools(chosen, args.min_genre_clips)
    by_size = sorted(pools.items(), key=lambda kv: -len(kv[1]))
    note(
        f"{len(chosen)} of {len(clips)} clips held out; genres: "
        + ", ".join(f"{genre_name(t)} ({len(p)})" for t, p in by_size)
    )
    rng = np.random.default_rng(args.seed)
    usage: Counter[Path] = Counter()
    genre_counts: Counter[str] = Counter()
    paths, cues = [], []
    for i in range(args.programmes):
        name = f"programme-{i:02d}"
        songs = plan_programme(
            pools,
            args.songs,
            rng,
            song_seconds=tuple(args.song_seconds),
            crossfade=args.crossfade,
            usage=usage,
            genre_counts=genre_counts,
        )
        audio, cue = render(songs, args.sample_rate, args.crossfade, name)
        paths.append(write_programme(work, name, audio, args.sample_rate, cue))
        cues.append(cue)
        note(
            f"{name}: {len(songs)} songs, {cue['seconds'] / 60:.1f} min, "
            + " > ".join(s.genre for s in songs)
        )
    return paths, cues


PERCENT_ROWS = [
    ("right share", "right_share"),
    ("precision (right / labelled)", "precision"),
    ("no label", "unlabelled_share"),
]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def markdown(results: list[dict[str, Any]]) -> str:
    """The overall table (a column per run) and right share per genre."""
    header = ["", *(r["name"] for r in results)]
    overall = [r["report"]["overall"] for r in results]
    rows: list[list[Any]] = [[label, *(_percent(o[key]) for o in overall)] for label, key in PERCENT_ROWS]
    rows += [
        ["delay to first right label, median", *(_seconds(o["delay_median"]) for o in overall)],
        ["delay to first right label, p90", *(_seconds(o["delay_p90"]) for o in overall)],
        ["songs never labelled right", *(f"{o['never_right']} of {o['songs']}" for o in overall)],
        [
            "wrong label changes inside songs",
            *(f"{o['wrong_changes']} ({o['wrong_changes_per_song']:.2f}/song)" for o in overall),
        ],
        [
            "windows scored / dropped",
            *(f"{r['windows_processed']:.0f} / {r['windows_dropped']:.0f}" for r in results),
        ],
        ["wall time (daemon start to last stream down)", *(f"{r['wall_seconds']:.0f} s" for r in results)],
    ]
    text = markdown_table(header, rows)
    genres = sorted({g for r in results for g in r["report"]["per_genre"]})
    genre_rows = []
    for genre in genres:
        cells = []
        for r in results:
            g = r["report"]["per_genre"].get(genre)
            cells.append(
                "n/a"
                if g is None
                else f"{_percent(g['right_share'])}, {_seconds(g['delay_median'])} "
                f"({g['songs']} songs, {g['never_right']} never)"
            )
        genre_rows.append([genre, *cells])
    text += "\n\nPer genre: right share, median delay to the first right label (songs, never right)\n\n"
    text += markdown_table(["genre", *(r["name"] for r in results)], genre_rows)
    text += "\n\nDelays count a song never labelled right with its whole length (an upper bound).\n"
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = [RunSpec.parse(text) for text in (args.run or DEFAULT_RUNS)]
    if len({s.name for s in specs}) != len(specs):
        raise SystemExit("run names must differ")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="genretag-programme-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        paths, cues = build_programmes(args, work)
        seconds = [c["seconds"] for c in cues]
        results = []
        for spec in specs:
            note(
                f"run {spec.name}: model {spec.model}, config {spec.config or 'none'}, "
                f"{len(paths)} streams, {sum(seconds) / 60:.1f} programme minutes"
            )
            run = run_programmes(spec, paths, seconds, work, timeout=args.timeout, progress=note)
            (work / f"events-{spec.name}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in run.events))
            songs = [s for cue in cues for s in score_programme(cue, run.events)]
            scored = report(songs)
            results.append(
                {
                    "name": spec.name,
                    "model": spec.model,
                    "config": str(spec.config) if spec.config else None,
                    "config_text": spec.config.read_text() if spec.config else None,
                    "wall_seconds": round(run.wall_seconds, 1),
                    "windows_processed": run.windows_processed,
                    "windows_dropped": run.windows_dropped,
                    "report": scored,
                }
            )
            o = scored["overall"]
            note(
                f"run {spec.name}: right {_percent(o['right_share'])} in {run.wall_seconds:.0f} s"
                + (f"; {run.windows_dropped:.0f} windows DROPPED" if run.windows_dropped else "")
            )
        print(markdown(results))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            settings = {
                k: str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v
                for k, v in vars(args).items()
                if k not in ("json", "workdir", "keep")
            }
            doc = {
                "machine": machine(),
                "settings": settings,
                "programmes": [{k: c[k] for k in ("name", "seconds", "songs")} for c in cues],
                "runs": results,
            }
            args.json.write_text(json.dumps(doc, indent=1) + "\n")
            note(f"figures in {args.json}")
        return 1 if any(r["windows_dropped"] for r in results) else 0
    finally:
        if args.keep or args.workdir:
            note(f"programmes, cue sheets and events kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
