"""``dataset build --runner direct|flink|spark|dataflow|portable``: the shards written by Apache Beam.

The build is planned in the driver exactly as the local build plans it (layout, group-disjoint
splits, shards cut by clip id, reuse of intact shards: :func:`~genretag.training.dataset.plan_build`)
and finished there too (``dataset.json``).  Beam does only the expensive middle: one element per
shard to write, and a worker decodes that shard's clips in order and writes it with
:func:`~genretag.training.dataset.write_shard`, the local build's own code.  So both ways give the
same files, byte for byte, and an element is a small plan: decoded audio never crosses the
runner's shuffle (FMA full decodes to about a terabyte of PCM).

A worker reports its shard (file, SHA-256, clips, skipped files) in a small JSON file under the
output folder, because a distributed runner has no channel back to the driver's memory; the
driver reads those reports and deletes them.  A retried bundle rewrites the same shard under the
same name with the same bytes (the writer renames a finished temp file), so retries are safe.

Needs the ``beam`` extra; the workers need genretag installed (on Dataflow, Flink or Spark: a
container image with it; see the README, "Scaling out").
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from typing import Any

import apache_beam as beam
from apache_beam.metrics.metric import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from tqdm import tqdm

from genretag.training.dataset import (
    BuildOptions,
    BuildPlan,
    BuildRunnerError,
    ShardOutcome,
    ShardPlan,
    WriteShards,
    decode_clip,
    decode_tasks,
    write_json_atomic,
    write_shard,
)
from genretag.training.layouts import Skipped
from genretag.training.reader import ClipEntry, ShardEntry
from genretag.training.storage import Location, is_remote, location, names_in

#: ``--runner`` choices of ``dataset build`` other than ``local``, and the Beam runner each names.
RUNNERS = {
    "direct": "DirectRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "dataflow": "DataflowRunner",
    "portable": "PortableRunner",
}
REPORTS_DIR = ".beam-reports"


def report_name(plan: ShardPlan) -> str:
    """File name of the report of the worker that wrote shard ``plan``."""
    return f"{plan.split}-{plan.index:05d}-of-{plan.total:05d}.json"


def outcome_to_json(outcome: ShardOutcome) -> dict[str, Any]:
    return {
        "shard": asdict(outcome.shard),
        "clips": [c.to_json() for c in outcome.clips],
        "skipped": [asdict(s) for s in outcome.skipped],
    }


def outcome_from_json(doc: dict[str, Any]) -> ShardOutcome:
    return ShardOutcome(
        ShardEntry(**doc["shard"]),
        [ClipEntry.from_json(c) for c in doc["clips"]],
        [Skipped(**s) for s in doc["skipped"]],
    )


class WriteShard(beam.DoFn):
    """One shard plan in; that shard written and its report saved; the shard's file name out."""

    def __init__(self, out: str, labels: tuple[str, ...], options: BuildOptions) -> None:
        self.out, self.labels, self.options = out, labels, options
        # Beam counters: what a cluster runner's UI (Dataflow, Flink) shows while the build runs
        self.clips_written = Metrics.counter("genretag", "clips_written")
        self.clips_skipped = Metrics.counter("genretag", "clips_skipped")

    def setup(self) -> None:
        import tensorflow  # noqa: F401 - once per worker, not inside the first shard's timing

    def process(self, plan: ShardPlan) -> Any:
        out = location(self.out)
        results = map(decode_clip, decode_tasks(plan, self.options))
        outcome = write_shard(out, plan, results, self.labels, self.options)
        self.clips_written.inc(len(outcome.clips))
        self.clips_skipped.inc(len(outcome.skipped))
        write_json_atomic(out / REPORTS_DIR / report_name(plan), outcome_to_json(outcome))
        yield outcome.shard.file


def _last_error_line(err: Exception) -> str:
    """The exception line that ends the worker traceback Beam puts into ``str(err)`` (logged in full
    by the workers already): ``ShardWriteError: cannot write shard ...``."""
    lines = [line for line in str(err).splitlines() if line.strip() and not line[0].isspace()]
    return lines[-1] if lines else type(err).__name__


def pipeline_args(runner: str, workers: int | None, extra: Sequence[str]) -> list[str]:
    """Beam's command-line options for ``runner``; the user's ``extra`` come last, so they win."""
    args = [f"--runner={RUNNERS[runner]}"]
    if runner == "direct":  # several processes, as the local build: Beam's default is one thread
        args += [
            "--direct_running_mode=multi_processing",
            f"--direct_num_workers={workers or os.cpu_count()}",
        ]
    return args + list(extra)


def on_beam(runner: str, extra_args: Sequence[str] = ()) -> WriteShards:
    """The shard writer of :func:`~genretag.training.dataset.build_dataset` that runs a Beam pipeline
    on ``runner`` (a key of :data:`RUNNERS`) with Beam's own options ``extra_args``."""
    if runner not in RUNNERS:
        raise ValueError(f"unknown Beam runner {runner!r}; expected one of {sorted(RUNNERS)}")
    return partial(write_shards_on_beam, runner=runner, extra_args=tuple(extra_args))


def write_shards_on_beam(
    build: BuildPlan, log: Callable[[str], None], runner: str, extra_args: Sequence[str]
) -> dict[tuple[str, int], ShardOutcome]:
    """Write the shards of ``build.todo`` by a Beam pipeline on ``runner``: outcomes by (split, index)."""
    if not build.todo:
        return {}
    reports = build.out / REPORTS_DIR
    _remove_reports(reports, build.todo)  # a failed run's, which would count as progress
    reports.mkdir(parents=True, exist_ok=True)
    args = pipeline_args(runner, build.options.workers, extra_args)
    log(f"writing {len(build.todo)} shards ({build.clips_to_decode} clips) on Beam: {' '.join(args)}")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # INFO prints every worker's start

    def run() -> None:
        with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
            (
                pipeline
                | "Plan" >> beam.Create(build.todo)
                | "Spread" >> beam.Reshuffle()  # else a runner may fuse every shard into one bundle
                | "Write" >> beam.ParDo(WriteShard(str(build.out), build.labels, build.options))
            )

    try:
        _run_counting_reports(run, reports, len(build.todo))
    except Exception as err:  # noqa: BLE001 - Beam wraps worker failures in runner-specific types
        raise BuildRunnerError(f"the Beam pipeline failed: {_last_error_line(err)}") from err
    outcomes = {}
    for plan in build.todo:
        path = reports / report_name(plan)
        try:
            outcomes[(plan.split, plan.index)] = outcome_from_json(
                json.loads(path.read_text(encoding="utf-8"))
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise BuildRunnerError(
                f"{path}: no usable report of {plan.split} shard {plan.index} ({err})"
            ) from None
    _remove_reports(reports, build.todo)
    return outcomes


def _run_counting_reports(run: Callable[[], None], reports: Location, shards: int) -> None:
    """Run the pipeline (``run``) in a thread while a progress bar counts the shards' reports as
    they appear: the one sign of progress that every runner gives, a cluster's included."""
    failed: list[Exception] = []

    def guarded() -> None:
        try:
            run()
        except Exception as err:  # noqa: BLE001 - re-raised in the caller's thread below
            failed.append(err)

    thread = threading.Thread(target=guarded, name="beam-pipeline", daemon=True)
    poll_seconds = 10.0 if is_remote(reports) else 1.0  # a listing of an object store is a request
    with tqdm(total=shards, unit="shard", file=sys.stderr, disable=None) as bar:
        thread.start()
        while thread.is_alive():
            thread.join(poll_seconds)
            bar.update(min(len(names_in(reports)), shards) - bar.n)
    if failed:
        raise failed[0]


def _remove_reports(reports: Location, plans: list[ShardPlan]) -> None:
    """Delete the reports folder (on an object store: the reports of ``plans``; the prefix goes with them)."""
    if not is_remote(reports):
        shutil.rmtree(reports, ignore_errors=True)
        return
    for name in names_in(reports) & {report_name(p) for p in plans}:
        (reports / name).unlink()
