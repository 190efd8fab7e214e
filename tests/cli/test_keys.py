"""``genretag keys generate`` and the CURVE options of ``send`` / ``subscribe`` (their use against a
real daemon is in tests/daemon/test_auth.py)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import zmq
import zmq.auth
from click.testing import CliRunner

from genretag.cli.main import cli
from genretag.daemon.keys import read_public, read_secret


def _genretag(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_generate_writes_a_private_secret_and_a_public_key(tmp_path: Path) -> None:
    keys = tmp_path / "new" / "dir"
    result = _genretag("keys", "generate", keys, "--name", "studio")
    assert result.returncode == 0, result.stderr
    public, secret = keys / "studio.key", keys / "studio.key_secret"
    assert f"public key: {public}" in result.stdout and f"secret key: {secret}" in result.stdout
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and stat.S_IMODE(public.stat().st_mode) == 0o644
    assert sorted(p.name for p in keys.iterdir()) == ["studio.key", "studio.key_secret"]  # no temp dir left
    pair = read_secret(secret)
    assert read_public(public) == pair[0] == zmq.curve_public(pair[1])
    assert zmq.auth.load_certificate(public) == (pair[0], None)  # the format pyzmq and czmq read
    assert "secret-key" not in public.read_text()


def test_generate_never_overwrites_a_key(tmp_path: Path) -> None:
    assert _genretag("keys", "generate", tmp_path).returncode == 0  # default name: genretag
    before = (tmp_path / "genretag.key_secret").read_bytes()
    again = _genretag("keys", "generate", tmp_path)
    assert again.returncode == 1 and "already exist" in again.stderr and "--name" in again.stderr
    assert (tmp_path / "genretag.key_secret").read_bytes() == before
    bad = _genretag("keys", "generate", tmp_path, "--name", "../escape")
    assert bad.returncode == 1 and "plain file name" in bad.stderr
    assert not (tmp_path.parent / "escape.key").exists()


def test_curve_options_are_checked_before_connecting(tmp_path: Path) -> None:
    runner = CliRunner()
    wav = tmp_path / "none.wav"
    lonely = runner.invoke(
        cli,
        [
            "send",
            str(wav),
            "--to",
            "tcp://127.0.0.1:1",
            "--stream",
            "s",
            "--curve-key",
            str(tmp_path / "c.key_secret"),
        ],
    )
    assert lonely.exit_code == 2 and "--curve-key needs --curve-server-key" in lonely.output
    missing = runner.invoke(
        cli, ["subscribe", "tcp://127.0.0.1:1", "--curve-server-key", str(tmp_path / "daemon.key")]
    )
    assert missing.exit_code == 2 and f"{tmp_path / 'daemon.key'}: no such key file" in missing.output
    assert runner.invoke(cli, ["keys", "generate", str(tmp_path), "--name", "c"]).exit_code == 0
    (tmp_path / "c.key_secret").chmod(0o644)
    exposed = runner.invoke(
        cli,
        [
            "send",
            str(wav),
            "--to",
            "tcp://127.0.0.1:1",
            "--stream",
            "s",
            "--curve-server-key",
            str(tmp_path / "c.key"),
            "--curve-key",
            str(tmp_path / "c.key_secret"),
        ],
    )
    assert exposed.exit_code == 2 and "readable by every user" in exposed.output
