"""Native libraries' notes on stderr (file descriptor 2) are dropped; everything else still gets through."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from genretag.pipeline.native_stderr import MPG123_NOTE, dropping

SHARED_MP3S = sorted(Path("/work/shared/data/mer4q/audio").glob("*/*.mp3"))[:12]


def test_only_the_notes_are_dropped(capfd: pytest.CaptureFixture[str]) -> None:
    with dropping(MPG123_NOTE):
        os.write(
            2,
            b"[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: part2_3_length (1216) too "
            b"large for available bit count (1152)\n",
        )
        os.write(2, b"a real problem\n")
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 4096.\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "a real problem\nafter\n"


def test_nested_and_raising_bodies_restore_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError), dropping(re.compile(rb"^x")):
        with dropping(re.compile(rb"^y")):
            os.write(2, b"x1\ny1\nz1\n")
        raise ValueError
    os.write(2, b"x2\n")
    assert capfd.readouterr().err == "z1\nx2\n"


@pytest.mark.skipif(not SHARED_MP3S, reason="no shared MP3s on this machine")
def test_decoding_good_mp3s_prints_nothing() -> None:
    """Issue 14.8: these MP3s made libmpg123 print "error:" lines (about one file in five)."""
    code = (
        "import sys; from genretag.pipeline.audio import decode\n"
        "for path in sys.argv[1:]: decode(path, 16000)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, SHARED_MP3S)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
