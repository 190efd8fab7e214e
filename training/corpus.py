"""Several labelled collections read as one corpus, with the facts cross-source selection needs.

The default model is chosen by how it does on music from sources it never
saw, so every clip carries its ``source`` (manifest column; else the
manifest's folder name) next to its artist group and its candidate genres.
Clip ids are ``<collection>/<path in its manifest>``: unique across
collections and stable across machines.

Artists are grouped case-insensitively across collections, and
:data:`ARTIST_ALIASES` joins names that are known to be one artist under two
spellings (GTZAN's anonymised artist groups), so no split puts an artist on
both sides.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genretag.training.label_sets import candidate_matrix, candidate_set
from genretag.training.layouts import LayoutError

#: Artist names (lower case) that stand for one artist group.  ``../shared/data/README.md``: the GTZAN
#: blues and reggae artists in ``music/`` are probably John Lee Hooker and Bob Marley of ``mer4q/``.
ARTIST_ALIASES: dict[str, str] = {
    "gtzan-artist-0": "john lee hooker",
    "gtzan-artist-352": "bob marley",
}


@dataclass(frozen=True)
class CorpusClip:
    """One clip of a collection: where it is, what it may be, who plays it, where it comes from."""

    clip_id: str
    path: Path
    labels: tuple[str, ...]
    group: str
    source: str


def artist_group(name: str) -> str:
    """The split unit of an artist name: case-folded, aliases joined."""
    key = " ".join(name.split()).casefold()
    return ARTIST_ALIASES.get(key, key)


def read_collection(manifest: Path) -> list[CorpusClip]:
    """Clips of one manifest (``path``, ``labels``; ``artist``/``group`` and ``source`` if present)."""
    root = manifest.parent
    collection = root.name
    clips = []
    with manifest.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"path", "labels"} <= set(reader.fieldnames or []):
            raise LayoutError(f"{manifest}: needs columns 'path' and 'labels'")
        for line, row in enumerate(reader, start=2):
            labels = tuple(sorted({s.strip() for s in row["labels"].split(";")} - {""}))
            if not row["path"].strip() or not labels:
                raise LayoutError(f"{manifest}:{line}: a row needs a path and at least one label")
            clip_id = f"{collection}/{row['path'].strip()}"
            artist = (row.get("artist") or row.get("group") or "").strip() or clip_id
            source = (row.get("source") or "").strip() or collection
            path = root / row["path"].strip()
            clips.append(CorpusClip(clip_id, path, labels, artist_group(artist), source))
    return clips


def read_corpus(manifests: Iterable[Path]) -> list[CorpusClip]:
    """Clips of every manifest, in order; a clip id seen twice is an error."""
    clips: list[CorpusClip] = []
    for manifest in manifests:
        clips += read_collection(Path(manifest))
    ids = [c.clip_id for c in clips]
    if len(set(ids)) != len(ids):
        raise LayoutError("two manifests name the same clip id (same collection folder name twice?)")
    return clips


def corpus_labels(clips: Sequence[CorpusClip]) -> list[str]:
    """Sorted genre names of the corpus (candidates widened by label groups included)."""
    return sorted(set().union(*(candidate_set(c.labels) for c in clips)))


def candidates_of(clips: Sequence[CorpusClip], names: Sequence[str]) -> np.ndarray:
    """``(n_clips, n_names)`` 0/1 candidate matrix of the clips."""
    return candidate_matrix([c.labels for c in clips], names)
