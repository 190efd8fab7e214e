"""Labelled clips for evaluation, from a built dataset or straight from a source.

``genretag evaluate --data`` accepts either a dataset directory (TFRecord
shards plus ``dataset.json``) or any ``dataset build`` source (a manifest CSV,
genre folders, FMA), so a model can be scored on new audio without building
shards first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from genretag.pipeline.audio import AudioDecodeError, decode
from genretag.training.layouts import read_layout
from genretag.training.reader import load_clips_numpy, read_dataset

log = logging.getLogger(__name__)

LabelledClip = tuple[str, np.ndarray, np.ndarray, int]


def _multi_hot(clip_labels: Sequence[str], labels: Sequence[str]) -> np.ndarray | None:
    known = [labels.index(name) for name in clip_labels if name in labels]
    if not known:
        return None
    vec = np.zeros(len(labels), np.float32)
    vec[known] = 1.0
    return vec


def labelled_clips(
    data: Path, split: str | None, labels: Sequence[str], sample_rate: int
) -> Iterator[LabelledClip]:
    """Yield ``(clip_id, pcm, multi-hot over labels, sample_rate)`` for every usable clip.

    ``split`` selects one split (None: all clips).  Clips whose labels the
    model does not know, and files that fail to decode, are logged and skipped.
    """
    if (data / "dataset.json").is_file():
        info = read_dataset(data)
        for clip in load_clips_numpy(data, split or "test"):
            names = [n for n, v in zip(info.labels, clip.labels, strict=True) if v > 0]
            vec = _multi_hot(names, labels)
            if vec is None:
                log.warning("%s: labels %s unknown to the model, skipped", clip.clip_id, names)
                continue
            yield clip.clip_id, clip.pcm, vec, info.sample_rate
        return
    scan = read_layout(data)
    for spec in scan.clips:
        if split is not None and spec.split is not None and spec.split != split:
            continue
        vec = _multi_hot(spec.labels, labels)
        if vec is None:
            log.warning("%s: labels %s unknown to the model, skipped", spec.clip_id, spec.labels)
            continue
        try:
            pcm = decode(spec.path, sample_rate)
        except AudioDecodeError as err:
            log.warning("skipped: %s", err)
            continue
        yield spec.clip_id, pcm, vec, sample_rate
