"""Input limits through a real daemon: every frame or stream over a ``[limits]`` key is refused and
counted, the streams within them carry on, and oversize frames never reach the daemon's memory."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers.daemon import LABELS, SR, Daemon, Producer, clip, expected_windows, free_port

MakeProducer = Callable[[str], Producer]
ANY_PORTS = ("--publish", "tcp://127.0.0.1:*", "--metrics", "127.0.0.1:0")
HEADER = b'{"sr":%d,"channels":1,"dtype":"int16","seq":%d}'


def _memory_kib(pid: int) -> dict[str, int]:
    """Resident set now (VmRSS) and its peak since the process started (VmHWM), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
        for key in ("VmRSS", "VmHWM")
    }


@pytest.mark.slow
def test_each_limit_is_refused_and_counted(
    artifact: Path, tmp_path: Path, producer_factory: MakeProducer
) -> None:
    """Frame size, stream count and sample rate: the offending frame or stream is refused and counted;
    the two streams within the limits are tagged whole."""
    config = tmp_path / "limits.toml"
    config.write_text("[limits]\nmax_frame_bytes = 65536\nmax_streams = 2\nmax_sample_rate = 16000\n")
    address = f"tcp://127.0.0.1:{free_port()}"
    audio = {"a": clip("classical", 6, seed=1), "b": clip("electronic", 6, seed=2)}
    with Daemon(
        "--config", config, "--model", artifact, "--source", f"zmq:{address}", "--print", *ANY_PORTS
    ) as daemon:
        producer = producer_factory(address)
        step, third = SR // 10, 0
        for k in range(0, 6 * SR, step):
            for name, samples in audio.items():
                producer.frame(name, samples[k : k + step])
            if k // step in (5, 6, 7):  # a and b are up: a third stream has no room
                producer.frame("c", clip("noise", 0.1, seed=k))
                third += 1
        over = [
            [b"a", HEADER % (SR, 999), b"\x00" * 65538],  # 2 bytes over, inside libzmq's slack
            [b"a", HEADER % (22050, 1000), b"\x00" * 2000],
        ]  # above max_sample_rate
        for message in over:
            producer.socket.send_multipart(message)
        want = expected_windows(6 * SR)
        daemon.wait_for(
            lambda: daemon.metric("genretag_windows_processed_total") >= 2 * want,
            60,
            "every window of a and b",
        )
        daemon.wait_for(
            lambda: daemon.metric("genretag_decode_errors_total", stream="a") >= 2,
            30,
            "the refused frames to be counted",
        )
        # Every refused frame counts; the first one of a new stream may count twice today, because the zmq
        # source announces the stream "up" before its audio and Tagger.state("up") is refused and counted too.
        refused = daemon.metric("genretag_streams_refused_total")
        assert third == 3 and third <= refused <= third + 1, refused
        assert daemon.metric("genretag_source_errors_total", stream="?", kind="stream_refused") == refused
        assert daemon.metric("genretag_decode_errors_total", stream="a", reason="too_large") == 1
        assert daemon.metric("genretag_decode_errors_total", stream="a", reason="bad_rate") == 1
        for name, genre in zip(audio, LABELS[:2], strict=True):
            assert daemon.metric("genretag_windows_processed_total", stream=name) == want, name
            assert daemon.labels(name) == [genre], name
        assert daemon.stream_events("c") == []
        assert 'stream="c"' not in daemon.scrape()  # a refused stream gets no series of its own
        assert daemon.stop() == 0


@pytest.mark.slow
def test_oversize_frames_never_reach_the_daemons_memory(
    artifact: Path, producer_factory: MakeProducer
) -> None:
    """40 frames of 4 MiB (limit 1 MiB): libzmq drops each at its size header (MAXMSGSIZE), so the
    daemon's peak resident memory does not grow by even one such frame, and the producer's next stream
    is tagged whole.  (Without MAXMSGSIZE the peak grew by 18 MiB in the same run on the 2-core box.)"""
    address = f"tcp://127.0.0.1:{free_port()}"
    with Daemon("--model", artifact, "--source", f"zmq:{address}", "--print", *ANY_PORTS) as daemon:
        producer = producer_factory(address)
        producer.send("warm-up", clip("classical", 3))
        daemon.wait_for(
            lambda: (
                daemon.metric("genretag_windows_processed_total", stream="warm-up")
                == expected_windows(3 * SR)
            ),
            60,
            "the warm-up stream",
        )
        before = _memory_kib(daemon.proc.pid)
        huge = np.zeros(2 << 20, np.int16).tobytes()  # 4 MiB
        for seq in range(40):
            producer.socket.send_multipart([b"huge", HEADER % (SR, seq), huge])
        producer.send("after", clip("electronic", 3, seed=3))
        daemon.wait_for(
            lambda: (
                daemon.metric("genretag_windows_processed_total", stream="after") == expected_windows(3 * SR)
            ),
            120,
            "the stream sent after the oversize frames",
        )
        after = _memory_kib(daemon.proc.pid)
        print(
            f"\nmemory around 40 x 4 MiB frames: RSS {before['VmRSS']} -> {after['VmRSS']} KiB, "
            f"peak {before['VmHWM']} -> {after['VmHWM']} KiB"
        )
        assert after["VmHWM"] - before["VmHWM"] < 4096, (before, after)
        assert daemon.stream_events("huge") == []
        assert daemon.labels("after") == ["electronic"]
        assert daemon.stop() == 0
