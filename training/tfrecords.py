"""The on-disk record format of a dataset and the atomic shard writer.

One ``tf.train.Example`` per clip.  PCM is stored as raw little-endian int16
bytes (half the size of float32 and ~4x smaller than a protobuf float list,
and exact: decode -> int16 is the only quantisation).  Shards are written to a
``.tmp`` name and renamed only once closed and synced, so a crash or a full
disk can never leave a file that looks like a complete shard; the final name
carries the record count (``train-00000-of-00003-n064.tfrecord``).

TensorFlow is imported inside the functions: the CLI imports this module for
``--help`` and the decode workers import it too, and neither needs TF.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from genretag.models.artifact import sha256_file
from genretag.training.storage import Location, is_remote, upload

SHARD_RE = re.compile(r"^(train|dev|test)-(\d{5})-of-(\d{5})-n(\d+)\.tfrecord$")
TMP_SUFFIX = ".tfrecord.tmp"


class ShardWriteError(Exception):
    """A shard could not be written (disk full, permissions...); the temp file is gone."""


@dataclass(frozen=True)
class ShardFile:
    """A finished shard: its file name, record count, size and SHA-256."""

    file: str
    records: int
    bytes: int
    sha256: str


def shard_name(split: str, index: int, total: int, records: int) -> str:
    """File name of shard ``index`` of ``total`` in ``split`` holding ``records`` examples."""
    return f"{split}-{index:05d}-of-{total:05d}-n{records:03d}.tfrecord"


def shard_intact(path: Location, size: int, sha256: str) -> bool:
    """True when ``path`` exists with exactly this size and SHA-256."""
    return path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256


def remove_stale_shards(directory: Location, keep: set[str]) -> None:
    """Delete shard and shard-temp files in ``directory`` not named in ``keep``
    (left by an earlier build with other inputs, or by a crash); other files stay."""
    for path in directory.iterdir():
        ours = SHARD_RE.match(path.name) or path.name.endswith(TMP_SUFFIX)
        if ours and path.name not in keep:
            path.unlink()


def encode_example(
    clip_id: str,
    group: str,
    labels: np.ndarray,
    pcm: np.ndarray,
    sample_rate: int,
    offset: float = 0.0,
) -> bytes:
    """Serialise one clip.

    Parameters
    ----------
    labels : multi-hot vector over the dataset's sorted label list (0/1).
    pcm : int16 mono samples.
    offset : start of this clip in its source file, seconds (0.0 for whole files).
    """
    import tensorflow as tf

    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"pcm must be 1-D int16, got {pcm.dtype} {pcm.shape}")

    def _bytes(*values: bytes) -> Any:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))

    def _ints(values: Any) -> Any:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    feature = {
        "pcm": _bytes(pcm.astype("<i2", copy=False).tobytes()),
        "labels": _ints(labels),
        "clip_id": _bytes(clip_id.encode()),
        "group": _bytes(group.encode()),
        "offset": tf.train.Feature(float_list=tf.train.FloatList(value=[offset])),
        "sample_rate": _ints([sample_rate]),
        "num_samples": _ints([pcm.size]),
    }
    # deterministic: protobuf writes a map's entries in hash order, which differs between processes, so the
    # same clip gave other bytes in every build (and shards other hashes); sorted, a build is reproducible.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def parse_example(serialized: Any, n_labels: int) -> dict[str, Any]:
    """Parse one serialised example inside a tf.data pipeline.

    Returns a dict of tensors: ``pcm`` (int16, variable length), ``labels``
    (float32 multi-hot, ``n_labels``), ``clip_id``, ``group`` (strings),
    ``offset`` (float32), ``sample_rate`` and ``num_samples`` (int64).
    """
    import tensorflow as tf

    spec = {
        "pcm": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.FixedLenFeature([n_labels], tf.int64),
        "clip_id": tf.io.FixedLenFeature([], tf.string),
        "group": tf.io.FixedLenFeature([], tf.string),
        "offset": tf.io.FixedLenFeature([], tf.float32),
        "sample_rate": tf.io.FixedLenFeature([], tf.int64),
        "num_samples": tf.io.FixedLenFeature([], tf.int64),
    }
    ex = tf.io.parse_single_example(serialized, spec)
    ex["pcm"] = tf.io.decode_raw(ex["pcm"], tf.int16, little_endian=True)
    ex["labels"] = tf.cast(ex["labels"], tf.float32)
    return ex


class ShardWriter:
    """Context manager writing one shard atomically.

    Records go to ``<split>-<index>-of-<total>.tfrecord.tmp``; on a clean exit
    the file is synced and renamed to its final name (which includes the record
    count).  For a ``directory`` on an object store the temp file is local and is
    uploaded under the final name once complete.  On any error the temp file is
    removed; write errors (``OSError``, TensorFlow's ``ResourceExhaustedError`` for ENOSPC, ...) become
    :class:`ShardWriteError` with a message a person can act on.
    """

    def __init__(self, directory: Location, split: str, index: int, total: int) -> None:
        self.directory = directory
        self.split, self.index, self.total = split, index, total
        self.staging = Path(tempfile.mkdtemp(prefix="genretag-shard-")) if is_remote(directory) else None
        self.tmp = (self.staging or directory) / f"{split}-{index:05d}-of-{total:05d}{TMP_SUFFIX}"
        self.records = 0
        self.result: ShardFile | None = None
        self._writer: Any = None

    def _fail(self, err: BaseException) -> ShardWriteError:
        self._discard()
        reason = getattr(err, "strerror", None) or getattr(err, "message", None) or str(err)
        reason = reason.removeprefix(f"{self.tmp}; ")  # TensorFlow repeats the path
        return ShardWriteError(f"cannot write shard {self.tmp}: {reason}")

    def _discard(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - already failing; the temp file is removed below
                pass
            self._writer = None
        if not self.tmp.is_dir():  # a folder in the way is not ours to delete (and is why we failed)
            self.tmp.unlink(missing_ok=True)
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> ShardWriter:
        import tensorflow as tf

        try:
            self._writer = tf.io.TFRecordWriter(str(self.tmp))
        except (OSError, tf.errors.OpError) as err:
            raise self._fail(err) from None
        return self

    def write(self, record: bytes) -> None:
        """Append one serialised example."""
        import tensorflow as tf

        try:
            self._writer.write(record)
        except (OSError, tf.errors.OpError) as err:
            raise self._fail(err) from None
        self.records += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import tensorflow as tf

        if exc_type is not None:
            self._discard()
            return
        final = self.directory / shard_name(self.split, self.index, self.total, self.records)
        try:
            self._writer.close()
            self._writer = None
            with self.tmp.open("rb") as f:
                os.fsync(f.fileno())
            sha256 = sha256_file(self.tmp)
            size = self.tmp.stat().st_size
            if self.staging is None:
                os.replace(self.tmp, final)
            else:
                upload(self.tmp, final)
                self.staging.rmdir()
        except (OSError, tf.errors.OpError) as err:
            raise self._fail(err) from None
        self.result = ShardFile(final.name, self.records, size, sha256)
