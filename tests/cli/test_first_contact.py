"""What a newcomer meets first (issue 14): clear errors before anything heavy, honest help, a quiet stderr.

The commands run as a user runs them (``python -m genretag.cli.main`` in a
subprocess) where what matters is the process (its stderr, what it imported,
how long it took); in-process through click's runner otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from helpers.level_artifact import SR, save_level_artifact

from genretag.cli.main import cli
from genretag.cli.serve_cmd import DEMO_CLIPS, demo_files, demo_notice


def genretag(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def level_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Keras artifact (1 s windows at 8 kHz, labels by level): loads in a second, like any artifact."""
    out = tmp_path_factory.mktemp("art") / "level"
    save_level_artifact(out)
    return out


def _tone(seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_a_typo_fails_at_once_without_loading_the_model(tmp_path: Path) -> None:
    """Issue 14.6: every path is checked before the model (8-17 s on 2 cores) is loaded."""
    sf.write(tmp_path / "real.wav", _tone(2), SR)
    args = [str(tmp_path / name) for name in ("real.wav", "typo", "tpyo.wav")]
    code = (
        "import sys; from click.testing import CliRunner; from genretag.cli.main import cli; "
        f"r = CliRunner().invoke(cli, ['classify', *{args!r}]); "
        "print(r.exit_code, [m for m in ('tensorflow', 'keras') if m in sys.modules]); print(r.stderr)"
    )
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    elapsed = time.monotonic() - started
    first, *rest = out.stdout.splitlines()
    assert first == "2 []", out.stdout  # usage error, TensorFlow never imported
    assert [line for line in rest if line] == [
        f"genretag: error: {args[1]}: no such file or directory",
        f"genretag: error: {args[2]}: no such file or directory",
    ]
    assert elapsed < 5, elapsed  # a Python start and click; the model alone takes longer


def test_classify_a_directory_sorted_recursive_skipping_non_audio(
    tmp_path: Path, level_artifact: Path
) -> None:
    album = tmp_path / "album"
    (album / "disc 2").mkdir(parents=True)
    for name in ("b.wav", "A.flac", "disc 2/c.wav", ".hidden.wav"):
        sf.write(album / name, _tone(2), SR)
    (album / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (album / "notes.txt").write_text("liner notes")
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["classify", "--model", str(level_artifact), str(album)])
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        str(album / "A.flac"),
        str(album / "b.wav"),
        str(album / "disc 2" / "c.wav"),
    ]
    assert f"genretag: warning: {album}: skipped 3 file(s)" in result.stderr
    result = CliRunner().invoke(cli, ["classify", "--model", str(level_artifact), str(tmp_path / "empty")])
    assert result.exit_code == 2 and "a directory with no audio files under it" in result.stderr


def test_short_and_near_silent_clips_are_flagged(tmp_path: Path, level_artifact: Path) -> None:
    """Issue 14.7: 0.2 s of a tone, and a whisper at -70 dBFS, get a label and a warning."""
    sf.write(tmp_path / "short.wav", _tone(0.2), SR)
    sf.write(tmp_path / "whisper.wav", _tone(3, amplitude=0.0005), SR)
    sf.write(tmp_path / "fine.wav", _tone(3), SR)
    result = CliRunner().invoke(
        cli,
        [
            "classify",
            "--json",
            "--model",
            str(level_artifact),
            *(str(tmp_path / n) for n in ("short.wav", "whisper.wav", "fine.wav")),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = {Path(d["path"]).name: d for d in map(json.loads, result.stdout.splitlines())}
    assert lines["short.wav"]["warnings"] == ["shorter_than_window"]
    assert lines["whisper.wav"]["warnings"] == ["near_silent"]
    assert lines["fine.wav"]["warnings"] == [] and lines["fine.wav"]["seconds"] == 3.0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("genretag: warning: ")]
    assert len(warnings) == 2 and "short.wav: 0.20 s, shorter than one model window" in warnings[0]
    assert "whisper.wav" in warnings[1] and "silent or nearly so" in warnings[1]


@pytest.mark.slow
def test_classify_stderr_holds_only_what_the_user_must_read(tmp_path: Path, level_artifact: Path) -> None:
    """Issue 14.8: TensorFlow's C++ log lines (oneDNN, CPU features) no longer reach the user."""
    sf.write(tmp_path / "x.wav", _tone(2), SR)
    proc = genretag("classify", "--model", level_artifact, tmp_path / "x.wav")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr


def test_every_error_has_one_prefix(tmp_path: Path) -> None:
    """Issue 14.8: click's own errors and genretag's carry the same prefix; 14.10: flags named as flags."""
    proc = genretag("serve", "--source", "zmq:tcp://127.0.0.1:notaport", "--publish", "tcp://127.0.0.1:99999")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "genretag: error: --source 'zmq:tcp://127.0.0.1:notaport': must be tcp://HOST:PORT with a port "
        "0..65535 (* or 0: any free port), got 'tcp://127.0.0.1:notaport'",
        "genretag: error: --publish 'tcp://127.0.0.1:99999': must be tcp://HOST:PORT with a port 0..65535 "
        "(* or 0: any free port), got 'tcp://127.0.0.1:99999'",
    ]
    result = CliRunner().invoke(cli, ["serve", "--source", f"file:{tmp_path / 'nope.flac'}"])
    assert result.exit_code == 1
    missing = f"file:{tmp_path / 'nope.flac'}"
    assert result.stderr.startswith(f"genretag: error: --source {missing!r}: no such file")
    for args in (["no-such-command"], ["serve", "--max-batch", "0"], ["classify"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2
        errors = [line for line in result.stderr.splitlines() if "rror" in line]
        assert len(errors) == 1 and errors[0].startswith("genretag: error: "), result.stderr


def test_help_texts_say_what_they_mean(tmp_path: Path) -> None:
    """Issue 14.10: which model is the default; no reST markup; train's --model-type."""
    for command in ("classify", "serve", "evaluate"):
        text = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
        assert '"default" (musicnn, most accurate; used when --model is not given)' in text, command
        assert "[default]" not in text.replace("[default: ", ""), command
    assert "``" not in CliRunner().invoke(cli, ["devices", "--help"]).output
    train_help = CliRunner().invoke(cli, ["train", "--help"]).output
    assert "--model-type" in train_help and "--model " not in train_help
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "m"),
            "--model",
            "logreg",
            "--model-type",
            "knn",
        ],
    )
    assert result.exit_code == 2 and "disagree" in result.stderr
    result = CliRunner().invoke(cli, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "Missing option '--model-type'" in result.stderr


def test_the_demo_says_plainly_what_it_plays() -> None:
    """Issue 14.11: the demo clips are synthetic, and the newcomer is told so, each clip by name."""
    assert {path.name for path in demo_files()} == set(DEMO_CLIPS)
    notice = demo_notice()
    assert "tagging the bundled demo audio" in notice and "synthetic" in notice
    for path in demo_files():
        assert f"{path.stem}: {DEMO_CLIPS[path.name]}" in notice
