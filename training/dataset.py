"""Building a dataset: source -> group-disjoint splits -> TFRecord shards + ``dataset.json``.

The build is restartable and cheap to repeat.  Clips are sorted by clip id
within a split and cut into shards of ``shard_size`` before decoding, so which
clip lands in which shard depends only on the inputs; the *fingerprint* hashes
those inputs (file list with sizes and mtimes, labels, groups, splits, and the
parameters that change record bytes).  A re-run with the same fingerprint
keeps every shard whose size and SHA-256 still match ``dataset.json`` and
decodes only the clips of missing or damaged shards.

Decoding runs in worker processes (spawned, so no TensorFlow state is forked)
and results are consumed in order through a bounded window, so memory holds a
few clips, never the dataset.  ``dataset.json`` is written last and atomically:
if it exists, every shard it lists was complete when it was written.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genretag.pipeline.audio import AudioDecodeError, decode, float_to_int16
from genretag.training.layouts import (
    ClipSpec,
    LayoutError,
    LayoutScan,
    Skipped,
    apply_label_map,
    load_label_map,
    read_layout,
)
from genretag.training.reader import (
    DATASET_FILE,
    FORMAT_VERSION,
    ClipEntry,
    DatasetFormatError,
    DatasetInfo,
    ShardEntry,
    read_dataset,
)
from genretag.training.splits import DEFAULT_FRACTIONS, SPLITS, resolve_splits
from genretag.training.storage import (
    Location,
    is_remote,
    list_ahead,
    local_file,
    location,
    write_text_whole,
)
from genretag.training.tfrecords import (
    ShardWriter,
    encode_example,
    remove_stale_shards,
    shard_intact,
)

DecodeTask = tuple[str, int, float | None]
DecodeResult = tuple[np.ndarray | None, str]


@dataclass(frozen=True)
class BuildOptions:
    """Parameters of ``genretag dataset build`` (see its ``--help``)."""

    kind: str | None = None
    label_map: Path | None = None
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    seed: int = 0
    resplit: bool = False
    sample_rate: int = 22050
    max_seconds: float | None = None
    window_seconds: float = 3.0
    hop_seconds: float = 1.5
    shard_size: int = 64
    workers: int | None = None


class BuildRunnerError(RuntimeError):
    """The runner that writes the shards failed as a whole (a Beam pipeline); ``str(err)`` says why."""


@dataclass(frozen=True)
class ShardPlan:
    """The clips that shard ``index`` of ``total`` in ``split`` is made from."""

    split: str
    index: int
    total: int
    clips: tuple[ClipSpec, ...]


@dataclass(frozen=True)
class ShardOutcome:
    """What one shard holds: its file entry, its records, and its clips that failed."""

    shard: ShardEntry
    clips: list[ClipEntry]
    skipped: list[Skipped]


@dataclass(frozen=True)
class BuildResult:
    """The written index plus what this run did (for the summary and for tests)."""

    info: DatasetInfo
    decoded: int
    reused_shards: int
    written_shards: int

    def summary(self) -> str:
        """The one-line result printed by the CLI."""
        counts = self.info.counts["splits"]
        splits = sum(1 for n in counts.values() if n)
        return (
            f"{len(self.info.clips)} clips -> {splits} splits, {len(self.info.shards)} shards; "
            f"{len(self.info.skipped)} skipped"
        )


def plan_shards(clips: Iterable[ClipSpec], shard_size: int) -> list[ShardPlan]:
    """Cut each split, sorted by clip id, into consecutive shards of ``shard_size`` clips."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    plans = []
    for split in SPLITS:
        members = sorted((c for c in clips if c.split == split), key=lambda c: c.clip_id)
        total = -(-len(members) // shard_size)
        plans += [
            ShardPlan(split, i, total, tuple(members[i * shard_size : (i + 1) * shard_size]))
            for i in range(total)
        ]
    return plans


def source_fingerprint(clips: Iterable[ClipSpec], options: BuildOptions) -> str:
    """SHA-256 over the sorted (clip id, size, mtime_ns, labels, group, split) rows and
    the parameters that change record bytes (rate, length limit, shard size, format)."""
    rows = []
    for c in clips:
        try:
            st = c.path.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        rows.append((c.clip_id, size, mtime, list(c.labels), c.group, c.split))
    params = {
        "format_version": FORMAT_VERSION,
        "sample_rate": options.sample_rate,
        "max_seconds": options.max_seconds,
        "shard_size": options.shard_size,
    }
    doc = json.dumps({"params": params, "clips": sorted(rows)}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def decode_clip(task: DecodeTask) -> DecodeResult:
    """Worker: decode one file to int16, or return the reason it cannot be used
    (undecodable, or digital silence).

    Any exception is a reason, not a crash: one bad file must not stop a build.
    """
    path, sr, max_seconds = task
    try:
        with local_file(path) as local:
            pcm = decode(local, sr, max_seconds)
        if not pcm.any():  # a genre label on nothing but zeros would only teach the model noise
            return None, "digital silence (every sample is zero)"
        return float_to_int16(pcm), ""
    except AudioDecodeError as err:
        return None, str(err).removeprefix(f"{local}: ")
    except FileNotFoundError:  # a remote file (a local one is the decoder's AudioDecodeError)
        return None, "no such file"
    except Exception as err:  # noqa: BLE001 - reported per clip in dataset.json
        return None, f"{type(err).__name__}: {err}"


@contextmanager
def _spawn_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of spawned decoder processes; leaving it cancels the tasks not yet started."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _decode_one_by_one(tasks: list[DecodeTask]) -> Generator[DecodeResult]:
    """Decode in order in a single worker process.  When it dies, every earlier
    task has finished, so the task it died on is the culprit: it is reported
    as skipped and a fresh process takes the rest."""
    queue = deque(tasks)
    while queue:
        with _spawn_pool(1) as pool:
            futures = [pool.submit(decode_clip, task) for task in queue]
            for future in futures:
                queue.popleft()
                try:
                    yield future.result()
                except BrokenProcessPool:
                    yield None, "the decoder process crashed on this file"
                    break


def _decode_in_order(tasks: list[DecodeTask], workers: int) -> Generator[DecodeResult]:
    """Decode ``tasks`` in parallel, yielding results in task order with at most
    ``4 * workers`` clips in flight (back-pressure on the decoders).

    If a decoder process dies (a crash inside a codec library, the OOM killer),
    the clips that were in flight are retried one by one so that only the
    culprit is reported, and the rest continue in a fresh pool.
    """
    if workers <= 1:
        yield from map(decode_clip, tasks)
        return
    queue = deque(tasks)
    while queue:
        pending: deque = deque()
        with _spawn_pool(workers) as pool:
            try:
                while queue or pending:
                    while queue and len(pending) < 4 * workers:
                        task = queue.popleft()
                        pending.append((task, pool.submit(decode_clip, task)))
                    result = pending[0][1].result()
                    pending.popleft()
                    yield result
            except BrokenProcessPool:
                pass
        yield from _decode_one_by_one([task for task, _future in pending])


def _reusable_shards(
    previous: DatasetInfo, plans: list[ShardPlan], log: Callable[[str], None]
) -> dict[tuple[str, int], ShardOutcome]:
    """Shards of an index with the same fingerprint whose file is intact (size + SHA-256)."""
    by_key = {(s.split, s.index): s for s in previous.shards}
    reused = {}
    for plan in plans:
        entry = by_key.get((plan.split, plan.index))
        if entry is None or not shard_intact(previous.directory / entry.file, entry.bytes, entry.sha256):
            log(f"{plan.split} shard {plan.index} is missing or damaged: rebuilding it")
            continue
        ids = {c.clip_id for c in plan.clips}
        reused[(plan.split, plan.index)] = ShardOutcome(
            entry,
            [c for c in previous.clips if c.clip_id in ids],
            [s for s in previous.skipped if s.clip_id in ids],
        )
    return reused


def decode_tasks(plan: ShardPlan, options: BuildOptions) -> list[DecodeTask]:
    """The decoder's work for the clips of one shard, in the shard's order."""
    return [(str(c.path), options.sample_rate, options.max_seconds) for c in plan.clips]


def write_shard(
    out: Location,
    plan: ShardPlan,
    results: Iterator[DecodeResult],
    labels: tuple[str, ...],
    options: BuildOptions,
    on_clip: Callable[[], object] = lambda: None,
) -> ShardOutcome:
    """Write shard ``plan`` atomically from ``results``, the decoded clips of ``plan`` in its order.

    Both ways of building call it (the local decoder pool, and a Beam worker per shard), so the
    two write the same bytes.
    """
    entries, skipped = [], []
    with ShardWriter(out, plan.split, plan.index, plan.total) as writer:
        for clip in plan.clips:
            pcm, reason = next(results)
            on_clip()
            if pcm is None:
                skipped.append(Skipped(clip.clip_id, reason))
                continue
            hot = np.array([lab in clip.labels for lab in labels], dtype=np.int64)
            writer.write(encode_example(clip.clip_id, clip.group, hot, pcm, options.sample_rate))
            entries.append(ClipEntry(clip.clip_id, plan.split, clip.labels, clip.group, int(pcm.size), ""))
    done = writer.result
    assert done is not None  # set by a clean exit of the writer
    entry = ShardEntry(done.file, plan.split, plan.index, done.records, done.bytes, done.sha256)
    return ShardOutcome(entry, [replace(e, shard=done.file) for e in entries], skipped)


def write_shards_locally(
    build: BuildPlan, _log: Callable[[str], None]
) -> dict[tuple[str, int], ShardOutcome]:
    """Decode the clips of ``build.todo`` in a local process pool and write each shard, streaming in order."""
    tasks = [task for plan in build.todo for task in decode_tasks(plan, build.options)]
    workers = max(1, min(build.options.workers or os.cpu_count() or 1, len(tasks)))
    with (
        closing(_decode_in_order(tasks, workers)) as results,
        tqdm(total=len(tasks), unit="clip", file=sys.stderr, disable=None) as bar,
    ):
        return {
            (plan.split, plan.index): write_shard(
                build.out, plan, results, build.labels, build.options, bar.update
            )
            for plan in build.todo
        }


def write_json_atomic(path: Location, doc: dict) -> None:
    """Write ``doc`` to ``path`` whole or not at all (no-op if unchanged)."""
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    write_text_whole(path, text)


def _previous_index(out: Location) -> DatasetInfo | None:
    """The index of an earlier build in ``out``, if there is a readable one."""
    try:
        return read_dataset(out)
    except DatasetFormatError:
        return None


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclass(frozen=True)
class BuildPlan:
    """Everything decided before any audio is decoded: the clips, their shards, and which
    shards of an earlier build stay (``reused``) or must be written (``todo``)."""

    source: str
    out: Location
    options: BuildOptions
    scan: LayoutScan
    labels: tuple[str, ...]
    shards: list[ShardPlan]
    fingerprint: str
    reused: dict[tuple[str, int], ShardOutcome]
    todo: list[ShardPlan]

    @property
    def clips_to_decode(self) -> int:
        return sum(len(p.clips) for p in self.todo)


def plan_build(
    source: str | Path, out: str | Path, options: BuildOptions, log: Callable[[str], None]
) -> BuildPlan:
    """Read and split ``source``, cut the shards, and compare with an earlier build in ``out``
    (each a path or a URL: see :mod:`genretag.training.storage`)."""
    scan = read_layout(source, options.kind)
    if options.label_map is not None:
        scan = apply_label_map(scan, load_label_map(options.label_map))
    if not scan.clips:
        raise LayoutError(f"{scan.root}: no usable clips ({len(scan.skipped)} skipped)")
    clips = resolve_splits(scan.clips, options.fractions, options.seed, options.resplit)
    labels = tuple(sorted({lab for c in clips for lab in c.labels}))
    shards = plan_shards(clips, options.shard_size)
    list_ahead(scan.root)
    fingerprint = source_fingerprint(clips, options)
    out = location(out)
    out.mkdir(parents=True, exist_ok=True)

    previous = _previous_index(out)
    if previous is not None and previous.fingerprint != fingerprint:
        log("source or build parameters changed since the last build: rebuilding every shard")
        (out / DATASET_FILE).unlink()  # never leave an index describing shards being replaced
        previous = None
    reused = _reusable_shards(previous, shards, log) if previous else {}
    todo = [p for p in shards if (p.split, p.index) not in reused]
    if reused and not todo:
        log(f"up to date: all {len(reused)} shards reused, nothing decoded")
    elif reused:
        log(f"reusing {len(reused)} of {len(shards)} shards")
    described = str(source if is_remote(location(source)) else Path(source).resolve())
    return BuildPlan(described, out, options, scan, labels, shards, fingerprint, reused, todo)


def finish_build(build: BuildPlan, written: dict[tuple[str, int], ShardOutcome]) -> BuildResult:
    """Write ``dataset.json`` for the reused and ``written`` shards, then remove stale shard files."""
    outcomes = {**build.reused, **written}
    ordered = [outcomes[(p.split, p.index)] for p in build.shards]
    options = build.options
    info = DatasetInfo(
        directory=build.out,
        labels=build.labels,
        sample_rate=options.sample_rate,
        window_seconds=options.window_seconds,
        hop_seconds=options.hop_seconds,
        source={
            "path": build.source,
            "kind": build.scan.kind,
            "fingerprint": build.fingerprint,
        },
        build={
            "max_seconds": options.max_seconds,
            "shard_size": options.shard_size,
            "seed": options.seed,
            "split_fractions": list(options.fractions),
            "resplit": options.resplit,
            "label_map": str(options.label_map) if options.label_map else None,
        },
        shards=tuple(o.shard for o in ordered),
        clips=tuple(c for o in ordered for c in o.clips),
        skipped=tuple(build.scan.skipped) + tuple(s for o in ordered for s in o.skipped),
    )
    write_json_atomic(build.out / DATASET_FILE, info.to_json())
    remove_stale_shards(build.out, {s.file for s in info.shards})
    return BuildResult(info, build.clips_to_decode, len(build.reused), len(build.todo))


#: Who writes the shards a build planned: (plan, log) -> outcome of each shard written, by (split, index).
WriteShards = Callable[[BuildPlan, Callable[[str], None]], dict[tuple[str, int], ShardOutcome]]


def build_dataset(
    source: str | Path,
    out: str | Path,
    options: BuildOptions = BuildOptions(),
    log: Callable[[str], None] = _stderr,
    write_shards: WriteShards = write_shards_locally,
) -> BuildResult:
    """Build (or bring up to date) the dataset of ``source`` in ``out``.

    ``write_shards`` decodes and writes the shards: by default a pool of processes of this
    machine; :func:`genretag.training.beam_build.on_beam` gives an Apache Beam pipeline instead.
    Both write the same files.

    Raises :class:`LayoutError`/``SplitError`` for unusable sources or splits,
    :class:`ShardWriteError` or ``OSError`` when the output cannot be written,
    :class:`BuildRunnerError` when a Beam pipeline fails.
    Unusable audio files never raise: they are listed in ``skipped``.
    """
    build = plan_build(source, out, options, log)
    started = time.monotonic()
    written = write_shards(build, log)
    log_decode_rate(build, time.monotonic() - started, log)
    return finish_build(build, written)


def log_decode_rate(build: BuildPlan, seconds: float, log: Callable[[str], None]) -> None:
    """Say how many clips were decoded and how fast (nothing when every shard was reused)."""
    n_decode = build.clips_to_decode
    if n_decode:
        log(f"decoded {n_decode} clips in {seconds:.1f} s ({n_decode / max(seconds, 1e-9):.1f} clips/s)")
