"""The daemon's TOML config: defaults, every error at once with its key path, overrides, check-config."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from genretag.cli.main import cli
from genretag.daemon.config import Config, ConfigError, load_config
from genretag.daemon.keys import generate_keypair

BAD = """
[model]
path = "no-such-model"
backend = "theano"
runtime = "onnxruntime"
precision = "int4"
[batch]
max_wait_ms = -5
max_batch_size = "big"
max_age_ms = -1
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
    "model.runtime: must be one of auto, openvino, keras",
    "model.precision: must be one of auto, f32",
    "model.backend: must be one of tensorflow, jax, torch",
    "batch.colour: unknown key",
    "batch.max_batch_size: must be int, got str 'big'",
    "batch.max_wait_ms: must be > 0",
    "batch.max_age_ms: must be 0 (no age bound) or at most 60000",
    "window.hop_seconds: must be 0.05..60 seconds",
    'smoothing.method: must be "ema" or "mean"',
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
    path.write_text(
        f'[model]\npath = "{artifact}"\n[publish]\nscores = true\n'
        '[metrics]\naddress = "0.0.0.0:9464"\nallow_public = true\n'
        '[[source]]\nspec = "file:music/a b.wav?rate=0"\n'
        '[[source]]\nspec = "zmq:tcp://127.0.0.1:5555"\n'
    )
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
    path.write_text(
        f'[model]\npath = "{artifact}"\n[batch]\nmax_batch_size = 8\nmax_wait_ms = 20\n'
        '[[source]]\nspec = "zmq:tcp://127.0.0.1:5555"\n'
    )
    config = load_config(path, {"batch.max_wait_ms": 5, "source": [{"spec": "zmq:tcp://127.0.0.1:6000"}]})
    assert (config.batch.max_batch_size, config.batch.max_wait_ms) == (8, 5.0)
    assert [s.spec for s in config.sources] == ["zmq:tcp://127.0.0.1:6000"]
    with pytest.raises(ConfigError) as err:
        load_config(path, {"publish.address": "tcp://10.1.2.3:5556"})
    assert err.value.problems[0].startswith("publish.address: the event publisher binds '10.1.2.3'")


def test_the_age_bound_leaves_room_for_a_batch_to_close() -> None:
    assert load_config(None, check_model=False).batch.max_age_ms == 500.0
    off = load_config(None, {"batch.max_wait_ms": 800, "batch.max_age_ms": 0}, check_model=False)
    assert (off.batch.max_wait_ms, off.batch.max_age_ms) == (800, 0)
    with pytest.raises(ConfigError) as err:  # a lone window would be stale by the time its batch closed
        load_config(None, {"batch.max_wait_ms": 800}, check_model=False)
    assert err.value.problems == [
        "batch.max_age_ms: must be 0 (no age bound) or more than batch.max_wait_ms (800), got 500"
    ]


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[batch\nmax_wait_ms = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def _keys(root: Path) -> Path:
    """daemon.key_secret plus a clients/ directory holding one authorised public key."""
    generate_keypair(root, "daemon")
    generate_keypair(root / "clients", "producer")[1].unlink()
    return root


def test_every_key_problem_is_reported_at_once(tmp_path: Path, artifact: Path) -> None:
    keys = _keys(tmp_path / "keys")
    (tmp_path / "open.key_secret").write_text((keys / "daemon.key_secret").read_text())
    (tmp_path / "open.key_secret").chmod(0o644)
    public_only = keys / "daemon.key"
    other_secret = generate_keypair(tmp_path, "other")[1].read_text()
    mismatched = tmp_path / "mismatched.key_secret"  # another key pair's secret under daemon's public key
    mismatched.write_text(public_only.read_text() + other_secret[other_secret.index("    secret-key") :])
    mismatched.chmod(0o600)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad-clients").mkdir()
    (tmp_path / "bad-clients" / "typo.key").write_text('curve\n    public-key = "too-short"\n')
    (tmp_path / "bad-clients" / "notes.key").write_text("just text\n")
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "keys.toml"
    path.write_text(
        f'[model]\npath = "{artifact}"\n'
        '[publish]\naddress = "tcp://0.0.0.0:5556"\ncurve_secret_key = "keys/daemon.key_secret"\n'  # no list
        '[[source]]\nspec = "zmq:tcp://127.0.0.1:5555"\ncurve_secret_key = "missing.key_secret"\n'
        'curve_clients = "empty"\n'
        '[[source]]\nspec = "zmq:tcp://127.0.0.1:5557"\ncurve_secret_key = "open.key_secret"\n'
        'curve_clients = "bad-clients"\n'
        '[[source]]\nspec = "zmq:tcp://127.0.0.1:5558"\ncurve_secret_key = "keys/daemon.key"\n'
        '[[source]]\nspec = "zmq:tcp://127.0.0.1:5559"\ncurve_secret_key = "mismatched.key_secret"\n'
        '[[source]]\nspec = "zmq:tcp://127.0.0.1:5560"\ncurve_secret_key = "a-file/x.key_secret"\n'
        '[[source]]\nspec = "zmq:tcp://127.0.0.1:5561"\ncurve_clients = "keys/clients"\n'
        '[[source]]\nspec = "mic:"\ncurve_secret_key = "keys/daemon.key_secret"\n'
    )
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 1
    lines = [line[len(f"{path}: ") :] for line in result.output.splitlines() if line.startswith(f"{path}: ")]
    expected = [
        f"source[0].curve_secret_key: {tmp_path}/missing.key_secret: no such key file",
        f"source[0].curve_clients: {tmp_path}/empty: holds no client public key",
        f"source[1].curve_secret_key: {tmp_path}/open.key_secret: secret key file is readable by every user "
        "(mode 644); refused",
        f"source[1].curve_clients: {tmp_path}/bad-clients/notes.key: no public key in it",
        f"source[1].curve_clients: {tmp_path}/bad-clients/typo.key: the public key is not a 40-character Z85",
        f"source[2].curve_secret_key: {keys}/daemon.key: no secret key in it",
        f"source[3].curve_secret_key: {mismatched}: the public key does not belong to the secret key",
        f"source[4].curve_secret_key: {tmp_path}/a-file/x.key_secret: cannot read: Not a directory",
        "source[5].curve_clients: needs source[5].curve_secret_key",
        "source[6].curve_secret_key: only zmq: sources take curve keys",
        "publish.address: the event publisher binds '0.0.0.0', which is not a loopback address, without "
        "authentication: set curve keys (publish.curve_secret_key",
    ]
    assert len(lines) == len(expected), result.output
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)


def test_public_binds_with_curve_keys_are_valid(tmp_path: Path, artifact: Path) -> None:
    _keys(tmp_path / "keys")
    path = tmp_path / "public.toml"
    secured = 'curve_secret_key = "keys/daemon.key_secret"\ncurve_clients = "keys/clients"\n'
    path.write_text(
        f'[model]\npath = "{artifact}"\n[publish]\naddress = "tcp://0.0.0.0:5556"\n{secured}'
        f'[[source]]\nspec = "zmq:tcp://0.0.0.0:5555"\n{secured}'
        '[[source]]\nspec = "zmq:tcp://0.0.0.0:5557"\nallow_public = true\n'
    )
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    config = load_config(path)
    assert config.publish.curve_secret_key == str(tmp_path / "keys" / "daemon.key_secret")
    assert config.sources[0].curve_clients == str(tmp_path / "keys" / "clients")
    assert config.sources[1].curve_secret_key is None and config.sources[1].allow_public


@pytest.mark.parametrize(
    "publish, source, metrics",
    [
        ("tcp://127.0.0.1:notaport", "zmq:tcp://127.0.0.1:99999", "127.0.0.1:99999"),
        ("tcp://127.0.0.1:99999", "zmq:tcp://127.0.0.1:", "127.0.0.1:http"),
        ("tcp://:5556", "zmq:tcp://127.0.0.1:5555x", ":9464"),
    ],
)
def test_check_config_refuses_every_address_serve_would_refuse(
    tmp_path: Path, artifact: Path, publish: str, source: str, metrics: str
) -> None:
    """Issue 14.5: libzmq refuses a port that is not a number only at bind time, after the model has
    loaded, and binds a random port for one above 65535; check-config must say so first."""
    path = tmp_path / "ports.toml"
    path.write_text(
        f'[model]\npath = "{artifact}"\n[publish]\naddress = "{publish}"\n'
        f'[metrics]\naddress = "{metrics}"\n[[source]]\nspec = "{source}"\n'
    )
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 1, result.output
    lines = [line[len(f"{path}: ") :] for line in result.output.splitlines() if line.startswith(f"{path}: ")]
    assert [line.split(":")[0] for line in lines] == ["source[0].spec", "publish.address", "metrics.address"]
    assert all("port 0..65535" in line for line in lines), lines
    with pytest.raises(ConfigError):  # what serve validates is the same
        load_config(None, {"model.path": str(artifact), "publish.address": publish})


def test_valid_addresses_of_every_form(artifact: Path) -> None:
    for publish in (
        "tcp://127.0.0.1:*",
        "tcp://127.0.0.1:0",
        "tcp://[::1]:5556",
        "tcp://localhost:65535",
        "ipc:///tmp/genretag.sock",
    ):
        config = load_config(
            None,
            {
                "model.path": str(artifact),
                "publish.address": publish,
                "metrics.address": "[::1]:0",
                "source": [{"spec": "zmq:tcp://[::1]:*"}],
            },
        )
        assert config.publish.address == publish
