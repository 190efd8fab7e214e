"""The ZeroMQ PCM input format: round trips, every kind of garbage, sequence bookkeeping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zmq

from genretag.daemon.protocol import (
    FrameError,
    Limits,
    SeqCheck,
    SequenceTracker,
    check_chunk,
    decode_frame,
    encode_frame,
)


def _parts(header: dict[str, object] | bytes, pcm: bytes = b"\0\0" * 4, stream: bytes = b"s1") -> list[bytes]:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return [stream, raw, pcm]


GOOD = {"sr": 16000, "channels": 1, "dtype": "int16", "seq": 0}


@pytest.mark.parametrize("dtype", ["int16", "float32"])
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip_through_a_real_socket(dtype: str, channels: int) -> None:
    rng = np.random.default_rng(channels)
    pcm = rng.uniform(-1, 1, (480, channels)).astype(np.float32)
    if dtype == "int16":
        pcm = (pcm * 32767).astype(np.int16)
    sent = pcm[:, 0] if channels == 1 else pcm
    with zmq.Context() as ctx, ctx.socket(zmq.PULL) as pull, ctx.socket(zmq.PUSH) as push:
        pull.setsockopt(zmq.RCVTIMEO, 5000)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{port}")
        push.send_multipart(encode_frame("radio-1", sent, 44100, 7))
        received = pull.recv_multipart(copy=False)
    frame = decode_frame([part.buffer for part in received])
    assert (frame.stream_id, frame.sr, frame.channels, frame.seq) == ("radio-1", 44100, channels, 7)
    assert frame.samples.dtype == np.dtype(dtype) and frame.samples.shape == (480, channels)
    np.testing.assert_array_equal(frame.samples, pcm)
    assert frame.seconds == pytest.approx(480 / 44100)


def test_big_endian_input_is_sent_little_endian() -> None:
    pcm = np.arange(-3, 3, dtype=">i2")
    frame = decode_frame(encode_frame("s", pcm, 8000, 0))
    np.testing.assert_array_equal(frame.samples[:, 0], pcm)


def test_decoded_samples_are_a_view_of_the_message() -> None:
    parts = encode_frame("s", np.zeros(64, np.float32), 16000, 0)
    samples = decode_frame(parts).samples
    assert not samples.flags.owndata and not samples.flags.writeable


@pytest.mark.parametrize(
    "parts, reason",
    [
        ([b"s1", json.dumps(GOOD).encode()], "parts"),
        (_parts(GOOD) + [b"extra"], "parts"),
        (_parts(b"{not json"), "bad_header"),
        (_parts(b"\xff\xfe\x00"), "bad_header"),
        (_parts(b"[1, 2]"), "bad_header"),
        (_parts(b" " * 2000), "bad_header"),
        (_parts({k: v for k, v in GOOD.items() if k != "seq"}), "bad_header"),
        (_parts({**GOOD, "sr": "16000"}), "bad_header"),
        (_parts({**GOOD, "channels": True}), "bad_header"),
        (_parts({**GOOD, "seq": -1}), "bad_header"),
        (_parts({**GOOD, "v": 2}), "bad_version"),
        (_parts({**GOOD, "dtype": "int24"}), "bad_dtype"),
        (_parts({k: v for k, v in GOOD.items() if k != "dtype"}), "bad_dtype"),
        (_parts({**GOOD, "sr": 4000}), "bad_rate"),
        (_parts({**GOOD, "sr": 384000}), "bad_rate"),
        (_parts({**GOOD, "channels": 0}), "bad_channels"),
        (_parts({**GOOD, "channels": 9}), "bad_channels"),
        (_parts(GOOD, pcm=b""), "empty"),
        (_parts(GOOD, pcm=b"\0" * 7), "odd_byte_count"),
        (_parts({**GOOD, "channels": 2}, pcm=b"\0" * 6), "odd_byte_count"),
        (_parts({**GOOD, "dtype": "float32"}, pcm=np.array([0.1, np.nan], "<f4").tobytes()), "nan"),
        (_parts({**GOOD, "dtype": "float32"}, pcm=np.array([np.inf, 0.0], "<f4").tobytes()), "nan"),
        (_parts(GOOD, stream=b""), "bad_stream_id"),
        (_parts(GOOD, stream=b"two words"), "bad_stream_id"),
        (_parts(GOOD, stream=b"tab\there"), "bad_stream_id"),
        (_parts(GOOD, stream=b"\xc3\x28"), "bad_stream_id"),
        (_parts(GOOD, stream=b"x" * 129), "bad_stream_id"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_garbage_is_refused_with_a_reason(parts: list[bytes], reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(parts)
    assert caught.value.reason == reason
    assert str(caught.value).startswith(f"{reason}: ") and len(str(caught.value)) > len(reason) + 5


def test_unknown_header_keys_and_non_ascii_stream_ids_are_fine() -> None:
    frame = decode_frame(_parts({**GOOD, "v": 1, "codec": "pcm"}, stream="Radio-Zürich".encode()))
    assert frame.stream_id == "Radio-Zürich" and frame.samples.shape == (4, 1)


def test_a_huge_frame_is_refused_before_any_sample_array_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_allocation(*args: object, **kwargs: object) -> None:
        raise AssertionError("decode_frame made an array of a frame it should refuse")

    monkeypatch.setattr(np, "frombuffer", no_allocation)
    with pytest.raises(FrameError) as caught:
        decode_frame(_parts(GOOD, pcm=bytes((1 << 20) + 2)))
    assert caught.value.reason == "too_large"
    small_limit = Limits(max_frame_bytes=4)
    with pytest.raises(FrameError, match="too_large"):
        decode_frame(_parts(GOOD, pcm=b"\0" * 8), small_limit)


def test_limits_are_configurable() -> None:
    strict = Limits(min_sr=16000, max_sr=48000, max_channels=2)
    with pytest.raises(FrameError, match="bad_rate"):
        decode_frame(_parts({**GOOD, "sr": 8000}), strict)
    with pytest.raises(FrameError, match="bad_channels"):
        decode_frame(_parts({**GOOD, "channels": 4}, pcm=b"\0" * 16), strict)


def test_every_sources_chunks_meet_the_same_limits_with_the_same_reasons() -> None:
    """check_chunk (file and mic chunks) and decode_frame (ZeroMQ messages): one set of rules."""
    strict = Limits(min_sr=16000, max_sr=48000, max_channels=2)
    check_chunk(np.zeros((4, 2), np.int16), 48000, strict)
    check_chunk(np.zeros(4, np.float32), 16000, strict)
    refused = [
        (np.zeros(4, np.int16), 8000, "bad_rate"),
        (np.zeros(4, np.int16), 96000, "bad_rate"),
        (np.zeros(4, np.int16), 16000.0, "bad_rate"),
        (np.zeros((4, 4), np.int16), 16000, "bad_channels"),
        (np.zeros(4, np.float64), 16000, "bad_dtype"),
        (np.array([0.0, np.inf], np.float32), 16000, "nan"),
    ]
    for samples, sr, reason in refused:
        with pytest.raises(FrameError) as caught:
            check_chunk(samples, sr, strict)  # type: ignore[arg-type]
        assert caught.value.reason == reason, (samples, sr)
    with pytest.raises(FrameError) as caught:
        decode_frame(_parts({**GOOD, "sr": 96000}), strict)
    assert caught.value.reason == "bad_rate"


def test_encode_refuses_what_a_receiver_would_refuse() -> None:
    with pytest.raises(FrameError, match="bad_dtype"):
        encode_frame("s", np.zeros(4, np.float64), 16000, 0)
    with pytest.raises(FrameError, match="bad_stream_id"):
        encode_frame("a b", np.zeros(4, np.int16), 16000, 0)
    with pytest.raises(FrameError, match="nan"):
        encode_frame("s", np.full(4, np.nan, np.float32), 16000, 0)
    with pytest.raises(FrameError, match="bad_rate"):
        encode_frame("s", np.zeros(4, np.int16), 1000, 0)


def test_sequence_gaps_and_restarts_are_counted() -> None:
    tracker = SequenceTracker()
    steps = [tracker.observe(seq) for seq in (5, 6, 7, 10, 11, 0, 1, 1, 4)]
    assert steps == [
        SeqCheck(0, False),
        SeqCheck(0, False),
        SeqCheck(0, False),
        SeqCheck(2, False),
        SeqCheck(0, False),
        SeqCheck(0, True),
        SeqCheck(0, False),
        SeqCheck(0, True),
        SeqCheck(2, False),
    ]
    assert (tracker.messages, tracker.missed, tracker.restarts, tracker.last) == (9, 4, 2, 4)
