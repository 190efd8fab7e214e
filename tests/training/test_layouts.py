"""Source readers: manifest, genre folders, FMA layout, label maps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.audio_corpus import write_fma, write_manifest

from genretag.training.layouts import (
    LayoutError,
    apply_label_map,
    detect_layout,
    load_label_map,
    read_layout,
)


def test_detect_kind(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [{"path": "a.wav", "labels": "x"}])
    assert detect_layout(manifest) == "manifest"
    assert detect_layout(tmp_path) == "folders"
    (tmp_path / "fma_metadata").mkdir()
    (tmp_path / "fma_metadata" / "tracks.csv").write_text("")
    assert detect_layout(tmp_path) == "fma"
    with pytest.raises(LayoutError, match="manifest .csv"):
        detect_layout(write_manifest(tmp_path / "m.txt", [{"path": "a", "labels": "b"}]))


def test_manifest_rows(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    manifest = write_manifest(
        tmp_path / "sub" / "m.csv",
        [
            {"path": "a/x.wav", "labels": "rock; pop ;rock", "artist": "Ann", "split": "train"},
            {"path": "../y.mp3", "labels": "jazz", "artist": "", "split": "val"},
            {"path": "a/z.wav", "labels": "jazz", "artist": "Bob", "split": "Validation"},
            {"path": "", "labels": "jazz", "artist": "Bob", "split": "test"},
            {"path": "a/n.wav", "labels": " ; ", "artist": "Bob", "split": "test"},
            {"path": "a/./x.wav", "labels": "rock", "artist": "Ann", "split": "train"},
        ],
    )
    scan = read_layout(manifest)
    assert scan.kind == "manifest"
    by_id = {c.clip_id: c for c in scan.clips}
    assert list(by_id) == ["a/x.wav", str((tmp_path / "y.mp3").as_posix()), "a/z.wav"]
    x = by_id["a/x.wav"]
    assert x.path == tmp_path / "sub" / "a" / "x.wav"
    assert (x.labels, x.group, x.split) == (("pop", "rock"), "Ann", "train")
    outside = by_id[(tmp_path / "y.mp3").as_posix()]
    assert (outside.group, outside.split) == (outside.clip_id, "dev")  # no artist: clip is group
    assert by_id["a/z.wav"].split == "dev"
    reasons = {s.clip_id: s.reason for s in scan.skipped}
    assert reasons == {
        "m.csv:5": "row has an empty path",
        "a/n.wav": "m.csv:6: no labels",
        "a/x.wav": "duplicate entry for the same file",
    }


def test_manifest_group_column_wins_and_errors(tmp_path: Path) -> None:
    scan = read_layout(
        write_manifest(tmp_path / "m.csv", [{"path": "a.wav", "labels": "x", "artist": "Ann", "group": "g1"}])
    )
    assert scan.clips[0].group == "g1"
    with pytest.raises(LayoutError, match=r"m2.csv:2: unknown split 'holdout'"):
        read_layout(
            write_manifest(tmp_path / "m2.csv", [{"path": "a.wav", "labels": "x", "split": "holdout"}])
        )
    with pytest.raises(LayoutError, match="needs columns 'path' and 'labels'"):
        read_layout(write_manifest(tmp_path / "m3.csv", [{"file": "a.wav", "labels": "x"}]))


def test_genre_folders(tmp_path: Path) -> None:
    for rel in ["Rock/a.WAV", "Rock/b.mp3", "jazz/c.Flac", "jazz/d.ogg", "jazz/e.au"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "jazz" / "notes.txt").write_text("not audio")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "f.wav").write_bytes(b"x")
    (tmp_path / "loose.wav").write_bytes(b"x")
    scan = read_layout(tmp_path, "folders")
    assert [(c.clip_id, c.labels, c.group) for c in scan.clips] == [
        ("Rock/a.WAV", ("Rock",), "Rock/a.WAV"),
        ("Rock/b.mp3", ("Rock",), "Rock/b.mp3"),
        ("jazz/c.Flac", ("jazz",), "jazz/c.Flac"),
        ("jazz/d.ogg", ("jazz",), "jazz/d.ogg"),
        ("jazz/e.au", ("jazz",), "jazz/e.au"),
    ]
    assert all(c.split is None for c in scan.clips)
    assert [(s.clip_id, s.reason) for s in scan.skipped] == [
        ("loose.wav", "audio file outside any genre folder")
    ]


def test_fma_layout(tmp_path: Path) -> None:
    root = write_fma(
        tmp_path,
        [
            (2, 1, "training", "small", "Hip-Hop"),
            (3, 1, "training", "medium", "Hip-Hop"),  # not in fma_small: not part of this source
            (140, 7, "validation", "small", "Folk"),
            (1482, 9, "test", "small", "Pop"),
            (1483, 9, "test", "small", ""),  # no top genre
        ],
    )
    scan = read_layout(root)
    assert scan.kind == "fma"
    assert [(c.clip_id, c.labels, c.group, c.split) for c in scan.clips] == [
        ("fma_small/000/000002.mp3", ("Hip-Hop",), "artist:1", "train"),
        ("fma_small/000/000140.mp3", ("Folk",), "artist:7", "dev"),
        ("fma_small/001/001482.mp3", ("Pop",), "artist:9", "test"),
    ]
    assert scan.clips[0].path == root / "fma_small" / "000" / "000002.mp3"
    assert [(s.clip_id, s.reason) for s in scan.skipped] == [
        ("fma_small/001/001483.mp3", "no top-level genre (track.genre_top is empty)")
    ]


def test_fma_needs_its_columns(tmp_path: Path) -> None:
    (tmp_path / "fma_metadata").mkdir()
    (tmp_path / "fma_small").mkdir()
    (tmp_path / "fma_metadata" / "tracks.csv").write_text(",track\n,title\ntrack_id,\n2,x\n")
    with pytest.raises(LayoutError, match="missing columns"):
        read_layout(tmp_path)


def test_label_map_formats_agree(tmp_path: Path) -> None:
    mapping = {"Pop/Rock": "pop_rock", "Rock": "pop_rock", "Jazz": "jazz"}
    (tmp_path / "m.json").write_text(json.dumps(mapping))
    (tmp_path / "m.toml").write_text('"Pop/Rock" = "pop_rock"\nRock = "pop_rock"\nJazz = "jazz"\n')
    write_manifest(tmp_path / "m.csv", [{"raw": k, "label": v} for k, v in mapping.items()])
    for name in ("m.json", "m.toml", "m.csv"):
        assert load_label_map(tmp_path / name) == mapping
    (tmp_path / "bad.json").write_text('{"a": 1}')
    with pytest.raises(LayoutError, match="non-empty strings"):
        load_label_map(tmp_path / "bad.json")
    with pytest.raises(LayoutError, match=".csv, .json or .toml"):
        load_label_map(tmp_path / "m.yaml")


def test_apply_label_map_renames_merges_and_skips(tmp_path: Path) -> None:
    scan = read_layout(
        write_manifest(
            tmp_path / "m.csv",
            [
                {"path": "a.wav", "labels": "Pop/Rock;Rock"},
                {"path": "b.wav", "labels": "Jazz;Noise"},
                {"path": "c.wav", "labels": "Noise"},
            ],
        )
    )
    mapped = apply_label_map(scan, {"Pop/Rock": "pop_rock", "Rock": "pop_rock", "Jazz": "jazz"})
    assert [(c.clip_id, c.labels) for c in mapped.clips] == [("a.wav", ("pop_rock",)), ("b.wav", ("jazz",))]
    assert [(s.clip_id, s.reason) for s in mapped.skipped] == [
        ("c.wav", "no label left after label map (raw: Noise)")
    ]
