"""The daemon's TOML config: defaults, every error at once with its key path, overrides, check-config."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from genretag.cli.main import cli
from genretag.daemon.config import Config, ConfigError, load_config

BAD = """
[model]
path = "no-such-model"
backend = "theano"
[batch]
max_wait_ms = -5
max_batch_size = "big"
colour = "red"
[window]
hop_seconds = 0
[publish]
address = "tcp://0.0.0.0:5556"
[metrics]
address = "9464"
[smoothing]
method = "median"
[limits]
max_streams = 0
[extra]
x = 1
[[source]]
spec = "file:missing.flac?rate=2&loop=1"
[[source]]
spec = "ftp:x"
[[source]]
name = "no spec"
[[source]]
spec = "zmq:tcp://*:5555"
[[source]]
spec = "zmq:tcp://127.0.0.1:5555?idle=0"
"""

EXPECTED = [
    "extra: unknown section",
    "model.backend: must be one of tensorflow, jax, torch",
    "batch.colour: unknown key",
    "batch.max_batch_size: must be int, got str 'big'",
    "batch.max_wait_ms: must be > 0",
    "window.hop_seconds: must be 0.05..60 seconds",
    "smoothing.method: must be \"ema\" or \"mean\"",
    "limits.max_streams: must be 1..10000",
    "source[0].spec: no such file",
    "source[1].spec: 'ftp:x' is not KIND:TARGET",
    "source[2].spec: missing",
    "source[3].spec: the zmq source binds '*', which is not a loopback address",
    "source[4].spec: idle must be 0.1..3600 seconds",
    "publish.address: the event publisher binds '0.0.0.0'",
    "metrics.address: must be HOST:PORT",
    "model.path: ",  # relative to the file: <tmp>/no-such-model is not an artifact
]


def test_check_config_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(f"{path}: ")]
    assert len(lines) == len(EXPECTED), result.output
    for line, expected in zip(lines, EXPECTED, strict=True):
        assert line.startswith(f"{path}: {expected}"), (line, expected)
    assert "allow_public = true" in result.output


def test_valid_file_relative_paths_and_defaults(tmp_path: Path, artifact: Path) -> None:
    (tmp_path / "music").mkdir()
    sf.write(tmp_path / "music" / "a b.wav", [0.0] * 8000, 8000)
    path = tmp_path / "ok.toml"
    path.write_text(f'[model]\npath = "{artifact}"\n[publish]\nscores = true\n'
                    '[metrics]\naddress = "0.0.0.0:9464"\nallow_public = true\n'
                    '[[source]]\nspec = "file:music/a b.wav?rate=0"\n'
                    '[[source]]\nspec = "zmq:tcp://127.0.0.1:5555"\n')
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK (2 source(s))" in result.output
    config = load_config(path)
    assert config.sources[0].spec == f"file:{tmp_path / 'music' / 'a b.wav'}?rate=0"  # relative to the file
    assert config.publish.scores and config.batch == Config().batch
    assert (config.batch.max_batch_size, config.batch.max_wait_ms) == (64, 50.0)
    assert config.publish.address == "tcp://127.0.0.1:5556" and config.metrics.address == "0.0.0.0:9464"


def test_flags_override_the_file_and_are_checked_alike(tmp_path: Path, artifact: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[model]\npath = "{artifact}"\n[batch]\nmax_batch_size = 8\nmax_wait_ms = 20\n'
                    '[[source]]\nspec = "zmq:tcp://127.0.0.1:5555"\n')
    config = load_config(path, {"batch.max_wait_ms": 5, "source": [{"spec": "zmq:tcp://127.0.0.1:6000"}]})
    assert (config.batch.max_batch_size, config.batch.max_wait_ms) == (8, 5.0)
    assert [s.spec for s in config.sources] == ["zmq:tcp://127.0.0.1:6000"]
    with pytest.raises(ConfigError) as err:
        load_config(path, {"publish.address": "tcp://10.1.2.3:5556"})
    assert err.value.problems[0].startswith("publish.address: the event publisher binds '10.1.2.3'")


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[batch\nmax_wait_ms = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
