"""Reading a built dataset: the ``dataset.json`` index and tf.data pipelines.

:class:`DatasetInfo` is the one definition of the ``dataset.json`` schema;
the builder writes it through :meth:`DatasetInfo.to_json` and every reader
parses it here, so the two cannot disagree.  Pipelines:

- :func:`clip_dataset`: whole clips (float32 PCM, multi-hot labels, ids);
- :func:`window_dataset`: batches of fixed-length windows for Keras: random
  crops for training, consecutive windows at a hop for evaluation;
- :func:`load_clips_numpy`: whole clips as numpy arrays for scikit-learn.

TensorFlow is imported inside the functions that build pipelines.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from genretag.pipeline.audio import INT16_SCALE, int16_to_float, resample
from genretag.pipeline.windows import cut_windows
from genretag.training.layouts import Skipped
from genretag.training.splits import SPLITS
from genretag.training.storage import location
from genretag.training.tfrecords import parse_example

DATASET_FILE = "dataset.json"
FORMAT = "genretag-dataset"
FORMAT_VERSION = 1
READ_BUFFER_BYTES = 4 << 20  # a 30 s clip at 22,050 Hz is a 1.3 MB record


class DatasetFormatError(ValueError):
    """``dataset.json`` is missing, unreadable or of an unknown version."""


@dataclass(frozen=True)
class ShardEntry:
    """One shard file of a split: name, record count, size in bytes, SHA-256."""

    file: str
    split: str
    index: int
    records: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ClipEntry:
    """One record of the clip index: where a clip went and how long it is."""

    clip_id: str
    split: str
    labels: tuple[str, ...]
    group: str
    num_samples: int
    shard: str

    def to_json(self) -> dict[str, Any]:
        """The entry as ``dataset.json`` lists it (labels as a list)."""
        return {**vars(self), "labels": list(self.labels)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ClipEntry:
        return cls(**{**doc, "labels": tuple(doc["labels"])})


@dataclass(frozen=True)
class DatasetInfo:
    """Parsed ``dataset.json``.  ``counts`` is derived from ``clips``, never stored twice."""

    directory: Path
    labels: tuple[str, ...]
    sample_rate: int
    window_seconds: float
    hop_seconds: float
    source: dict[str, str]  # path, kind, fingerprint
    build: dict[str, Any]  # parameters the shards were built with
    shards: tuple[ShardEntry, ...]
    clips: tuple[ClipEntry, ...]
    skipped: tuple[Skipped, ...]

    @property
    def fingerprint(self) -> str:
        return self.source["fingerprint"]

    def label_counts(self, split: str) -> dict[str, int]:
        """Records per label in ``split`` (every label present, zeros included)."""
        counts = Counter(lab for c in self.clips if c.split == split for lab in c.labels)
        return {lab: counts.get(lab, 0) for lab in self.labels}

    @property
    def counts(self) -> dict[str, Any]:
        """Records per split, records per label and split, and the number skipped."""
        per_split = Counter(c.split for c in self.clips)
        by_split = {s: self.label_counts(s) for s in SPLITS}
        return {
            "splits": {s: per_split.get(s, 0) for s in SPLITS},
            "labels": {lab: {s: by_split[s][lab] for s in SPLITS} for lab in self.labels},
            "skipped": len(self.skipped),
        }

    def shard_paths(self, split: str) -> list[Path]:
        """Absolute paths of the shards of ``split`` that hold records, in index order."""
        return [self.directory / s.file for s in self.shards if s.split == split and s.records]

    def to_json(self) -> dict[str, Any]:
        """The ``dataset.json`` document (see the README for the schema)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "labels": list(self.labels),
            "sample_rate": self.sample_rate,
            "window": {"window_seconds": self.window_seconds, "hop_seconds": self.hop_seconds},
            "source": self.source,
            "build": self.build,
            "counts": self.counts,
            "shards": [vars(s) for s in self.shards],
            "skipped": [vars(s) for s in self.skipped],
            "clips": [c.to_json() for c in self.clips],
        }

    @classmethod
    def from_json(cls, directory: Path, doc: dict[str, Any]) -> DatasetInfo:
        """Inverse of :meth:`to_json`; raises :class:`DatasetFormatError` on other formats."""
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise DatasetFormatError(
                f"{directory / DATASET_FILE}: format {doc.get('format')!r} version "
                f"{doc.get('format_version')!r}; this genretag reads {FORMAT} {FORMAT_VERSION}"
            )
        try:
            return cls(
                directory=directory,
                labels=tuple(doc["labels"]),
                sample_rate=int(doc["sample_rate"]),
                window_seconds=float(doc["window"]["window_seconds"]),
                hop_seconds=float(doc["window"]["hop_seconds"]),
                source=dict(doc["source"]),
                build=dict(doc["build"]),
                shards=tuple(ShardEntry(**s) for s in doc["shards"]),
                clips=tuple(ClipEntry.from_json(c) for c in doc["clips"]),
                skipped=tuple(Skipped(**s) for s in doc["skipped"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetFormatError(f"{directory / DATASET_FILE}: malformed ({err!r})") from None


def read_dataset(dataset_dir: str | Path) -> DatasetInfo:
    """Parse ``dataset_dir/dataset.json`` (a path or a URL: see :mod:`genretag.training.storage`)."""
    directory = location(dataset_dir)
    path = directory / DATASET_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetFormatError(f"{path}: not found; build it with 'genretag dataset build'") from None
    except (OSError, ValueError) as err:
        raise DatasetFormatError(f"{path}: unreadable ({err})") from None
    return DatasetInfo.from_json(directory, doc)


def _records(info: DatasetInfo, split: str) -> Any:
    """Parsed examples of ``split``: shards read and parsed in parallel, in a fixed order."""
    import tensorflow as tf

    files = [str(p) for p in info.shard_paths(split)]
    if not files:
        raise ValueError(f"{info.directory}: split {split!r} has no records ({info.counts['splits']})")
    return (
        tf.data.Dataset.from_tensor_slices(files)
        .interleave(
            lambda f: tf.data.TFRecordDataset(f, buffer_size=READ_BUFFER_BYTES),
            cycle_length=min(len(files), 8),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .map(
            partial(parse_example, n_labels=len(info.labels)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    )


def _to_float(pcm: Any) -> Any:
    """int16 PCM tensor -> float32 in [-1, 1], the inverse of the builder's quantisation."""
    import tensorflow as tf

    return tf.cast(pcm, tf.float32) / INT16_SCALE


def clip_dataset(dataset_dir: str | Path, split: str) -> Any:
    """``tf.data.Dataset`` of whole clips of ``split``, in a fixed order.

    Elements are dicts: ``pcm`` float32 [-1, 1] (variable length), ``labels``
    float32 multi-hot, ``clip_id`` and ``group`` strings.
    """
    import tensorflow as tf

    info = read_dataset(dataset_dir)
    return _records(info, split).map(
        lambda ex: {
            "pcm": _to_float(ex["pcm"]),
            "labels": ex["labels"],
            "clip_id": ex["clip_id"],
            "group": ex["group"],
        },
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def _tile_to(pcm: Any, length: int) -> Any:
    """Repeat a clip shorter than ``length`` until it is ``length`` long (as pipeline.windows), for
    the training crops."""
    import tensorflow as tf

    n = tf.shape(pcm)[0]
    reps = tf.maximum(1, (length + n - 1) // n)
    return tf.tile(pcm, [reps])[: tf.maximum(n, length)]


def _resampler(sr_in: int, sr_out: int) -> Any:
    """A tf.data map function resampling int16 PCM to float32 at ``sr_out`` with soxr."""
    import tensorflow as tf

    def _np(pcm: np.ndarray) -> np.ndarray:
        return resample(int16_to_float(pcm), sr_in, sr_out).astype(np.float32)

    def _map(pcm: Any, labels: Any, clip_id: Any) -> tuple[Any, Any, Any]:
        out = tf.numpy_function(_np, [pcm], tf.float32, stateful=False)
        return tf.ensure_shape(out, [None]), labels, clip_id

    return _map


def window_dataset(
    dataset_dir: str | Path,
    split: str,
    window_samples: int,
    batch_size: int,
    training: bool,
    seed: int = 0,
    sample_rate: int | None = None,
    cache: bool = True,
    crops_per_clip: int = 4,
    hop_samples: int | None = None,
    with_clip_ids: bool = False,
) -> Any:
    """Batches of fixed-length PCM windows for a Keras model.

    Parameters
    ----------
    window_samples : window length in samples (at ``sample_rate``).
    training : True: shuffled clips, ``crops_per_clip`` random crops per clip
        per epoch (new crops each epoch, reproducible for a ``seed``), windows
        shuffled across clips.  False: every clip cut into consecutive windows
        every ``hop_samples`` (default: the dataset's hop), in a fixed order.
    sample_rate : rate the model expects (Hz); None: the dataset's rate.  A
        different rate is resampled with soxr once, before the cache.
    cache : keep parsed clips in memory (int16 unless resampled) after the first pass.
    with_clip_ids : also yield each window's clip id, to aggregate scores per clip.

    Yields
    ------
    ``(windows float32 (B, window_samples), labels float32 (B, n_labels))``,
    plus ``clip_ids string (B,)`` when ``with_clip_ids`` (leave it False for
    ``model.fit``/``evaluate``, which would read a third element as sample weights).
    Clips shorter than a window are tiled (repeat-padded).
    """
    import tensorflow as tf

    info = read_dataset(dataset_dir)
    ds = _records(info, split).map(lambda ex: (ex["pcm"], ex["labels"], ex["clip_id"]))
    if sample_rate is not None and sample_rate != info.sample_rate:
        ds = ds.map(_resampler(info.sample_rate, sample_rate), num_parallel_calls=tf.data.AUTOTUNE)
        if cache:
            ds = ds.cache()
    else:
        if cache:
            ds = ds.cache()
        ds = ds.map(lambda pcm, y, cid: (_to_float(pcm), y, cid), num_parallel_calls=tf.data.AUTOTUNE)

    if training:
        n_clips = sum(1 for c in info.clips if c.split == split)
        ds = ds.shuffle(max(1, n_clips), seed=seed, reshuffle_each_iteration=True)
        noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

        def _crops(clip: Any, rnd: Any) -> tuple[Any, Any, Any]:
            pcm, labels, clip_id = clip
            pcm = _tile_to(pcm, window_samples)
            starts = tf.random.stateless_uniform(
                [crops_per_clip],
                seed=tf.stack([rnd, tf.constant(0, tf.int64)]),
                minval=0,
                maxval=tf.shape(pcm)[0] - window_samples + 1,
                dtype=tf.int32,
            )
            windows = tf.gather(pcm, starts[:, None] + tf.range(window_samples)[None, :])
            k = crops_per_clip
            return windows, tf.repeat(labels[None], k, 0), tf.repeat(clip_id, k)

        ds = tf.data.Dataset.zip((ds, noise)).map(_crops, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.unbatch().shuffle(batch_size * crops_per_clip * 4, seed=seed + 1)
    else:
        hop = hop_samples or max(1, round(info.hop_seconds * (sample_rate or info.sample_rate)))

        def _frames(pcm: Any, labels: Any, clip_id: Any) -> tuple[Any, Any, Any]:
            # the serving side's framing itself (pipeline.windows), not a TF re-implementation of it
            windows = tf.numpy_function(
                partial(cut_windows, window_samples=window_samples, hop_samples=hop),
                [pcm],
                tf.float32,
                stateful=False,
            )
            windows = tf.ensure_shape(windows, [None, window_samples])
            n = tf.shape(windows)[0]
            return windows, tf.repeat(labels[None], n, 0), tf.repeat(clip_id, n)

        ds = ds.map(_frames, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    if not with_clip_ids:
        ds = ds.map(lambda x, y, _cid: (x, y))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class Clip:
    """A whole clip in memory: float32 PCM (at the dataset's rate, or resampled for a backbone) and
    multi-hot labels; ``group`` is the artist group that splits and folds keep together."""

    clip_id: str
    group: str
    labels: np.ndarray
    pcm: np.ndarray = field(repr=False)


def load_clips_numpy(dataset_dir: str | Path, split: str) -> list[Clip]:
    """All clips of ``split`` as numpy arrays (for scikit-learn features and evaluation)."""
    return [
        Clip(ex["clip_id"].decode(), ex["group"].decode(), ex["labels"], ex["pcm"])
        for ex in clip_dataset(dataset_dir, split).as_numpy_iterator()
    ]
