"""The model artifacts shipped inside the package, and how ``--model`` / ``model.path`` name them.

Two trade-offs ship: ``default`` (the musicnn tagger: the most accurate,
about ten windows a second per CPU core pair) for classifying files and a few
live streams, and ``fast`` (a student distilled from it: a few points less
accurate, tens of times cheaper) for hundreds of streams per box.  A bundled
name wins over a directory of the same name; write ``./fast`` for that.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

BUNDLED_MODELS = {
    "default": "musicnn MSD+MTT backbones and a linear head: most accurate, ~10 windows/s on 2 CPU cores",
    "fast": "a small log-mel CNN distilled from the default model: hundreds of windows/s on 2 CPU cores",
}


def bundled_model_dir(name: str = "default") -> Path:
    """The directory of the bundled artifact ``name`` (one of :data:`BUNDLED_MODELS`)."""
    if name not in BUNDLED_MODELS:
        raise ValueError(f"no bundled model {name!r}; bundled: {', '.join(BUNDLED_MODELS)}")
    return Path(str(files("genretag.models") / name))


def resolve_model(spec: str | Path | None) -> Path:
    """An artifact directory from a user's model choice: nothing (the default), a bundled name, or a path."""
    if spec is None:
        return bundled_model_dir()
    if str(spec) in BUNDLED_MODELS:
        return bundled_model_dir(str(spec))
    return Path(spec)
