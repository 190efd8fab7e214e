"""``genretag dataset build``: records, shard names, skipped files, reuse, repair, disk full."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.audio_corpus import (
    BAD_CLIPS,
    DATASET_SR,
    GOOD_CLIPS,
    MISSING_CLIP,
    write_audio,
    write_corrupt,
    write_fma,
    write_manifest,
)

from genretag.models.artifact import sha256_file
from genretag.pipeline.audio import decode, float_to_int16
from genretag.training import dataset as dataset_module
from genretag.training.dataset import BuildOptions, build_dataset
from genretag.training.reader import DatasetInfo, read_dataset
from genretag.training.tfrecords import SHARD_RE, parse_example

_REAL_DECODE_CLIP = dataset_module.decode_clip
SUMMARY_RE = re.compile(r"^(\d+) clips -> (\d+) splits, (\d+) shards; (\d+) skipped$")
OPTIONS = BuildOptions(sample_rate=DATASET_SR, shard_size=2, workers=1)


def quiet(_msg: str) -> None:
    """A build log that drops messages."""


def read_records(path: Path, n_labels: int) -> list[dict[str, Any]]:
    """All examples of one shard file, parsed with tf.data, as numpy values."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(str(path)).map(lambda s: parse_example(s, n_labels))
    return list(ds.as_numpy_iterator())


def shard_files(directory: Path) -> dict[str, int]:
    """Shard file name -> mtime_ns, for every finished shard in ``directory``."""
    return {p.name: p.stat().st_mtime_ns for p in directory.glob("*.tfrecord")}


def assert_splits_disjoint(info: DatasetInfo) -> None:
    """No group and no clip of the index in two splits."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for clip in info.clips:
        splits_of[clip.group].add(clip.split)
    assert all(len(s) == 1 for s in splits_of.values()), splits_of
    assert len({c.clip_id for c in info.clips}) == len(info.clips)


def test_records_round_trip_the_decoded_audio(built_dataset: Path, corpus_manifest: Path) -> None:
    import tensorflow as tf

    info = read_dataset(built_dataset)
    expected = {
        rel: (tuple(sorted(labels.split(";"))), artist) for rel, _kind, labels, artist, _s in GOOD_CLIPS
    }
    seen = set()
    for shard in info.shards:
        for ex in read_records(built_dataset / shard.file, len(info.labels)):
            clip_id = ex["clip_id"].decode()
            pcm = float_to_int16(decode(corpus_manifest.parent / clip_id, DATASET_SR))
            assert ex["pcm"].dtype == np.int16
            np.testing.assert_array_equal(ex["pcm"], pcm)
            assert ex["num_samples"] == pcm.size and ex["sample_rate"] == DATASET_SR
            assert ex["offset"] == 0.0
            labels = tuple(info.labels[i] for i in np.flatnonzero(ex["labels"]))
            assert (labels, ex["group"].decode()) == expected[clip_id]
            seen.add(clip_id)
    assert seen == set(expected)
    # PCM is one bytes feature of raw little-endian int16, not a float list.
    first = next(s for s in info.shards if s.records)
    raw = next(iter(tf.data.TFRecordDataset(str(built_dataset / first.file)))).numpy()
    feature = tf.train.Example.FromString(raw).features.feature["pcm"]
    assert feature.WhichOneof("kind") == "bytes_list"
    assert len(feature.bytes_list.value[0]) == 2 * info.clips[0].num_samples


def test_shard_names_carry_record_counts(built_dataset: Path) -> None:
    info = read_dataset(built_dataset)
    names = sorted(p.name for p in built_dataset.iterdir())
    assert not [n for n in names if n.endswith(".tmp")]
    assert names == sorted([s.file for s in info.shards] + ["dataset.json"])
    per_split: dict[str, list[re.Match[str]]] = defaultdict(list)
    for shard in info.shards:
        m = SHARD_RE.match(shard.file)
        assert m is not None
        per_split[m[1]].append(m)
        path = built_dataset / shard.file
        assert int(m[4]) == shard.records == len(read_records(path, len(info.labels)))
        assert (shard.bytes, shard.sha256) == (path.stat().st_size, sha256_file(path))
    for matches in per_split.values():
        assert [int(m[2]) for m in matches] == list(range(len(matches)))
        assert {int(m[3]) for m in matches} == {len(matches)}
    assert sum(s.records for s in info.shards) == len(GOOD_CLIPS)


def test_broken_files_are_skipped_with_reasons(built_dataset: Path) -> None:
    info = read_dataset(built_dataset)
    reasons = {s.clip_id: s.reason for s in info.skipped}
    assert set(reasons) == set(BAD_CLIPS) | {MISSING_CLIP}
    assert reasons["audio/bad/empty.wav"] == "empty file (0 bytes)"
    assert reasons[MISSING_CLIP] == "no such file"
    assert all(reason for reason in reasons.values())
    assert info.counts["skipped"] == 5 and len(info.clips) == len(GOOD_CLIPS)


def test_dataset_json_describes_the_build(built_dataset: Path, corpus_manifest: Path) -> None:
    info = read_dataset(built_dataset)
    assert info.labels == ("jazz", "pop", "rock")
    assert (info.sample_rate, info.window_seconds, info.hop_seconds) == (DATASET_SR, 3.0, 1.5)
    assert info.source["kind"] == "manifest"
    assert info.source["path"] == str(corpus_manifest.resolve())
    assert re.fullmatch(r"[0-9a-f]{64}", info.fingerprint)
    assert info.build["shard_size"] == 2 and info.build["max_seconds"] is None
    assert_splits_disjoint(info)
    counts = info.counts
    assert sum(counts["splits"].values()) == len(info.clips)
    for split in ("train", "dev", "test"):
        assert {lab: n[split] for lab, n in counts["labels"].items()} == info.label_counts(split)
    assert sum(sum(v.values()) for v in counts["labels"].values()) == 11  # one clip has two labels
    for clip in info.clips:
        assert clip.shard in {s.file for s in info.shards if s.split == clip.split}


def test_cli_build_then_rerun_reuses_every_shard(
    corpus_manifest: Path, tmp_path: Path, run_build: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ds"
    args = (corpus_manifest, "--out", out, "--sample-rate", DATASET_SR, "--shard-size", 2, "--workers", 1)
    first = run_build(*args)
    assert first.exit_code == 0, first.output
    m = SUMMARY_RE.match(first.stdout.strip())
    assert m and (int(m[1]), int(m[4])) == (len(GOOD_CLIPS), 5), first.stdout
    before = shard_files(out)
    index = (out / "dataset.json").read_bytes()

    def no_decoding(task: object) -> object:
        raise AssertionError(f"decoded {task} although every shard was intact")

    monkeypatch.setattr(dataset_module, "decode_clip", no_decoding)
    time.sleep(0.01)
    second = run_build(*args)
    assert second.exit_code == 0, second.output
    assert f"up to date: all {len(before)} shards reused, nothing decoded" in second.stderr
    assert second.stdout == first.stdout
    assert shard_files(out) == before
    assert (out / "dataset.json").read_bytes() == index


def test_damaged_and_missing_shards_are_rebuilt(fresh_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    build_dataset(fresh_corpus, out, OPTIONS, log=quiet)
    info = read_dataset(out)
    damaged, missing = [s for s in info.shards if s.records][:2]
    originals = {s.file: (out / s.file).read_bytes() for s in (damaged, missing)}
    data = bytearray(originals[damaged.file])
    data[len(data) // 2] ^= 0xFF
    (out / damaged.file).write_bytes(bytes(data))
    (out / missing.file).unlink()
    untouched = {k: v for k, v in shard_files(out).items() if k != damaged.file}

    logs: list[str] = []
    result = build_dataset(fresh_corpus, out, OPTIONS, log=logs.append)
    assert (result.written_shards, result.reused_shards) == (2, len(info.shards) - 2)
    assert 0 < result.decoded <= 4
    assert sum("missing or damaged: rebuilding it" in line for line in logs) == 2
    for name, content in originals.items():
        assert (out / name).read_bytes() == content
    assert {k: v for k, v in shard_files(out).items() if k in untouched} == untouched
    assert read_dataset(out).to_json() == info.to_json()


def test_changed_inputs_rebuild_and_remove_stale_shards(fresh_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    build_dataset(fresh_corpus, out, OPTIONS, log=quiet)
    old = set(shard_files(out))
    logs: list[str] = []
    result = build_dataset(
        fresh_corpus, out, BuildOptions(sample_rate=DATASET_SR, shard_size=3, workers=1), log=logs.append
    )
    assert result.reused_shards == 0 and any("changed" in line for line in logs)
    assert set(shard_files(out)) == {s.file for s in result.info.shards} != old
    # Editing one source file changes the fingerprint too.
    write_audio(fresh_corpus.parent / GOOD_CLIPS[0][0], "wav8k_stereo", 1.0, 999.0)
    again = build_dataset(
        fresh_corpus, out, BuildOptions(sample_rate=DATASET_SR, shard_size=3, workers=1), log=quiet
    )
    assert again.reused_shards == 0 and again.decoded == len(GOOD_CLIPS) + 5


def _small_train_manifest(root: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        rel = f"a/{i}.au"
        write_audio(root / rel, "au", 1.0, 300.0 + 20 * i)
        rows.append({"path": rel, "labels": "x", "artist": f"artist {i}", "split": "train"})
    return write_manifest(root / "m.csv", rows)


def test_disk_full_leaves_no_complete_looking_shard(
    tmp_path: Path, run_build: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _small_train_manifest(tmp_path / "src", 6)  # 1 s at 16 kHz: 32 kB per record
    out = tmp_path / "out"
    out.mkdir()
    # The real thing: a 100 kB tmpfs holds the first 64 kB shard, not the second.
    mounted = _mount_tmpfs(out, "100k")
    if not mounted:  # not root, or no mount(8): make the writer fail as ENOSPC would
        _fake_full_disk(monkeypatch, limit=96_000)
    try:
        result = run_build(
            manifest, "--out", out, "--sample-rate", DATASET_SR, "--shard-size", 2, "--workers", 1
        )
        assert result.exit_code == 1
        assert "Error: cannot write shard" in result.stderr
        assert "No space left on device" in result.stderr
        assert "Traceback" not in result.output
        names = sorted(p.name for p in out.iterdir())
        assert names == ["train-00000-of-00003-n002.tfrecord"]  # complete, and nothing else
        assert len(read_records(out / names[0], 1)) == 2
    finally:
        if mounted:
            subprocess.run(["umount", str(out)], check=True)


def _mount_tmpfs(path: Path, size: str) -> bool:
    """Mount a tmpfs of ``size`` on ``path``; False where that is not allowed."""
    try:
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def _fake_full_disk(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """Replace TFRecordWriter by one that writes real bytes until ``limit`` bytes are
    on "disk" in total, then raises ENOSPC."""
    import errno

    import tensorflow as tf

    real = tf.io.TFRecordWriter
    used = [0]

    class FullDiskWriter:
        def __init__(self, path: str) -> None:
            self._writer = real(path)

        def write(self, record: bytes) -> None:
            used[0] += len(record)
            if used[0] > limit:
                raise OSError(errno.ENOSPC, "No space left on device")
            self._writer.write(record)

        def close(self) -> None:
            self._writer.close()

    monkeypatch.setattr(tf.io, "TFRecordWriter", FullDiskWriter)


def crash_on_marker(task: tuple[str, int, float | None]) -> object:
    """A decode worker that dies, as a crashing codec would, on files named crash*.

    Module level so the spawned decoder processes can unpickle it."""
    if Path(task[0]).name.startswith("crash"):
        os._exit(70)
    return _REAL_DECODE_CLIP(task)


def test_a_crashing_decoder_process_skips_only_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _small_train_manifest(tmp_path / "src", 3)
    write_audio(tmp_path / "src" / "a" / "crash.au", "au", 0.5, 500.0)
    with manifest.open("a") as f:
        f.write("a/crash.au,x,crasher,train\n")
    monkeypatch.setattr(dataset_module, "decode_clip", crash_on_marker)
    result = build_dataset(manifest, tmp_path / "out", BuildOptions(sample_rate=8000, workers=2), log=quiet)
    assert [(s.clip_id, s.reason) for s in result.info.skipped] == [
        ("a/crash.au", "the decoder process crashed on this file")
    ]
    assert sorted(c.clip_id for c in result.info.clips) == ["a/0.au", "a/1.au", "a/2.au"]


def test_supplied_split_with_an_artist_on_both_sides_fails(
    tmp_path: Path, run_build: Callable[..., Any]
) -> None:
    root = tmp_path / "src"
    rows = []
    for i, split in enumerate(["train", "train", "dev", "validation"]):
        write_audio(root / f"{i}.wav", "au", 0.5, 300.0 + 50 * i)
        rows.append({"path": f"{i}.wav", "labels": "x", "artist": "Ann" if i < 3 else "Bob", "split": split})
    manifest = write_manifest(root / "m.csv", rows)
    out = tmp_path / "out"
    result = run_build(manifest, "--out", out, "--workers", 1)
    assert result.exit_code == 1
    assert "group 'Ann' is in two splits" in result.stderr and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())
    resplit = run_build(manifest, "--out", out, "--workers", 1, "--resplit", "--sample-rate", 8000)
    assert resplit.exit_code == 0, resplit.output
    assert_splits_disjoint(read_dataset(out))


def test_build_from_genre_folders(tmp_path: Path, run_build: Callable[..., Any]) -> None:
    root = tmp_path / "genres"
    write_audio(root / "rock" / "a.WAV", "wav8k_stereo", 0.5, 300.0)
    write_audio(root / "rock" / "b.ogg", "ogg", 0.5, 350.0)
    write_audio(root / "Jazz" / "c.FLAC", "flac44k", 0.5, 400.0)
    write_audio(root / "Jazz" / "d.au", "au", 0.5, 450.0)
    write_corrupt(root / "Jazz" / "e.mp3", "random")
    out = tmp_path / "out"
    result = run_build(
        root, "--out", out, "--sample-rate", 8000, "--workers", 1, "--split-fractions", "0.5,0.5,0"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "4 clips -> 2 splits, 2 shards; 1 skipped"
    info = read_dataset(out)
    assert info.source["kind"] == "folders" and info.labels == ("Jazz", "rock")
    assert sorted(c.clip_id for c in info.clips) == ["Jazz/c.FLAC", "Jazz/d.au", "rock/a.WAV", "rock/b.ogg"]
    assert all(c.group == c.clip_id for c in info.clips)
    assert [s.clip_id for s in info.skipped] == ["Jazz/e.mp3"]
    assert_splits_disjoint(info)


def test_build_from_fma_layout_with_label_map(tmp_path: Path, run_build: Callable[..., Any]) -> None:
    root = write_fma(
        tmp_path / "fma",
        [
            (2, 1, "training", "small", "Hip-Hop"),
            (5, 1, "training", "small", "Hip-Hop"),
            (10, 2, "training", "small", "Pop"),
            (140, 3, "validation", "small", "Rock"),
            (141, 4, "test", "small", "Pop"),
            (148, 4, "test", "small", "Experimental"),
            (150, 5, "validation", "small", "Rock"),
            (151, 5, "validation", "small", ""),
            (152, 6, "training", "medium", "Rock"),
        ],
        missing=(150,),
    )
    label_map = write_manifest(
        tmp_path / "labels.csv",
        [
            {"raw": "Hip-Hop", "label": "hiphop"},
            {"raw": "Pop", "label": "pop_rock"},
            {"raw": "Rock", "label": "pop_rock"},
        ],
    )
    out = tmp_path / "out"
    result = run_build(root, "--out", out, "--label-map", label_map, "--sample-rate", 8000, "--workers", 1)
    assert result.exit_code == 0, result.output
    info = read_dataset(out)
    assert info.source["kind"] == "fma" and info.labels == ("hiphop", "pop_rock")
    assert {c.clip_id: (c.split, c.labels, c.group) for c in info.clips} == {
        "fma_small/000/000002.mp3": ("train", ("hiphop",), "artist:1"),
        "fma_small/000/000005.mp3": ("train", ("hiphop",), "artist:1"),
        "fma_small/000/000010.mp3": ("train", ("pop_rock",), "artist:2"),
        "fma_small/000/000140.mp3": ("dev", ("pop_rock",), "artist:3"),
        "fma_small/000/000141.mp3": ("test", ("pop_rock",), "artist:4"),
    }
    reasons = {s.clip_id: s.reason for s in info.skipped}
    assert reasons == {
        "fma_small/000/000151.mp3": "no top-level genre (track.genre_top is empty)",
        "fma_small/000/000148.mp3": "no label left after label map (raw: Experimental)",
        "fma_small/000/000150.mp3": "no such file",
    }
    assert result.stdout.strip() == "5 clips -> 3 splits, 3 shards; 3 skipped"


@pytest.mark.slow
def test_full_shared_manifest_build(
    shared_music: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    result = build_dataset(
        shared_music / "manifest.csv", tmp_path / "ds", BuildOptions(sample_rate=16000), log=quiet
    )
    seconds = time.monotonic() - started
    info = result.info
    assert len(info.clips) == 378 and not info.skipped
    assert sum(s.records for s in info.shards) == 378
    assert_splits_disjoint(info)
    with capsys.disabled():
        print(f"\nfull shared build: 378 clips in {seconds:.1f} s ({378 / seconds:.1f} clips/s)")
