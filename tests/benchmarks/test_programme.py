"""The programme benchmark: scoring on hand-built events, programme building, and one real daemon run."""

from __future__ import annotations

import csv
import json
import math
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.programme import main
from benchmarks.programme_build import (
    Clip,
    allocate,
    genre_pools,
    plan_programme,
    read_programme_clips,
    render,
    select_clips,
    write_programme,
)
from benchmarks.programme_daemon import RunSpec, dump_config, run_config
from benchmarks.programme_score import label_timeline, score_programme, summarise

SR = 8000


def label(pos: float, name: str | None, stream: str = "p", **extra: object) -> dict[str, object]:
    return {"v": 1, "type": "label", "stream": stream, "pos": pos, "label": name, "prev": None, **extra}


def state(pos: float, name: str, stream: str = "p") -> dict[str, object]:
    return {"v": 1, "type": "state", "stream": stream, "pos": pos, "label": None, "state": name}


def cue(*songs: tuple[float, float, list[str]]) -> dict[str, object]:
    return {
        "name": "p",
        "songs": [
            {"index": i, "start": a, "end": b, "truth": t, "genre": "/".join(sorted(t))}
            for i, (a, b, t) in enumerate(songs)
        ],
    }


# --- scoring ------------------------------------------------------------------------------------------------


def test_right_share_precision_delay_and_a_wrong_change() -> None:
    events = [state(0.0, "up"), label(10.0, "rock"), label(40.0, "pop"), state(60.0, "down")]
    [song] = score_programme(cue((0.0, 60.0, ["rock"])), events)
    assert song.right_seconds == pytest.approx(30.0)  # rock from 10 to 40
    assert song.unlabelled_seconds == pytest.approx(10.0)  # nothing before the first label
    assert song.first_right == pytest.approx(10.0)
    assert song.wrong_changes == 1  # rock -> pop inside a rock song
    summary = summarise([song])
    assert summary["right_share"] == pytest.approx(0.5)
    assert summary["unlabelled_share"] == pytest.approx(10 / 60)
    assert summary["precision"] == pytest.approx(30 / 50)


def test_the_previous_songs_label_carries_over_as_wrong_time_not_a_wrong_change() -> None:
    events = [label(5.0, "rock"), label(58.0, "jazz")]
    a, b = score_programme(cue((0.0, 50.0, ["rock"]), (50.0, 100.0, ["jazz"])), events)
    assert (a.right_seconds, a.first_right, a.wrong_changes) == (45.0, 5.0, 0)
    assert b.right_seconds == pytest.approx(42.0) and b.unlabelled_seconds == 0.0
    assert b.first_right == pytest.approx(8.0) and b.wrong_changes == 0
    assert summarise([a, b])["precision"] == pytest.approx(87 / 95)


def test_silence_down_and_null_labels_clear_the_label_and_up_recovered_do_not() -> None:
    events = [
        label(2.0, "rock"),
        state(10.0, "silence"),
        state(14.0, "recovered"),
        label(20.0, "rock"),
        label(30.0, None, reason="eof"),
        label(35.0, "rock"),
        state(38.0, "down"),
        state(39.0, "up"),
    ]
    [song] = score_programme(cue((0.0, 40.0, ["rock", "pop"])), events)
    # rock 2-10, 20-30, 35-38: 21 s right; none 0-2, 10-20, 30-35, 38-40: 19 s
    assert song.right_seconds == pytest.approx(21.0)
    assert song.unlabelled_seconds == pytest.approx(19.0)
    assert song.wrong_changes == 0
    assert summarise([song])["precision"] == pytest.approx(1.0)


def test_a_wrong_label_after_none_counts_as_a_change_a_repeat_does_not() -> None:
    events = [
        label(1.0, "pop"),
        state(5.0, "silence"),
        label(8.0, "pop"),
        label(9.0, "pop"),
        label(12.0, "metal"),
        label(15.0, "jazz"),
    ]
    [song] = score_programme(cue((0.0, 20.0, ["jazz"])), events)
    assert song.wrong_changes == 3  # pop (from none), pop again after the silence, metal; not the repeat
    assert song.first_right == pytest.approx(15.0)


def test_a_change_at_a_song_boundary_belongs_to_the_new_song() -> None:
    events = [label(3.0, "rock"), label(50.0, "pop")]
    a, b = score_programme(cue((0.0, 50.0, ["rock"]), (50.0, 90.0, ["jazz"])), events)
    assert a.wrong_changes == 0 and a.right_seconds == pytest.approx(47.0)
    assert b.wrong_changes == 1 and b.first_right is None


def test_songs_never_right_count_with_their_length_in_the_delay_percentiles() -> None:
    events = [label(5.0, "rock"), label(70.0, "jazz"), label(140.0, "rock")]
    songs = score_programme(
        cue((0.0, 60.0, ["rock"]), (60.0, 120.0, ["jazz"]), (120.0, 160.0, ["blues"])), events
    )
    assert [s.first_right for s in songs] == [5.0, 10.0, None]
    summary = summarise(songs)
    assert summary["never_right"] == 1
    assert summary["delay_median"] == pytest.approx(10.0)
    assert summary["delay_p90"] == pytest.approx(10.0 + 0.8 * (40.0 - 10.0))  # delays 5, 10, 40 (length)


def test_the_timeline_keeps_to_its_stream_and_ignores_scores_events_and_unknown_keys() -> None:
    events = [
        label(1.0, "rock", stream="other"),
        {"type": "scores", "stream": "p", "pos": 2.0, "label": "pop"},
        label(3.0, "jazz", reason="switch"),
        state(4.0, "recovered"),
        state(6.0, "down", stream="other"),
    ]
    assert label_timeline(events, "p") == [(3.0, "jazz")]


def test_a_programme_with_no_label_has_no_precision() -> None:
    [song] = score_programme(cue((0.0, 30.0, ["rock"])), [state(0.0, "up"), state(30.0, "down")])
    summary = summarise([song])
    assert summary["right_share"] == 0.0 and summary["unlabelled_share"] == 1.0
    assert summary["precision"] is None and summary["never_right"] == 1


# --- building -----------------------------------------------------------------------------------------------


def fake_clips(sets: dict[str, int], seconds: float = 30.0) -> list[Clip]:
    clips = []
    for labels, n in sets.items():
        for i in range(n):
            clips.append(
                Clip(
                    Path(f"/nowhere/{labels}/{i}.wav"),
                    tuple(labels.split(";")),
                    f"artist {i}",
                    "src",
                    "dev",
                    seconds - (i % 4) * 5,
                )
            )
    return clips


def test_allocate_spreads_the_song_evenly_over_clips_that_allow_it() -> None:
    assert allocate([30.0, 30.0], 50.0) == [25.0, 25.0]
    assert allocate([10.0, 30.0, 30.0], 60.0) == [10.0, 25.0, 25.0]
    assert allocate([20.0, 20.0], 50.0) is None  # too short together
    assert allocate([30.0, 30.0], 6.0) is None  # 3 s parts are too short to sound like the clip


def test_plans_alternate_disjoint_genres_keep_lengths_and_never_reuse_a_clip() -> None:
    pools = genre_pools(fake_clips({"pop;rock": 30, "rock": 12, "jazz": 12, "blues": 12, "rare": 1}), 2)
    assert frozenset({"rare"}) not in pools  # one clip cannot make a song
    rng, usage, counts = np.random.default_rng(3), Counter[Path](), Counter[str]()
    lo, hi, xf = 45.0, 75.0, 1.0
    for _ in range(3):
        songs = plan_programme(
            pools, 10, rng, song_seconds=(lo, hi), crossfade=xf, usage=usage, genre_counts=counts
        )
        assert len(songs) == 10
        for a, b in zip(songs, songs[1:], strict=False):
            assert not a.truth & b.truth, (a.genre, b.genre)  # rock never follows pop/rock
        paths = [seg.clip.path for song in songs for seg in song.segments]
        assert len(paths) == len(set(paths))
        for i, song in enumerate(songs):
            assert 2 <= len(song.segments) <= 3
            assert all(seg.clip.truth == song.truth for seg in song.segments)
            outer = ((i > 0) + (i < len(songs) - 1)) * xf / 2
            length = sum(seg.seconds for seg in song.segments) - (len(song.segments) - 1) * xf - outer
            assert lo - 1e-6 <= length <= hi + 1e-6
            for seg in song.segments:
                assert seg.offset >= 0 and seg.offset + seg.seconds <= seg.clip.seconds


def test_later_programmes_take_the_clips_earlier_ones_left() -> None:
    clips = [c for c in fake_clips({"jazz": 32, "rock": 32}) if c.seconds == 30.0]  # 2 x 8 clips of 30 s
    pools, usage = genre_pools(clips, 2), Counter[Path]()
    rng = np.random.default_rng(0)
    for _ in range(2):  # 4 songs of 45-55 s: two 30 s clips each, 8 songs use 16 clips
        songs = plan_programme(pools, 4, rng, song_seconds=(45.0, 55.0), usage=usage)
        assert [len(s.segments) for s in songs] == [2, 2, 2, 2]
    assert sorted(usage.values()) == [1] * 16 and len(usage) == len(clips)


def test_genres_are_balanced_within_one() -> None:
    pools = genre_pools(fake_clips({"jazz": 20, "rock": 20, "blues": 20, "reggae": 20}), 2)
    counts: Counter[str] = Counter()
    plan_programme(pools, 14, np.random.default_rng(0), genre_counts=counts)
    assert sum(counts.values()) == 14 and max(counts.values()) - min(counts.values()) <= 1


def test_a_single_genre_cannot_make_a_programme() -> None:
    pools = genre_pools(fake_clips({"jazz": 20}), 2)
    with pytest.raises(ValueError, match="song 2"):
        plan_programme(pools, 3, np.random.default_rng(0))


def test_clips_are_selected_by_source_and_artist() -> None:
    clips = [
        Clip(Path(f"/x/{i}"), ("rock",), artist, source, split, 30.0)
        for i, (artist, source, split) in enumerate(
            [("A", "mer4q", "dev"), ("The  Band", "mer4q", "train"), ("C", "gtzan", "dev")]
        )
    ]
    assert [c.artist for c in select_clips(clips, ["mer4q"])] == ["A", "The  Band"]
    kept = select_clips(clips, ["mer4q", "gtzan"], exclude_artists=["the band"])
    assert [c.artist for c in kept] == ["A", "C"]
    assert [c.artist for c in select_clips(clips, ["mer4q"], splits=["dev"])] == ["A"]
    with pytest.raises(ValueError, match="source"):
        select_clips(clips, [])


def write_clip_folder(folder: Path) -> Path:
    """Twelve noise clips of 12-20 s at 8 kHz in three genres, each its own seeded noise, and a manifest."""
    rows = []
    for i in range(12):
        genre = ["jazz", "rock", "blues"][i % 3]
        audio = 0.3 * np.random.default_rng(i).uniform(-1, 1, int((12 + (i % 5) * 2) * SR)).astype(np.float32)
        sf.write(str(folder / f"c{i}.wav"), audio, SR, subtype="FLOAT")
        rows.append(
            {"path": f"c{i}.wav", "labels": genre, "artist": f"a{i}", "source": "synth", "split": "dev"}
        )
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def test_rendered_audio_matches_its_cue_sheet(tmp_path: Path) -> None:
    clips = read_programme_clips(write_clip_folder(tmp_path))
    assert sorted(round(c.seconds) for c in clips)[:3] == [12, 12, 12]
    pools = genre_pools(select_clips(clips, ["synth"]), 2)
    songs = plan_programme(pools, 4, np.random.default_rng(1), song_seconds=(20.0, 26.0), crossfade=1.0)
    audio, sheet = render(songs, SR, 1.0, "prog")
    assert sheet["seconds"] == pytest.approx(len(audio) / SR, abs=1e-3)
    flac = write_programme(tmp_path / "out", "prog", audio, SR, sheet)
    assert sf.info(str(flac)).frames == len(audio)
    assert json.loads((tmp_path / "out" / "prog.json").read_text())["audio"] == str(flac)
    starts = [s["start"] for s in sheet["songs"]]
    ends = [s["end"] for s in sheet["songs"]]
    assert starts[0] == 0.0 and ends[-1] == sheet["seconds"] and starts[1:] == ends[:-1]
    for song in sheet["songs"]:
        assert 20.0 - 1e-3 <= song["end"] - song["start"] <= 26.0 + 1e-3
        for part in song["clips"]:
            assert song["start"] - 1.0 <= part["at"] < song["end"]
            # the middle of each part (outside any crossfade) is the clip's own audio at its offset
            source, _ = sf.read(part["path"], dtype="float32")
            mid = round(part["seconds"] * SR) // 2
            got = audio[round(part["at"] * SR) + mid :][:100]
            want = source[round(part["offset"] * SR) + mid :][:100]
            np.testing.assert_allclose(got, want, atol=1e-6)


# --- daemon settings ----------------------------------------------------------------------------------------


def test_run_specs_parse_and_refuse_bad_ones() -> None:
    assert RunSpec.parse("base:fast") == RunSpec("base", "fast", None)
    assert RunSpec.parse("slow:/m/dir:/c/s.toml") == RunSpec("slow", "/m/dir", Path("/c/s.toml"))
    for bad in ("fast", "a::b", "a:b:c:d"):
        with pytest.raises(ValueError):
            RunSpec.parse(bad)


def test_the_run_config_keeps_smoothing_drops_sources_and_holds_every_window(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text(
        '[smoothing]\nmethod = "mean"\nswitch_seconds = 3.5\n[batch]\nqueue_size = 10\n'
        '[model]\npath = "elsewhere"\n[[source]]\nspec = "mic:"\n'
    )
    out = run_config(RunSpec("m", "fast", user), [150.0, 150.0], tmp_path / "run.toml")
    raw = tomllib.loads(out.read_text())
    assert raw["smoothing"] == {"method": "mean", "switch_seconds": 3.5}
    assert "source" not in raw and raw["model"] == {}
    assert raw["batch"]["queue_size"] >= 2 * 150 / 1.5  # the bundled models hop 1.5 s
    assert raw["batch"]["max_age_ms"] == 0  # files read as fast as possible are not live
    assert tomllib.loads(dump_config({"a": {"s": 'q"x', "b": True, "l": [1, 2.5]}})) == {
        "a": {"s": 'q"x', "b": True, "l": [1, 2.5]}
    }


# --- end to end ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_programme_through_the_real_daemon(
    shared_music: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    code = main(
        [
            "--manifest",
            str(shared_music / "manifest.csv"),
            "--source",
            "gtzan",
            "--min-genre-clips",
            "2",
            "--programmes",
            "1",
            "--songs",
            "3",
            "--song-seconds",
            "20",
            "25",
            "--run",
            "fast:fast",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(out),
            "--timeout",
            "120",
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    [run] = doc["runs"]
    assert run["windows_dropped"] == 0 and run["windows_processed"] >= 40  # ~65 s at a 1.5 s hop
    overall = run["report"]["overall"]
    assert overall["songs"] == 3
    assert math.isclose(overall["seconds"], doc["programmes"][0]["seconds"], abs_tol=0.01)
    for key in ("right_share", "unlabelled_share"):
        assert 0.0 <= overall[key] <= 1.0
    assert overall["unlabelled_share"] > 0  # nothing shows before the first label settles
    assert overall["right_share"] + overall["unlabelled_share"] <= 1.0 + 1e-9
    assert 0.0 < overall["delay_median"] <= 25.0
    assert sum(g["songs"] for g in run["report"]["per_genre"].values()) == 3
    events = (tmp_path / "work" / "events-fast.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["stream"] == "programme-00"
    table = capsys.readouterr().out
    assert "| right share |" in table and "fast" in table
