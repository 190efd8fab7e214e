"""The audio files a ``classify PATH...`` means, found before anything heavy is loaded.

Loading the model takes seconds; a typo'd path must not cost them, so every
path is looked at first and every problem reported at once.  A directory
stands for the audio files under it, recursively, in sorted order; there,
files whose suffix is not an audio format (covers, playlists, notes) and
hidden files are skipped and counted, so one ``cover.jpg`` does not turn a
whole album into a failure.  A file named on the command line is always
tried, whatever its suffix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# What libsndfile or ffmpeg decode, by suffix (lower case); anything else under a directory is skipped.
AUDIO_SUFFIXES = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".mp2",
        ".mpga",
        ".m4a",
        ".m4b",
        ".aac",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
        ".w64",
        ".wma",
        ".wv",
        ".ape",
        ".mka",
        ".webm",
        ".mp4",
        ".ac3",
        ".amr",
        ".alac",
        ".voc",
        ".ircam",
        ".sf",
        ".rf64",
    }
)


@dataclass
class AudioInputs:
    """The files to classify, in order, the problems with the paths given, and what was skipped."""

    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: dict[Path, int] = field(default_factory=dict)  # directory -> files skipped under it


def find_audio(paths: tuple[Path, ...] | list[Path]) -> AudioInputs:
    """Expand ``paths`` (files and directories) into audio files; see the module docstring."""
    found = AudioInputs()
    for path in paths:
        if path.is_dir():
            under = sorted(p for p in path.rglob("*") if p.is_file())
            audio = [p for p in under if is_audio_name(p.relative_to(path))]
            if len(audio) < len(under):
                found.skipped[path] = len(under) - len(audio)
            if not audio:
                found.problems.append(
                    f"{path}: a directory with no audio files under it (looked for "
                    f"{', '.join(sorted(s[1:] for s in AUDIO_SUFFIXES)[:8])}, ...)"
                )
            found.files += audio
        elif path.is_file():
            found.files.append(path)
        elif path.exists():
            found.problems.append(f"{path}: not a file or directory")
        else:
            found.problems.append(f"{path}: no such file or directory")
    return found


def is_audio_name(relative: Path) -> bool:
    """An audio suffix, and no hidden part (``.DS_Store``, ``._song.mp3``, ``.git/``)."""
    hidden = any(part.startswith(".") for part in relative.parts)
    return relative.suffix.lower() in AUDIO_SUFFIXES and not hidden
