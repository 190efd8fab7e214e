"""Where a dataset build reads and writes: a local path, or a URL that fsspec reaches (``gs://``,
``s3://``, ``az://``, ...; the protocol's package, such as gcsfs or s3fs, installed).

Local paths stay :class:`pathlib.Path`, with what only a local disk gives: a temp file renamed into
place and synced.  A URL becomes a :class:`upath.UPath` (universal_pathlib), the same pathlib API
over fsspec, so the layout readers, the planner and the index code run unchanged on both.  Object
stores have no rename: a file is written locally first and then uploaded under its final name in
one request, so a reader never sees half a shard there either.  Audio decoders need a local file:
a remote clip is copied to a temp file for the time of its decoding.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, cast

if TYPE_CHECKING:
    from upath import UPath

#: A local :class:`Path` or a :class:`UPath`.  Typed as ``Path``: UPath implements its API, and a
#: union would make every caller prove which of the two it holds, for no behaviour of its own.
Location: TypeAlias = Path


def is_url(value: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` (``file://`` included: fsspec reads it too)."""
    return "://" in str(value)


def location(value: str | os.PathLike[str]) -> Location:
    """The :class:`UPath` of a URL; a :class:`Path` of anything else; a UPath is returned as it is."""
    if isinstance(value, Path) or not is_url(value):
        return Path(value)
    from upath import UPath

    return cast(Path, value if isinstance(value, UPath) else UPath(str(value)))


def is_remote(path: Location) -> bool:
    """True unless ``path`` is on a local disk."""
    return not isinstance(path, Path)


def resolved(root: Location, relative: str) -> Location:
    """``root / relative`` with ``..`` and ``.`` folded, without following symlinks."""
    if not is_remote(root):
        return Path(os.path.normpath(root / relative))
    from upath import UPath

    joined = cast(UPath, root / relative)
    normal = f"{joined.protocol}://{posixpath.normpath(joined.path)}"
    return cast(Path, UPath(normal, **joined.storage_options))


def list_ahead(root: Location) -> None:
    """List everything below a remote ``root`` once, so that the stat of each clip (the build's
    fingerprint) comes from fsspec's listings cache: one request a thousand objects instead of one
    a file (300 files on a loopback S3 server: 0.17 s against 1.27 s; FMA full has 106,574)."""
    if is_remote(root):
        remote = cast("UPath", root)
        remote.fs.find(remote.path)


def names_in(folder: Location) -> set[str]:
    """The names of the files in ``folder`` now (none if it does not exist), never from a cache."""
    try:
        if not is_remote(folder):
            return set(os.listdir(folder))
        remote = cast("UPath", folder)
        remote.fs.invalidate_cache(remote.path)
        return {posixpath.basename(name) for name in remote.fs.ls(remote.path, detail=False)}
    except (FileNotFoundError, NotADirectoryError):
        return set()


@contextmanager
def local_file(path: str) -> Iterator[str]:
    """A local file name for ``path``: itself, or a temp copy of a URL (removed afterwards)."""
    if not is_url(path):
        yield path
        return
    source = location(path)
    with tempfile.TemporaryDirectory(prefix="genretag-clip-") as tmp:
        copy = os.path.join(tmp, source.name)  # the decoders read the format from the name too
        with source.open("rb") as src, open(copy, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield copy


def upload(local: Path, final: Location) -> None:
    """Put the finished local file ``local`` at ``final`` (a URL) in one request, then delete ``local``."""
    remote = cast("UPath", final)
    remote.fs.put_file(str(local), remote.path)
    local.unlink()


def write_text_whole(path: Location, text: str) -> None:
    """Replace ``path``'s content with ``text`` so that a reader sees the old or the new, never half:
    a synced temp file renamed on a local disk; one PUT on an object store."""
    if is_remote(path):
        path.write_text(text, encoding="utf-8")
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
