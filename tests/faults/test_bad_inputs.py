"""The bad-input corpus (:mod:`helpers.bad_inputs`) through ``classify``, ``dataset build`` and the daemon.

Every file gets either a clear, per-file error or correct handling (the music
in it is found and labelled right); nothing crashes, no traceback is printed,
and the good files around the bad ones are unaffected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.bad_inputs import HIRES_CHANNELS, HIRES_SECONDS, HIRES_SR, SILENCE_SECONDS, Corpus
from helpers.daemon import SR, Daemon, Producer, clip, expected_windows, free_port

from genretag.daemon.protocol import encode_frame
from genretag.pipeline.audio import float_to_int16, resample

# Every test here runs classify, dataset build or the daemon over the whole corpus.
pytestmark = pytest.mark.slow

TRUNCATED_SAMPLES = 46703  # what ffmpeg and libsndfile decode from 30 % of the 20 s MP3, at 8 kHz
# name -> the label it must get, or a piece of its error message
CLASSIFY = {
    "hires_8ch.wav": ("label", "classical"),
    "truncated_30pct.mp3": ("label", "classical"),
    "lying_header.wav": ("label", "electronic"),
    "good_loop.flac": ("label", "electronic"),
    "truncated_1k.mp3": ("error", "ffmpeg failed (not audio, or damaged)"),
    "empty.wav": ("error", "empty file (0 bytes)"),
    "text.mp3": ("error", "ffmpeg failed (not audio, or damaged)"),
    "nan_inf.wav": ("error", "102 NaN/Inf samples"),
    "silence_2h.flac": ("error", "digital silence (every sample is zero)"),
}


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_classify_gives_each_file_a_result_or_its_own_error(artifact: Path, corpus: Corpus) -> None:
    proc = _cli("classify", "--json", "--model", artifact, *corpus.files.values())
    assert proc.returncode == 1, proc.stderr  # documented: 1 when any file could not be classified
    assert "Traceback" not in proc.stderr, proc.stderr
    results = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    errors = [line for line in proc.stderr.splitlines() if line.startswith("genretag: error: ")]
    for name, (kind, expected) in CLASSIFY.items():
        if kind == "label":
            assert results[name]["label"] == expected, (name, results[name]["scores"])
        else:
            assert name not in results
            assert any(str(corpus[name]) in line and expected in line for line in errors), (name, errors)
    file_errors = [line for line in errors if "files could not be classified" not in line]
    assert len(file_errors) == 5 and "5 of 9 files could not be classified" in proc.stderr, proc.stderr
    # the truncated MP3's header promises 20 s: only the 5.8 s really there are judged
    assert max(w["start"] for w in results["truncated_30pct.mp3"]["windows"]) < TRUNCATED_SAMPLES / SR


def _peak_rss_mb(*args: object) -> tuple[int, float]:
    """Exit status and peak RSS (MB) of ``genretag ARGS`` (os.wait4 reports that child's own peak)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "genretag.cli.main", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def test_classify_streams_a_two_hour_file(artifact: Path, corpus: Corpus, tmp_path: Path) -> None:
    """Two hours cost what a few seconds do: classify keeps its windows, not the file.

    The file is two hours at -90 dBFS (one LSB of DC, so it compresses to almost
    nothing yet is not digital silence) and is decoded through both streaming
    passes; held whole at the model's rate it would add 230 MB of float32.
    """
    long_file = tmp_path / "hum_2h.flac"
    with sf.SoundFile(long_file, "w", SR, 1, subtype="PCM_16", format="FLAC") as f:
        for _ in range(SILENCE_SECONDS // 60):
            f.write(np.ones(60 * SR, np.int16))
    code, short_mb = _peak_rss_mb("classify", "--model", artifact, corpus["good_loop.flac"])
    assert code == 0
    code, long_mb = _peak_rss_mb("classify", "--model", artifact, long_file)
    assert code == 0
    print(f"\nclassify peak RSS: 6 s file {short_mb:.0f} MB, 2 h file {long_mb:.0f} MB")
    assert long_mb < short_mb + 60, (short_mb, long_mb)
    proc = _cli("classify", "--json", "--model", artifact, long_file)
    windows = json.loads(proc.stdout)["windows"]
    assert len(windows) == 48 and windows[-1]["start"] > SILENCE_SECONDS - 2  # spread over all of it


def test_dataset_build_skips_bad_files_with_reasons(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    proc = _cli(
        "dataset",
        "build",
        corpus.root,
        "--out",
        out,
        "--sample-rate",
        SR,
        "--workers",
        2,
        "--split-fractions",
        "1,0,0",
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip() == "4 clips -> 1 splits, 1 shards; 5 skipped", proc.stdout
    info = json.loads((out / "dataset.json").read_text())
    clips = {Path(c["clip_id"]).name: c for c in info["clips"]}
    assert set(clips) == {name for name, (kind, _) in CLASSIFY.items() if kind == "label"}
    assert clips["truncated_30pct.mp3"]["num_samples"] == TRUNCATED_SAMPLES  # not the header's 20 s
    assert clips["hires_8ch.wav"]["num_samples"] == HIRES_SECONDS * SR
    skipped = {Path(s["clip_id"]).name: s["reason"] for s in info["skipped"]}
    for name, (kind, expected) in CLASSIFY.items():
        if kind == "error":
            assert expected in skipped[name], (name, skipped[name])
    shards = list(out.glob("*.tfrecord"))
    assert [p.name for p in shards] == ["train-00000-of-00001-n004.tfrecord"]
    assert shards[0].stat().st_size < 1 << 20  # the two silent hours are not in it


def _streams_ended(daemon: Daemon, names: list[str]) -> bool:
    return all([e["state"] for e in daemon.stream_events(n, "state")][-1:] == ["down"] for n in names)


def test_daemon_file_sources_survive_the_corpus(artifact: Path, corpus: Corpus) -> None:
    """Every corpus file as a ``file:`` source of one daemon, as fast as it reads them.

    With the default age bound: a file's windows are never stale, so every one is tagged.
    """
    names = [Path(name).stem for name in CLASSIFY]
    sources = [arg for path in corpus.files.values() for arg in ("--source", f"file:{path}?rate=0")]
    with Daemon(
        "--model", artifact, *sources, "--print", "--publish", "tcp://127.0.0.1:*", "--metrics", "127.0.0.1:0"
    ) as daemon:
        daemon.wait_for(lambda: _streams_ended(daemon, names), 180, "every file to end")
        m = daemon.metric
        for name in ("truncated_1k", "empty", "text"):
            assert m("genretag_decode_errors_total", stream=name, reason="decode") == 1, name
            assert m("genretag_windows_processed_total", stream=name) == 0, name
        # NaN at 1 s, +Inf at 3 s, -Inf at 4 s: three 0.1 s chunks refused, the rest is tagged
        assert m("genretag_decode_errors_total", stream="nan_inf", reason="bad_audio") == 3
        assert m("genretag_windows_processed_total", stream="nan_inf") == expected_windows(6 * SR - 3 * 800)
        truncated = m("genretag_windows_processed_total", stream="truncated_30pct") + m(
            "genretag_windows_silent_total", stream="truncated_30pct"
        )
        assert truncated == expected_windows(TRUNCATED_SAMPLES)  # not padded to the header's 20 s
        seen = m("genretag_windows_processed_total", stream="silence_2h") + m(
            "genretag_windows_silent_total", stream="silence_2h"
        )
        assert seen == expected_windows(SILENCE_SECONDS * SR)
        assert m("genretag_windows_silent_total", stream="silence_2h") >= seen - 4  # the 2 s hold
        assert m("genretag_windows_dropped_total") == 0
        assert daemon.stop() == 0
    labels = {n: daemon.labels(n) for n in names}
    for name, (kind, expected) in CLASSIFY.items():
        if kind == "label":
            assert labels[Path(name).stem] == [expected], (name, labels)
    assert "silence" in [e["state"] for e in daemon.stream_events("silence_2h", "state")]
    assert "Traceback" not in "\n".join(daemon.log)


def test_daemon_zmq_nan_inf_and_192khz_8ch(artifact: Path) -> None:
    """NaN/Inf float32 frames are refused and counted, the stream goes on; 192 kHz 8-channel int16
    frames (150 kB each, inside the 1 MiB limit) are accepted, down-mixed, resampled and tagged."""
    port = free_port()
    with Daemon(
        "--model",
        artifact,
        "--source",
        f"zmq:tcp://127.0.0.1:{port}?idle=1",
        "--print",
        "--publish",
        "tcp://127.0.0.1:*",
        "--metrics",
        "127.0.0.1:0",
    ) as daemon:
        producer = Producer(f"tcp://127.0.0.1:{port}")
        mono = resample(clip("classical", HIRES_SECONDS, seed=8), SR, HIRES_SR)
        hires = mono[:, None] * np.linspace(1.0, 0.4, HIRES_CHANNELS, dtype=np.float32)[None, :]
        step = HIRES_SR // 20
        for seq, k in enumerate(range(0, len(hires), step)):
            producer.socket.send_multipart(
                encode_frame("hires", float_to_int16(hires[k : k + step]), HIRES_SR, seq)
            )
        music = clip("electronic", 6, seed=9)
        bad = {10: np.nan, 30: np.inf, 40: -np.inf}
        for seq, k in enumerate(range(0, len(music), SR // 10)):
            chunk = music[k : k + SR // 10].copy()
            if seq in bad:
                chunk[5] = bad[seq]
            header = json.dumps({"sr": SR, "channels": 1, "dtype": "float32", "seq": seq}).encode()
            producer.socket.send_multipart([b"floats", header, chunk.astype("<f4").tobytes()])
        daemon.wait_for(lambda: _streams_ended(daemon, ["hires", "floats"]), 60, "both streams to end")
        producer.close()
        m = daemon.metric
        assert m("genretag_decode_errors_total", stream="floats", reason="nan") == 3
        assert m("genretag_windows_processed_total", stream="floats") == expected_windows(6 * SR - 3 * 800)
        assert m("genretag_decode_errors_total", stream="hires") == 0
        assert (
            abs(
                m("genretag_windows_processed_total", stream="hires")
                - expected_windows(int(HIRES_SECONDS * SR))
            )
            <= 1
        )
        assert daemon.stop() == 0
    assert daemon.labels("hires") == ["classical"]
    assert daemon.labels("floats") == ["electronic"]
