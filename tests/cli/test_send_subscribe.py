"""``genretag send`` and ``genretag subscribe`` as real processes against real sockets on loopback."""

from __future__ import annotations

import itertools
import json
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zmq

from genretag.daemon.events import EventPublisher, label_event, scores_event, state_event
from genretag.daemon.protocol import Frame, decode_frame
from genretag.pipeline.audio import float_to_int16
from genretag.pipeline.synth import electronic_loop

SR = 22050
_started: list[subprocess.Popen[bytes]] = []


def _genretag(
    *args: object, stdin: int | None = None, sigint_ignored: bool = False
) -> subprocess.Popen[bytes]:
    """``genretag ARGS`` as a process that the test's teardown kills if it is still running.

    ``sigint_ignored``: start it with SIGINT ignored, as under ``nohup`` or on some CI runners.
    """
    preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "genretag.cli.main", *map(str, args)],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
    )
    _started.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """Kill every process a test started, even when the test failed or timed out waiting for it."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def pull() -> Iterator[tuple[zmq.Socket[bytes], str]]:
    """A PULL socket on an OS-chosen loopback port, standing in for the daemon's zmq source."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, f"tcp://127.0.0.1:{port}"
    ctx.destroy(linger=0)


@pytest.fixture
def publisher() -> Iterator[EventPublisher]:
    with EventPublisher("tcp://127.0.0.1:*", linger_ms=0) as pub:
        yield pub


def _wav(path: Path, seconds: float, seed: int) -> np.ndarray:
    """Write a float WAV (so decoding is exact) and return the int16 samples send should produce."""
    sf.write(path, electronic_loop(seconds, SR, seed=seed), SR, subtype="FLOAT")
    return float_to_int16(sf.read(path, dtype="float32")[0])


def _receive_all(
    sock: zmq.Socket[bytes], proc: subprocess.Popen[bytes], timeout: float = 30
) -> tuple[list[tuple[float, Frame]], bytes]:
    """(arrival time, frame) of every message until the sender exits and its last messages are in."""
    got, deadline = [], time.monotonic() + timeout
    while sock.poll(500 if proc.poll() is not None else 50) or proc.poll() is None:
        assert time.monotonic() < deadline, "genretag send did not finish"
        if sock.poll(0):
            got.append((time.monotonic(), decode_frame(sock.recv_multipart())))
    assert proc.stderr is not None
    return got, proc.stderr.read()


def _assert_stream(frames: Sequence[Frame], stream: str, sr: int) -> np.ndarray:
    """Check ids, rates and consecutive seq; return the concatenated samples."""
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert {(f.stream_id, f.sr) for f in frames} == {(stream, sr)}
    return np.concatenate([f.samples for f in frames])


def test_send_files_arrive_whole_and_in_order(tmp_path: Path, pull: tuple[zmq.Socket[bytes], str]) -> None:
    first, second = _wav(tmp_path / "a.wav", 1.3, 0), _wav(tmp_path / "b.wav", 0.7, 1)
    sock, address = pull
    proc = _genretag(
        "send", tmp_path / "a.wav", tmp_path / "b.wav", "--to", address, "--stream", "demo", "--rate", 0
    )
    got, stderr = _receive_all(sock, proc)
    assert proc.returncode == 0, stderr.decode()
    frames = [f for _, f in got]
    samples = _assert_stream(frames, "demo", SR)
    assert samples.dtype == np.int16 and samples.shape[1] == 1
    np.testing.assert_array_equal(samples[:, 0], np.concatenate([first, second]))
    assert max(len(f.samples) for f in frames) == SR // 10  # --chunk-ms 100
    assert b"sent 2.0 s of audio in" in stderr


def test_send_rate_1_paces_in_real_time(tmp_path: Path, pull: tuple[zmq.Socket[bytes], str]) -> None:
    _wav(tmp_path / "one.wav", 1.0, 2)
    sock, address = pull
    proc = _genretag("send", tmp_path / "one.wav", "--to", address, "--stream", "rt", "--rate", 1)
    got, stderr = _receive_all(sock, proc)
    assert proc.returncode == 0, stderr.decode()
    assert len(got) == 10
    spread = got[-1][0] - got[0][0]  # first message at 0.0 s, last (0.9 .. 1.0 s of audio) at 0.9 s
    assert 0.75 < spread < 1.6, spread


def test_send_reads_raw_pcm_from_stdin(pull: tuple[zmq.Socket[bytes], str]) -> None:
    sock, address = pull
    pcm = (np.random.default_rng(0).uniform(-0.5, 0.5, (8320, 2)) * 32767).astype("<i2")
    proc = _genretag(
        "send",
        "-",
        "--to",
        address,
        "--stream",
        "pipe",
        "--rate",
        0,
        "--chunk-ms",
        50,
        "--stdin-sr",
        16000,
        "--stdin-channels",
        2,
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(pcm.tobytes() + b"\x01\x02\x03")  # and a partial final frame
    proc.stdin.close()
    got, stderr = _receive_all(sock, proc)
    assert proc.returncode == 0, stderr.decode()
    frames = [f for _, f in got]
    assert [len(f.samples) for f in frames] == [800] * 10 + [320]
    np.testing.assert_array_equal(_assert_stream(frames, "pipe", 16000), pcm)
    assert b"dropped 3 bytes" in stderr


def test_send_carries_on_past_an_unreadable_file(tmp_path: Path, pull: tuple[zmq.Socket[bytes], str]) -> None:
    good = _wav(tmp_path / "good.wav", 0.5, 3)
    sock, address = pull
    proc = _genretag(
        "send", tmp_path / "missing.wav", tmp_path / "good.wav", "--to", address, "--stream", "s", "--rate", 0
    )
    got, stderr = _receive_all(sock, proc)
    assert proc.returncode == 1
    assert b"missing.wav: no such file" in stderr and b"1 input(s) failed" in stderr
    np.testing.assert_array_equal(_assert_stream([f for _, f in got], "s", SR)[:, 0], good)


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint_default", "sigint_ignored"])
def test_send_stops_cleanly_on_sigint(
    tmp_path: Path, pull: tuple[zmq.Socket[bytes], str], sigint_ignored: bool
) -> None:
    """Ctrl-C stops send, also when it was started with SIGINT ignored (nohup, some CI runners)."""
    _wav(tmp_path / "loop.wav", 0.5, 4)
    sock, address = pull
    proc = _genretag(
        "send",
        tmp_path / "loop.wav",
        "--loop",
        "--to",
        address,
        "--stream",
        "s",
        sigint_ignored=sigint_ignored,
    )
    assert sock.poll(20000), "nothing arrived"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert b"Traceback" not in stderr and b"sent " in stderr


@pytest.mark.slow
def test_an_interrupted_send_counts_every_message_it_sent(tmp_path: Path) -> None:
    """Interrupted at random moments while it waits for a slow reader, send never reports fewer
    messages than arrived (pyzmq checks for signals after libzmq took a message: an interrupt raised
    there used to lose that message from the count, in about one run of four)."""
    _wav(tmp_path / "loop.wav", 0.5, 5)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    rng, runs = random.Random(14), []
    try:
        for _ in range(16):
            sock = ctx.socket(zmq.PULL)
            sock.setsockopt(zmq.RCVHWM, 5)
            sock.setsockopt(zmq.RCVBUF, 4096)  # so that send soon waits for room, where the race was
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            proc = _genretag(
                "send",
                tmp_path / "loop.wav",
                "--loop",
                "--rate",
                0,
                "--to",
                f"tcp://127.0.0.1:{port}",
                "--stream",
                "s",
            )
            got, want = 0, rng.randint(1, 60)
            while got < want:
                assert sock.poll(20000), "send stopped sending"
                sock.recv_multipart()
                got += 1
            time.sleep(rng.random() * 0.01)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=10)
            while sock.poll(300):  # what it had queued and libzmq still delivered
                sock.recv_multipart()
                got += 1
            sock.close(linger=0)
            assert proc.returncode == 130, stderr.decode()
            reported = re.search(rb"in (\d+) messages", stderr)
            assert reported is not None, stderr.decode()
            runs.append((got, int(reported.group(1))))
    finally:
        ctx.destroy(linger=0)
    assert all(got <= reported for got, reported in runs), f"(received, reported): {runs}"


def _run_subscriber(pub: EventPublisher, events: Sequence[dict[str, object]], *args: object) -> list[str]:
    """Run ``genretag subscribe``, publishing ``events`` round and round until it exits by itself."""
    proc = _genretag("subscribe", pub.address, "--count", 3, "--timeout", 20, *args)
    deadline = time.monotonic() + 30
    for event in itertools.cycle(events):  # a SUB misses what is sent before it subscribes: keep going
        if proc.poll() is not None:
            break
        assert time.monotonic() < deadline, "genretag subscribe did not exit"
        pub.publish(event)
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    return stdout.decode().splitlines()


SCORES = {"rock": 0.8, "jazz": 0.2}


def test_subscribe_prints_json_lines(publisher: EventPublisher) -> None:
    events = [label_event("radio1", i, "rock", 0.8, SCORES, "jazz") for i in range(5)]
    lines = _run_subscriber(publisher, events, "--json")
    assert len(lines) == 3
    for line in map(json.loads, lines):
        assert line["v"] == 1 and line["type"] == "label" and line["scores"] == SCORES
        assert {"stream", "time", "pos", "label", "confidence", "prev"} <= set(line)


def test_subscribe_filters_by_type_and_exact_stream(publisher: EventPublisher) -> None:
    events = [
        scores_event("radio1", 1.0, "rock", 0.8, SCORES),
        label_event("radio10", 1.0, "jazz", 0.6, SCORES, None),  # its topic starts with ...label.radio1
        state_event("radio1", 1.0, "silence"),
        label_event("radio1", 2.0, "rock", 0.8, SCORES, "jazz"),
    ]
    lines = _run_subscriber(publisher, events, "--type", "label", "--stream", "radio1")
    assert len(lines) == 3
    for line in lines:
        assert " radio1 2.0s label rock 0.800 (was jazz)" in line, line


def test_subscribe_times_out_when_nothing_arrives(publisher: EventPublisher) -> None:
    proc = _genretag("subscribe", publisher.address, "--timeout", 0.5)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1 and stdout == b"" and b"no event" in stderr


def test_subscribe_says_why_a_label_went_null_and_why_a_stream_went_down(publisher: EventPublisher) -> None:
    events = [
        label_event("radio1", 3.0, None, None, {}, "rock", reason="uncertain"),
        state_event("radio1", 4.0, "down", reason="http_404"),
    ]
    lines = _run_subscriber(publisher, events)
    assert any(" radio1 3.0s label - (was rock: uncertain)" in line for line in lines), lines
    assert any(" radio1 4.0s state down: http_404 label=-" in line for line in lines), lines


@pytest.mark.slow
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint_default", "sigint_ignored"])
def test_subscribe_stops_on_sigint(publisher: EventPublisher, sigint_ignored: bool) -> None:
    """Ctrl-C stops subscribe (exit 130), also when it was started with SIGINT ignored."""
    proc = _genretag("subscribe", publisher.address, sigint_ignored=sigint_ignored)
    time.sleep(3)  # imported and waiting for events
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130 and b"Traceback" not in stderr, stderr.decode()
