"""The tf.data readers over a built dataset: clips, training crops, evaluation windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.audio_corpus import DATASET_SR

from genretag.pipeline.audio import decode, float_to_int16, int16_to_float, resample
from genretag.pipeline.windows import WindowSpec, frame_windows, tile_to_length
from genretag.training.reader import (
    DatasetFormatError,
    clip_dataset,
    load_clips_numpy,
    read_dataset,
    window_dataset,
)

WINDOW = 3 * DATASET_SR


def stored_pcm(corpus_manifest: Path, clip_id: str) -> np.ndarray:
    """What the shards hold for a clip, as float32 (decode -> int16 -> float)."""
    return int16_to_float(float_to_int16(decode(corpus_manifest.parent / clip_id, DATASET_SR)))


def test_clip_dataset_and_numpy_clips(built_dataset: Path, corpus_manifest: Path) -> None:
    info = read_dataset(built_dataset)
    train = {c.clip_id: c for c in info.clips if c.split == "train"}
    elements = list(clip_dataset(built_dataset, "train").as_numpy_iterator())
    assert sorted(e["clip_id"].decode() for e in elements) == sorted(train)
    clips = load_clips_numpy(built_dataset, "train")
    assert [c.clip_id for c in clips] == [e["clip_id"].decode() for e in elements]
    for clip in clips:
        entry = train[clip.clip_id]
        assert clip.pcm.dtype == np.float32 and clip.labels.dtype == np.float32
        np.testing.assert_array_equal(clip.pcm, stored_pcm(corpus_manifest, clip.clip_id))
        assert [info.labels[i] for i in np.flatnonzero(clip.labels)] == list(entry.labels)
        assert clip.group == entry.group


def test_training_windows_are_random_crops(built_dataset: Path, corpus_manifest: Path) -> None:
    info = read_dataset(built_dataset)
    train = {c.clip_id: c for c in info.clips if c.split == "train"}
    ds = window_dataset(
        built_dataset,
        "train",
        WINDOW,
        batch_size=4,
        training=True,
        seed=5,
        crops_per_clip=3,
        with_clip_ids=True,
    )
    epoch1 = list(ds.as_numpy_iterator())
    assert all(x.shape[1:] == (WINDOW,) and y.shape[1:] == (3,) for x, y, _ in epoch1)
    ids = [i.decode() for _, _, batch in epoch1 for i in batch]
    assert sorted(ids) == sorted(3 * list(train))
    for x, y, batch in epoch1:
        for window, labels, clip_id in zip(x, y, batch, strict=True):
            clip = stored_pcm(corpus_manifest, clip_id.decode())
            if clip.size <= WINDOW:  # short clips are tiled, as pipeline.windows does
                np.testing.assert_array_equal(window, tile_to_length(clip, WINDOW))
            else:  # a crop is a contiguous stretch of the clip
                start = int(
                    np.flatnonzero(
                        np.all(
                            np.lib.stride_tricks.sliding_window_view(clip, WINDOW)[:, :64] == window[:64],
                            axis=1,
                        )
                    )[0]
                )
                np.testing.assert_array_equal(window, clip[start : start + WINDOW])
            assert [info.labels[i] for i in np.flatnonzero(labels)] == list(train[clip_id.decode()].labels)
    epoch2 = list(ds.as_numpy_iterator())
    again = list(
        window_dataset(
            built_dataset,
            "train",
            WINDOW,
            batch_size=4,
            training=True,
            seed=5,
            crops_per_clip=3,
            with_clip_ids=True,
        ).as_numpy_iterator()
    )
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(epoch1, again, strict=True))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(epoch1, epoch2, strict=True))


def test_evaluation_windows_match_the_serving_windows(built_dataset: Path, corpus_manifest: Path) -> None:
    info = read_dataset(built_dataset)
    spec = WindowSpec(DATASET_SR, 3.0, 1.5)
    windows, labels, ids = [], [], []
    for x, y, batch in window_dataset(
        built_dataset, "train", WINDOW, batch_size=5, training=False, with_clip_ids=True
    ).as_numpy_iterator():
        windows += list(x)
        labels += list(y)
        ids += [i.decode() for i in batch]
    order = list(dict.fromkeys(ids))
    assert sorted(order) == sorted(c.clip_id for c in info.clips if c.split == "train")
    at = 0
    for clip_id in order:
        expected, _starts = frame_windows(stored_pcm(corpus_manifest, clip_id), spec)
        got = np.stack(windows[at : at + len(expected)])
        np.testing.assert_array_equal(got, expected)
        assert ids[at : at + len(expected)] == [clip_id] * len(expected)
        at += len(expected)
    assert at == len(windows)
    plain = next(iter(window_dataset(built_dataset, "train", WINDOW, 5, training=False)))
    assert len(plain) == 2  # (x, y) by default: fit/evaluate-ready


def test_windows_at_another_sample_rate(built_dataset: Path, corpus_manifest: Path) -> None:
    info = read_dataset(built_dataset)
    ds = window_dataset(
        built_dataset,
        "train",
        8000,
        batch_size=64,
        training=False,
        sample_rate=8000,
        hop_samples=4000,
        cache=False,
        with_clip_ids=True,
    )
    x, _y, ids = next(iter(ds.as_numpy_iterator()))
    first = ids[0].decode()
    n_first = int(np.sum(ids == ids[0]))
    resampled = resample(stored_pcm(corpus_manifest, first), DATASET_SR, 8000)
    expected, _ = frame_windows(resampled, WindowSpec(8000, 1.0, 0.5))
    assert n_first == len(expected)
    np.testing.assert_allclose(x[:n_first], expected, atol=1e-6)
    assert info.sample_rate == DATASET_SR


def test_read_dataset_errors(tmp_path: Path, built_dataset: Path) -> None:
    with pytest.raises(DatasetFormatError, match="not found"):
        read_dataset(tmp_path)
    doc = json.loads((built_dataset / "dataset.json").read_text())
    (tmp_path / "dataset.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(DatasetFormatError, match="version 99"):
        read_dataset(tmp_path)
    del doc["clips"]
    (tmp_path / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetFormatError, match="malformed"):
        read_dataset(tmp_path)
    with pytest.raises(ValueError, match="has no records"):
        clip_dataset(built_dataset, "nonexistent")


def test_an_example_encodes_to_the_same_bytes_in_every_process() -> None:
    """Protobuf writes a map's entries in an order that changes from process to process; the encoder sorts
    them, so a dataset build is reproducible byte for byte (and comparable with another build's shards)."""
    import subprocess
    import sys

    code = (
        "import hashlib, numpy as np\n"
        "from genretag.training.tfrecords import encode_example\n"
        "pcm = (1000 * np.sin(np.arange(4000) / 7)).astype(np.int16)\n"
        "print(hashlib.sha256(encode_example('a/b', 'g', np.array([2]), pcm, 8000, 1.5)).hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        for _ in range(4)
    }
    assert len(digests) == 1, digests
