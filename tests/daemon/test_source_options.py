"""Source kinds as components: one registry entry each, typed options from the spec's query or the
[[source]] table, checked all at once; error kinds as an enum; metrics labelled by source kind."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from genretag.daemon.config import ConfigError, load_config, parse_config
from genretag.daemon.metrics import Metrics
from genretag.daemon.protocol import ErrorKind, FrameError, decode_frame
from genretag.daemon.sources.base import BuildEnv
from genretag.daemon.sources.file import FileConfig, FileSource
from genretag.daemon.sources.mic import MicConfig, MicSource
from genretag.daemon.sources.registry import KINDS, build_source, parse_source, parse_spec
from genretag.daemon.sources.url import UrlConfig, UrlSource
from genretag.daemon.sources.zmq import ZmqConfig, ZmqSource


def test_one_entry_per_kind() -> None:
    assert {name: (kind.config, kind.source) for name, kind in KINDS.items()} == {
        "file": (FileConfig, FileSource),
        "zmq": (ZmqConfig, ZmqSource),
        "url": (UrlConfig, UrlSource),
        "mic": (MicConfig, MicSource),
    }
    for kind in KINDS.values():
        defaults = kind.config()
        assert dataclasses.is_dataclass(defaults) and kind.options
        assert [problem for problem in getattr(defaults, "problems", list)()] == []


def test_defaults_are_the_source_classes_own() -> None:
    """The options' defaults are those the classes had: a spec without options builds the same source."""
    assert UrlConfig() == UrlConfig(
        connect_seconds=20.0, stall_seconds=10.0, backoff_max=60.0, sample_rate=44100
    )
    assert MicConfig().backoff_max == 30.0 and MicConfig().sample_rate is None
    assert ZmqConfig() == ZmqConfig(idle=5.0, workers=0, hwm=1000)
    assert FileConfig() == FileConfig(rate=1.0, loop=False)


def test_options_come_from_the_query_or_the_table() -> None:
    by_query = parse_spec("file:a.wav?rate=0&loop=yes")
    by_table = parse_spec("file:a.wav", {"rate": 0, "loop": True})
    assert by_query.config == by_table.config == FileConfig(rate=0.0, loop=True)
    assert by_table.options == {"rate": 0.0, "loop": True}
    zmq = parse_spec("zmq:tcp://127.0.0.1:5555?idle=2", {"workers": 3, "hwm": 50})
    assert zmq.config == ZmqConfig(idle=2.0, workers=3, hwm=50)
    url = parse_spec("url:http://radio.example/live?token=x", {"stall_seconds": 15, "backoff_max": 300})
    assert url.target == "http://radio.example/live?token=x"  # a URL's query is the URL's
    config = url.config
    assert (config.stall_seconds, config.backoff_max, config.connect_seconds) == (15.0, 300.0, 20.0)


def test_every_problem_is_reported_with_its_key() -> None:
    spec, problems = parse_source(
        "url:http://radio.example/live", {"stall_seconds": "long", "channels": 3, "colour": "red"}
    )
    assert spec is None
    assert sorted(key for key, _ in problems) == ["channels", "colour", "stall_seconds"]
    spec, problems = parse_source("zmq:tcp://127.0.0.1:5555?idle=0&hwm=x", {"idle": 2, "workers": 65})
    assert spec is None and [key for key, _ in problems] == ["spec", "spec", "workers", "idle"]
    assert "given in the spec's query too" in problems[-1][1]
    _, problems = parse_source("mic:", {"block_seconds": 0.5, "stall_seconds": 0.2})
    assert problems == [("stall_seconds", "must exceed block_seconds (0.5)")]
    _, problems = parse_source("url:http://radio.example/live", {"backoff_initial": 90})
    assert problems == [("backoff_initial", "must be at most backoff_max (60), got 90")]
    with pytest.raises(ValueError, match=r"unknown file: option 'colour' \(allowed: rate, loop, chunk_"):
        parse_spec("file:x?rate=1&colour=red")
    assert parse_spec("mic:?rate=1").target == "?rate=1"  # a device name: mic: has no query


def test_check_config_reports_source_options_with_key_paths(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    path = tmp_path / "genretag.toml"
    path.write_text(
        '[[source]]\nspec = "url:http://radio.example/live"\n'
        'stall_seconds = 0\nbackoff_factor = "x"\n'
        '[[source]]\nspec = "file:a.wav?rate=2000"\nloop = 1\n'
        '[[source]]\nspec = "mic:"\nchannels = 3\nsample_rate = 48000\n'
    )  # valid
    with pytest.raises(ConfigError) as err:
        load_config(path, check_model=False)
    assert err.value.problems == [
        "source[0].stall_seconds: must be > 0 and at most 3600 seconds (got 0.0)",
        "source[0].backoff_factor: must be float, got str 'x'",
        "source[1].spec: rate must be 0 (as fast as possible) or a speed up to 1000 (got 2000.0)",
        "source[1].loop: must be bool, got int 1",
    ]
    path.write_text(
        '[[source]]\nspec = "file:a.wav"\nrate = 0\n'
        '[[source]]\nspec = "url:http://radio.example/live"\nconnect_seconds = 30\n'
    )
    config = load_config(path, check_model=False)
    assert config.sources[0].spec == f"file:{tmp_path / 'a.wav'}"  # relative to the file, options apart
    assert config.sources[0].options == {"rate": 0.0}
    assert config.sources[1].source.config.connect_seconds == 30.0


def test_only_table_keys_of_the_kind_are_known() -> None:
    with pytest.raises(ConfigError, match=r"source\[0\].idle: unknown key .* for file: sources: rate, loop"):
        parse_config({"source": [{"spec": "file:/dev/null", "idle": 5}]}, check_model=False)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the url: source needs ffmpeg")
def test_a_url_source_is_built_with_its_options() -> None:
    spec = parse_spec(
        "url:http://radio.example/live", {"connect_seconds": 7, "stall_seconds": 3, "channels": 2}
    )
    source = build_source(spec, "radio", BuildEnv())
    assert isinstance(source, UrlSource)
    assert (source.connect_seconds, source.stall_seconds, source.channels) == (7.0, 3.0, 2)


def test_sources_check_their_options_by_the_same_rules() -> None:
    with pytest.raises(ValueError, match="mic source 'm': channels must be 1..64"):
        MicSource("m", None, channels=0)
    with pytest.raises(ValueError, match="url source 'r': stall_seconds must exceed chunk_seconds"):
        UrlSource("r", "http://radio.example/live", stall_seconds=0.05)


def test_error_kinds_keep_their_words() -> None:
    assert {kind.value for kind in ErrorKind} == {
        "parts",
        "bad_stream_id",
        "bad_header",
        "bad_version",
        "bad_dtype",
        "bad_rate",
        "bad_channels",
        "empty",
        "too_large",
        "odd_byte_count",
        "nan",
        "bad_audio",
        "decode",
        "seq_gap",
        "seq_restart",
        "reconnect",
        "device",
        "device_missing",
        "overflow",
        "stream_refused",
        "other_shard",
        "ingest_worker",
        "ingest_router",
    }
    assert {kind for kind in ErrorKind if kind.refused_audio} == {
        ErrorKind.PARTS,
        ErrorKind.BAD_STREAM_ID,
        ErrorKind.BAD_HEADER,
        ErrorKind.BAD_VERSION,
        ErrorKind.BAD_DTYPE,
        ErrorKind.BAD_RATE,
        ErrorKind.BAD_CHANNELS,
        ErrorKind.EMPTY,
        ErrorKind.TOO_LARGE,
        ErrorKind.ODD_BYTE_COUNT,
        ErrorKind.NAN,
        ErrorKind.BAD_AUDIO,
        ErrorKind.DECODE,
    }
    with pytest.raises(FrameError) as err:
        decode_frame([b"s", b"{}"])
    assert err.value.reason is ErrorKind.PARTS and str(err.value).startswith("parts: ")
    assert f"{ErrorKind.SEQ_GAP}" == "seq_gap"


def test_source_metrics_carry_the_source_kind() -> None:
    metrics = Metrics()
    metrics.stream(metrics.source_errors, "radio", ErrorKind.RECONNECT, "url").inc()
    metrics.stream(metrics.decode_errors, "a", ErrorKind.NAN, "zmq").inc()
    text = metrics.render().decode()
    assert 'genretag_source_errors_total{kind="reconnect",source_kind="url",stream="radio"} 1.0' in text
    assert 'genretag_decode_errors_total{reason="nan",source_kind="zmq",stream="a"} 1.0' in text
