"""Readers that turn a labelled-audio layout on disk (what ``dataset build`` is given) into a flat
list of clips.  (Not the daemon's sources, which are live audio inputs; and not the collections
that leave-one-source-out holds out, which ``training.corpus`` calls sources.)

Three layouts are understood: a manifest CSV, one folder per genre, and the
FMA layout (``fma_metadata/tracks.csv`` beside ``fma_small/`` etc.).  Every
reader returns the same :class:`LayoutScan`, so splitting and shard writing
never care where the clips came from.  Rows that cannot become a clip (no
path, no label, a duplicate) are returned as :class:`Skipped` entries rather
than dropped, so nothing silently disappears from a build.
"""

from __future__ import annotations

import csv
import json
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from genretag.training.storage import Location, is_remote, location, resolved

AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".ogg", ".flac", ".au"})
LAYOUTS = ("manifest", "folders", "fma")
FMA_TRACKS = Path("fma_metadata") / "tracks.csv"
# fma_medium holds the small and medium subsets, fma_large all three, and so on.
FMA_AUDIO_SUBSETS = {
    "fma_full": {"small", "medium", "large", "full"},
    "fma_large": {"small", "medium", "large"},
    "fma_medium": {"small", "medium"},
    "fma_small": {"small"},
}
_SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "dev": "dev",
    "val": "dev",
    "valid": "dev",
    "validation": "dev",
    "test": "test",
}


class LayoutError(ValueError):
    """The source cannot be read as the layout it claims to be; ``str(err)`` says why."""


@dataclass(frozen=True)
class ClipSpec:
    """One labelled audio file of a source.

    ``clip_id`` is the path relative to the source root (POSIX separators): it
    is stable across machines, so it identifies a clip in shards and indexes.
    ``group`` is the split unit (artist when known, else the clip itself).
    """

    path: Location
    clip_id: str
    labels: tuple[str, ...]
    group: str
    split: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A source entry that produced no record, and why."""

    clip_id: str
    reason: str


@dataclass
class LayoutScan:
    """What a source reader found: clips to decode and entries already rejected."""

    kind: str
    root: Location
    clips: list[ClipSpec]
    skipped: list[Skipped] = field(default_factory=list)


def normalize_split(value: str) -> str:
    """Map ``train/training``, ``dev/val/validation`` and ``test`` to train/dev/test."""
    name = _SPLIT_NAMES.get(value.strip().lower())
    if name is None:
        raise LayoutError(f"unknown split {value!r}: use train, dev (or val/validation) or test")
    return name


def detect_layout(source: Location) -> str:
    """Guess the layout: a ``.csv`` file is a manifest, a folder with FMA metadata is FMA."""
    if source.is_file():
        if source.suffix.lower() == ".csv":
            return "manifest"
        raise LayoutError(f"{source}: a file source must be a manifest .csv")
    if (source / FMA_TRACKS).is_file():
        return "fma"
    return "folders"


def read_layout(source: str | os.PathLike[str], kind: str | None = None) -> LayoutScan:
    """Read ``source`` (a path, or a URL: see :mod:`genretag.training.storage`) as ``kind``
    (one of :data:`LAYOUTS`; None: detect)."""
    source = location(source)
    if not is_remote(source):
        source = Path(os.path.abspath(source))
    if not source.exists():
        raise LayoutError(f"{source}: no such file or folder")
    kind = kind or detect_layout(source)
    readers = {"manifest": read_manifest_csv, "folders": read_genre_folders, "fma": read_fma}
    if kind not in readers:
        raise LayoutError(f"unknown source kind {kind!r}; expected one of {LAYOUTS}")
    return readers[kind](source)


def _dedupe(clips: list[ClipSpec], skipped: list[Skipped]) -> list[ClipSpec]:
    """Keep the first clip of each clip_id; later ones become skipped entries."""
    seen: set[str] = set()
    kept = []
    for clip in clips:
        if clip.clip_id in seen:
            skipped.append(Skipped(clip.clip_id, "duplicate entry for the same file"))
            continue
        seen.add(clip.clip_id)
        kept.append(clip)
    return kept


def read_manifest_csv(manifest: Location) -> LayoutScan:
    """Read a manifest CSV: ``path``, ``labels`` (``;``-separated), optional
    ``artist`` or ``group``, optional ``split``.  Relative paths are resolved
    against the manifest's folder, without following symlinks, so a linked
    audio folder still gives relative clip ids."""
    root = manifest.parent if is_remote(manifest) else Path(os.path.abspath(manifest.parent))
    clips: list[ClipSpec] = []
    skipped: list[Skipped] = []
    with manifest.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        if not {"path", "labels"} <= columns:
            raise LayoutError(f"{manifest}: needs columns 'path' and 'labels', has {sorted(columns)}")
        group_col = "group" if "group" in columns else "artist" if "artist" in columns else None
        for line, row in enumerate(reader, start=2):
            raw_path = (row.get("path") or "").strip()
            if not raw_path:
                skipped.append(Skipped(f"{manifest.name}:{line}", "row has an empty path"))
                continue
            path = resolved(root, raw_path)
            clip_id = (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()
            labels = tuple(sorted({s.strip() for s in (row.get("labels") or "").split(";")} - {""}))
            if not labels:
                skipped.append(Skipped(clip_id, f"{manifest.name}:{line}: no labels"))
                continue
            group = ((row.get(group_col) or "") if group_col else "").strip() or clip_id
            split_value = (row.get("split") or "").strip()
            try:
                split = normalize_split(split_value) if split_value else None
            except LayoutError as err:
                raise LayoutError(f"{manifest}:{line}: {err}") from None
            clips.append(ClipSpec(path, clip_id, labels, group, split))
    return LayoutScan("manifest", root, _dedupe(clips, skipped), skipped)


def read_genre_folders(root: Location) -> LayoutScan:
    """Read ``root/<genre>/*.{wav,mp3,ogg,flac,au}`` (extensions case-insensitive).

    Audio files lying directly in ``root`` have no genre and are listed as skipped.
    """
    clips: list[ClipSpec] = []
    skipped: list[Skipped] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in AUDIO_EXTENSIONS:
            skipped.append(Skipped(entry.name, "audio file outside any genre folder"))
        if not entry.is_dir():
            continue
        for path in sorted(entry.iterdir()):
            if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
                clip_id = path.relative_to(root).as_posix()
                clips.append(ClipSpec(path, clip_id, (entry.name,), clip_id))
    if not clips and not skipped:
        raise LayoutError(f"{root}: no <genre>/<audio file> found (extensions {sorted(AUDIO_EXTENSIONS)})")
    return LayoutScan("folders", root, clips, skipped)


def _fma_audio_dir(root: Location) -> Location:
    """The largest ``fma_*`` audio folder present (it holds every smaller subset)."""
    for name in FMA_AUDIO_SUBSETS:
        if (root / name).is_dir():
            return root / name
    raise LayoutError(f"{root}: FMA metadata found but no audio folder {sorted(FMA_AUDIO_SUBSETS)}")


def read_fma(root: Location) -> LayoutScan:
    """Read the FMA layout: labels from ``track.genre_top``, groups from
    ``artist.id``, splits from ``set.split`` (training/validation/test).

    ``tracks.csv`` has a two-level column header plus an index-name row
    (``track_id``), as written by pandas with ``header=[0, 1]``.
    """
    audio_dir = _fma_audio_dir(root)
    subsets = FMA_AUDIO_SUBSETS[audio_dir.name]
    wanted = {("set", "split"), ("set", "subset"), ("track", "genre_top"), ("artist", "id")}
    clips: list[ClipSpec] = []
    skipped: list[Skipped] = []
    with (root / FMA_TRACKS).open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            top, sub, _index_name = next(reader), next(reader), next(reader)
        except StopIteration:
            raise LayoutError(f"{root / FMA_TRACKS}: shorter than its 3-row header") from None
        col = {(t, s): i for i, (t, s) in enumerate(zip(top, sub, strict=False))}
        missing = wanted - col.keys()
        if missing:
            raise LayoutError(f"{root / FMA_TRACKS}: missing columns {sorted(missing)}")
        for row in reader:
            if not row or row[col["set", "subset"]] not in subsets:
                continue
            if not row[0].isdigit():
                skipped.append(Skipped(f"{FMA_TRACKS.as_posix()}:{row[0]}", "track_id is not a number"))
                continue
            track_id = int(row[0])
            path = audio_dir / f"{track_id:06d}"[:3] / f"{track_id:06d}.mp3"
            clip_id = path.relative_to(root).as_posix()
            genre = row[col["track", "genre_top"]].strip()
            if not genre:
                skipped.append(Skipped(clip_id, "no top-level genre (track.genre_top is empty)"))
                continue
            split = row[col["set", "split"]].strip()
            artist = row[col["artist", "id"]].strip()
            group = f"artist:{artist}" if artist else clip_id
            clips.append(ClipSpec(path, clip_id, (genre,), group, normalize_split(split) if split else None))
    return LayoutScan("fma", root, clips, skipped)


def load_label_map(path: Path) -> dict[str, str]:
    """Read a label map of raw label -> new label.

    ``.csv``: two columns ``raw,label`` with that header; ``.json``: an object
    ``{"raw": "label"}``; ``.toml``: top-level ``"raw" = "label"`` pairs.
    Several raw labels may map to one new label (a merge).
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not {"raw", "label"} <= set(reader.fieldnames or []):
                raise LayoutError(f"{path}: a CSV label map needs columns 'raw' and 'label'")
            mapping = {row["raw"].strip(): row["label"].strip() for row in reader}
    elif suffix in (".json", ".toml"):
        text = path.read_text(encoding="utf-8")
        try:
            mapping = json.loads(text) if suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as err:
            raise LayoutError(f"{path}: not valid {suffix[1:].upper()}: {err}") from None
    else:
        raise LayoutError(f"{path}: label map must be .csv, .json or .toml")
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items()
    ):
        raise LayoutError(f"{path}: label map must map raw label strings to non-empty strings")
    return mapping


def apply_label_map(scan: LayoutScan, mapping: dict[str, str]) -> LayoutScan:
    """Rename/merge labels; drop labels not in ``mapping``; skip clips left with none."""
    clips, skipped = [], list(scan.skipped)
    for clip in scan.clips:
        labels = tuple(sorted({mapping[raw] for raw in clip.labels if raw in mapping}))
        if labels:
            clips.append(replace(clip, labels=labels))
        else:
            raw = ";".join(clip.labels)
            skipped.append(Skipped(clip.clip_id, f"no label left after label map (raw: {raw})"))
    return replace(scan, clips=clips, skipped=skipped)
