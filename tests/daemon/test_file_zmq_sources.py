"""The zmq: and file: sources against a recording sink, and the spec registry; real sockets and files."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import zmq

from genretag.daemon.protocol import Limits, check_stream_id, encode_frame
from genretag.daemon.sources.base import Chunk
from genretag.daemon.sources.file import FileSource
from genretag.daemon.sources.registry import build_source, default_name, parse_spec
from genretag.daemon.sources.zmq import ZmqSource


class RecordingSink:
    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.log: list[tuple[str, ...]] = []  # ("state", stream, state) / ("error", stream, kind)
        self.reasons: list[str] = []  # the reason word of each state report
        self.changed = threading.Condition()

    def audio(self, chunk: Chunk) -> None:
        with self.changed:
            self.chunks.append(
                Chunk(chunk.stream, chunk.samples.copy(), chunk.sample_rate, chunk.arrival_time)
            )
            self.changed.notify_all()

    def state(self, stream: str, state: str, reason: str = "", detail: str = "") -> None:
        with self.changed:
            self.log.append(("state", stream, state))
            self.reasons.append(reason)
            self.changed.notify_all()

    def error(self, stream: str, kind: str, message: str) -> None:
        with self.changed:
            self.log.append(("error", stream, kind))
            self.changed.notify_all()

    def wait(self, entry: tuple[str, ...], timeout: float = 10) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: entry in self.log, timeout), (entry, self.log)


@pytest.fixture
def push() -> Any:
    context: zmq.Context[Any] = zmq.Context()
    sockets: list[zmq.Socket[Any]] = []

    def connect(address: str) -> zmq.Socket[Any]:
        sockets.append(context.socket(zmq.PUSH))
        sockets[-1].connect(address)
        return sockets[-1]

    yield connect
    context.destroy(linger=0)


def test_zmq_source_decodes_counts_and_times_out(push: Any) -> None:
    source = ZmqSource("zmq", "tcp://127.0.0.1:*", idle_timeout=0.3, limits=Limits(max_frame_bytes=4096))
    sink = RecordingSink()
    source.start(sink)
    assert source.address.startswith("tcp://127.0.0.1:")
    sock = push(source.address)
    pcm = (np.arange(160, dtype=np.int16) * 10).reshape(-1, 2)
    for seq in (0, 1, 4):
        sock.send_multipart(encode_frame("a", pcm, 16000, seq))
    sock.send_multipart([b"a", b'{"sr":16000,"channels":2,"dtype":"int16","seq":5}', b"\x00" * 6])
    sock.send_multipart([b"b", b"not json", b"\x00\x00"])
    sock.send_multipart([b"\xff\xfe", b"{}", b"\x00\x00"])
    sock.send_multipart([b"a", b'{"sr":16000,"channels":1,"dtype":"int16","seq":6}', b"\x00" * 5000])
    sock.send_multipart(encode_frame("a", pcm, 16000, 0))
    sink.wait(("state", "a", "down"))
    source.stop()
    assert [c.stream for c in sink.chunks] == ["a"] * 4
    np.testing.assert_array_equal(sink.chunks[0].samples, pcm)
    assert sink.chunks[0].sample_rate == 16000
    assert sink.log == [
        ("state", "a", "up"),
        ("error", "a", "seq_gap"),
        ("error", "a", "odd_byte_count"),
        ("error", "b", "bad_header"),
        ("error", "?", "bad_stream_id"),
        ("error", "a", "too_large"),
        ("error", "a", "seq_restart"),
        ("state", "a", "down"),
    ]
    assert sink.reasons[-1] == "idle"


def test_zmq_source_reports_streams_down_when_stopped(push: Any) -> None:
    source = ZmqSource("zmq", "tcp://127.0.0.1:*", idle_timeout=60)
    sink = RecordingSink()
    source.start(sink)
    push(source.address).send_multipart(encode_frame("x", np.zeros(80, np.int16), 8000, 0))
    sink.wait(("state", "x", "up"))
    source.stop()
    assert sink.log[-1] == ("state", "x", "down") and sink.reasons[-1] == "stopped"


def test_zmq_bind_errors_surface_at_start() -> None:
    first = ZmqSource("zmq", "tcp://127.0.0.1:*")
    first.start(RecordingSink())
    try:
        with pytest.raises(zmq.ZMQError):
            ZmqSource("zmq", first.address).start(RecordingSink())
    finally:
        first.stop()


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "tone.wav"
    t = np.arange(8000) / 8000
    sf.write(
        path,
        np.stack([np.sin(2 * np.pi * 440 * t), np.zeros(8000)], axis=1).astype(np.float32),
        8000,
        subtype="FLOAT",
    )
    return path


def test_file_source_fast_whole_and_in_order(wav: Path) -> None:
    sink = RecordingSink()
    source = FileSource("tone", wav, rate=0)
    source.start(sink)
    sink.wait(("state", "tone", "down"))
    source.stop()
    assert sink.log == [("state", "tone", "up"), ("state", "tone", "down")]
    assert sink.reasons[-1] == "eof"
    assert [len(c.samples) for c in sink.chunks] == [800] * 10  # 100 ms chunks
    audio = np.concatenate([c.samples for c in sink.chunks])
    np.testing.assert_allclose(audio, sf.read(wav, dtype="float32")[0])


def test_file_source_paces_on_an_absolute_schedule(wav: Path) -> None:
    sink = RecordingSink()
    source = FileSource("tone", wav, rate=2)  # 1 s of audio in 0.5 s
    source.start(sink)
    sink.wait(("state", "tone", "down"))
    spread = sink.chunks[-1].arrival_time - sink.chunks[0].arrival_time  # 0.9 s of audio / 2
    assert 0.4 < spread < 0.8, spread


def test_file_source_loops_until_stopped_and_reports_bad_files(wav: Path, tmp_path: Path) -> None:
    sink = RecordingSink()
    source = FileSource("tone", wav, rate=20, loop=True)
    source.start(sink)
    time.sleep(0.3)
    source.stop()
    assert len(sink.chunks) > 10 and sink.log[-1] == ("state", "tone", "down")
    assert sink.reasons[-1] == "stopped"
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"no audio here" * 50)
    sink = RecordingSink()
    source = FileSource("bad", bad)
    source.start(sink)
    sink.wait(("state", "bad", "down"))
    assert ("error", "bad", "decode") in sink.log and not sink.chunks
    assert sink.reasons[-1] == "decode_error"


def test_spec_registry() -> None:
    spec = parse_spec("file:/music/a song.flac?rate=0&loop=1")
    assert (spec.kind, spec.target) == ("file", "/music/a song.flac")
    assert spec.options == {"rate": 0.0, "loop": True}
    assert default_name(spec) == "a-song"
    assert parse_spec("zmq:tcp://127.0.0.1:5555?idle=2").options == {"idle": 2.0}
    assert parse_spec("url:HTTP://radio.example/live?x=1").target == "http://radio.example/live?x=1"
    assert default_name(parse_spec("url:http://radio.example/live")) == "radio.example/live"
    assert parse_spec("mic:").target == "" and default_name(parse_spec("mic:USB Audio")) == "mic-USB-Audio"
    for bad, message in [
        ("wav:x", "KIND:TARGET"),
        ("file:", "needs a path"),
        ("file:x?loop=maybe", "loop"),
        ("file:x?rate=-1", "rate"),
        ("zmq:udp://x", "tcp://"),
        ("url:ftp://x", "scheme"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_spec(bad)
    assert isinstance(build_source(parse_spec("zmq:tcp://127.0.0.1:*"), "z"), ZmqSource)
    assert isinstance(build_source(parse_spec("file:x.wav?rate=0"), "f"), FileSource)


@pytest.mark.parametrize(
    ("url", "stream_id"),
    [
        ("http://radio.example/live", "radio.example/live"),
        ("http://radio.example/other", "radio.example/other"),  # a second mount of the same server
        ("http://radio.example:8000/live", "radio.example:8000/live"),  # a second server on the host
        ("HTTP://Radio.Example:80/live/", "radio.example/live"),  # the scheme's own port says nothing
        ("https://user:pw@radio.example/a/b.mp3?token=s3cret#x", "radio.example/a/b.mp3"),  # no secrets
        ("http://127.0.0.1:8000/", "127.0.0.1:8000"),
        ("http://[::1]:8000/live", "[::1]:8000/live"),
        ("http://radio.example/" + "m" * 200, ("radio.example/" + "m" * 200)[:128]),
    ],
)
def test_url_stream_ids_name_host_and_mount(url: str, stream_id: str) -> None:
    name = default_name(parse_spec(f"url:{url}"))
    assert name == stream_id and check_stream_id(name) == name
