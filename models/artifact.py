"""The model artifact: a directory with ``manifest.json`` and the model file.

The manifest makes an artifact self-describing (labels, sample rate, window,
features, training-data fingerprint, dev metrics) so the daemon and
``classify`` need nothing but the directory.  Loading validates every field
and the SHA-256 of every file before any model file is opened, and refuses
an inconsistent or tampered artifact with an error that names the field.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
KINDS = ("keras", "sklearn")
OUTPUTS = ("softmax", "sigmoid")
#: The analysis heads an artifact may have beside genre (``heads``), in the order of the model's outputs.
HEAD_NAMES = ("speech", "mood", "tags")
#: The name of the genre scores among a model's outputs (:func:`output_labels`).
GENRE = "genre"
#: The speech head's labels, in this order: the daemon reads P(speech) from it.
SPEECH_LABELS = ["music", "speech"]


class ArtifactError(Exception):
    """An artifact is missing, inconsistent or tampered with; the message names the field."""


@dataclass
class ArtifactManifest:
    """Everything a consumer needs to feed a model and read its output.

    ``output`` says how scores were trained: ``softmax`` (single-label targets,
    scores sum to one) or ``sigmoid`` (independent per-label probabilities,
    multi-label clips).  ``files`` maps each model file to its SHA-256.
    """

    kind: str
    architecture: str
    labels: list[str]
    output: str
    sample_rate: int
    window_seconds: float
    hop_seconds: float
    model_file: str
    features: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    dev_metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    #: How far the scores can be trusted, fitted on held-out folds: ``temperature`` (already folded
    #: into the model's output), ``min_confidence`` (the smoothed score below which the daemon's
    #: rolling label abstains) and what that threshold was chosen for.  Empty: never abstain.
    calibration: dict[str, Any] = field(default_factory=dict)
    #: The export the serving runtime runs (:mod:`genretag.models.serving_export`): its ``file`` (also
    #: listed in ``files``), ``format``, ``runtime``, ``input``, the numpy ``front_end`` that feeds it,
    #: and ``max_abs_error``, the largest score difference from the Keras model measured when it was
    #: saved.  Empty: the artifact is served by its own framework.
    serving: dict[str, Any] = field(default_factory=dict)
    #: Analysis heads beside genre, on the same windows (issue "Beyond genre"): name (of ``HEAD_NAMES``)
    #: -> ``{"labels": [...], "output": "softmax" | "sigmoid", ...}`` plus free-form facts (what it was
    #: trained on, its figures).  A model with heads has one output per head after genre's scores, in
    #: ``HEAD_NAMES`` order.  Empty: genre only.
    heads: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    package_version: str = field(default_factory=lambda: version("genretag"))
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    def fingerprint(self) -> str:
        """A short id for this exact artifact (hash of its manifest's file hashes and labels)."""
        payload = json.dumps({"files": self.files, "labels": self.labels}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def output_labels(manifest: ArtifactManifest) -> dict[str, list[str]]:
    """Every output of the artifact's model by name, in output order: ``genre``, then its heads."""
    return {GENRE: list(manifest.labels)} | {name: list(h["labels"]) for name, h in manifest.heads.items()}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:  # Path.open, not open(): a dataset's shards may be on an object store
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "kind": str,
    "architecture": str,
    "labels": list,
    "output": str,
    "sample_rate": int,
    "window_seconds": (int, float),
    "hop_seconds": (int, float),
    "model_file": str,
    "features": dict,
    "training_data": dict,
    "dev_metrics": dict,
    "files": dict,
    "package_version": str,
    "created_at": str,
}


#: Fields that older artifacts lack; a missing one takes its default.
_OPTIONAL_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "calibration": dict,
    "serving": dict,
    "heads": dict,
}

#: Keys every non-empty ``serving`` field has, and their types.
_SERVING_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "file": str,
    "runtime": str,
    "input": str,
    "front_end": dict,
    "tolerance": (int, float),
}


def _check(condition: bool, field_name: str, problem: str) -> None:
    if not condition:
        raise ArtifactError(f"manifest field '{field_name}': {problem}")


def validate_manifest_dict(raw: dict[str, Any]) -> ArtifactManifest:
    """Check types and internal consistency of a parsed manifest."""
    for name, typ in _FIELD_TYPES.items():
        _check(name in raw, name, "missing")
        _check(
            isinstance(raw[name], typ) and not isinstance(raw[name], bool),
            name,
            f"expected {typ}, got {type(raw[name]).__name__}",
        )
    for name, typ in _OPTIONAL_FIELD_TYPES.items():
        _check(name not in raw or isinstance(raw[name], typ), name, f"expected {typ}")
    unknown = sorted(set(raw) - set(_FIELD_TYPES) - set(_OPTIONAL_FIELD_TYPES))
    _check(not unknown, unknown[0] if unknown else "", "unknown field")
    _check(
        raw["format_version"] == FORMAT_VERSION,
        "format_version",
        f"unsupported version {raw['format_version']} (this genretag reads {FORMAT_VERSION})",
    )
    _check(raw["kind"] in KINDS, "kind", f"must be one of {KINDS}, got {raw['kind']!r}")
    _check(raw["output"] in OUTPUTS, "output", f"must be one of {OUTPUTS}, got {raw['output']!r}")
    labels = raw["labels"]
    _check(len(labels) >= 2, "labels", "need at least two labels")
    _check(all(isinstance(x, str) and x for x in labels), "labels", "labels must be non-empty strings")
    _check(len(set(labels)) == len(labels), "labels", "duplicate labels")
    _check(8000 <= raw["sample_rate"] <= 192000, "sample_rate", f"out of range: {raw['sample_rate']}")
    _check(0.1 <= raw["window_seconds"] <= 60, "window_seconds", f"out of range: {raw['window_seconds']}")
    _check(
        0 < raw["hop_seconds"] <= raw["window_seconds"] * 4,
        "hop_seconds",
        f"out of range: {raw['hop_seconds']}",
    )
    _check(raw["model_file"] in raw["files"], "model_file", "not listed in 'files'")
    threshold = raw.get("calibration", {}).get("min_confidence", 0.0)
    _check(
        isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and 0 <= threshold < 1,
        "calibration",
        f"min_confidence must be a number in [0, 1), got {threshold!r}",
    )
    _check_serving(raw)
    heads = raw.get("heads", {})
    # A JSON object's keys have no order (write_manifest sorts them): the outputs' order is HEAD_NAMES'.
    raw = {**raw, "heads": {n: heads[n] for n in HEAD_NAMES if n in heads} | heads}
    check_heads(raw["heads"])
    for name, digest in raw["files"].items():
        _check(isinstance(digest, str) and len(digest) == 64, "files", f"bad SHA-256 for {name}")
        _check(Path(name).name == name, "files", f"{name!r} must be a plain file name")
    return ArtifactManifest(**raw)


def _check_serving(raw: dict[str, Any]) -> None:
    serving = raw.get("serving", {})
    if not serving:
        return
    for key, typ in _SERVING_FIELD_TYPES.items():
        _check(isinstance(serving.get(key), typ), "serving", f"'{key}' missing or not {typ}")
    _check(
        serving["format"] == "onnx" and serving["input"] == "power_spectrum",
        "serving",
        f"unsupported export: {serving['format']!r} taking {serving['input']!r}",
    )
    _check(serving["file"] in raw["files"], "serving", f"file {serving['file']!r} not listed in 'files'")


def check_heads(heads: dict[str, Any]) -> None:
    _check(
        list(heads) == [n for n in HEAD_NAMES if n in heads],
        "heads",
        f"names must be of {HEAD_NAMES}, in that order",
    )
    for name, head in heads.items():
        where = f"heads.{name}"
        _check(isinstance(head, dict), where, "expected an object")
        labels = head.get("labels")
        _check(
            isinstance(labels, list) and bool(labels) and all(isinstance(x, str) and x for x in labels),
            where,
            "'labels' must be a non-empty list of non-empty strings",
        )
        _check(len(set(labels)) == len(labels), where, "duplicate labels")
        _check(head.get("output") in OUTPUTS, where, f"'output' must be one of {OUTPUTS}")
    if "speech" in heads:
        _check(heads["speech"]["labels"] == SPEECH_LABELS, "heads.speech", f"labels must be {SPEECH_LABELS}")


def read_manifest(artifact_dir: str | os.PathLike[str]) -> ArtifactManifest:
    """Read and validate ``manifest.json`` and verify every file's SHA-256."""
    root = Path(artifact_dir)
    if not root.is_dir():
        raise ArtifactError(f"{root}: not a model artifact directory")
    path = root / MANIFEST_NAME
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or stream for ever
            raise ArtifactError(f"{path}: unreadable manifest: not a regular file")
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{root}: no {MANIFEST_NAME}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: unreadable manifest: {err}") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path}: manifest must be a JSON object")
    manifest = validate_manifest_dict(raw)
    for name, digest in manifest.files.items():
        file_path = root / name
        if not file_path.is_file():
            raise ArtifactError(f"manifest field 'files': {name} is missing from {root}")
        try:
            actual = sha256_file(file_path)
        except OSError as err:
            raise ArtifactError(f"manifest field 'files': cannot read {name}: {err}") from None
        if actual != digest:
            raise ArtifactError(
                f"manifest field 'files': SHA-256 of {name} is {actual[:12]}..., "
                f"manifest says {digest[:12]}... (file changed or tampered with)"
            )
    return manifest


def write_manifest(artifact_dir: Path, manifest: ArtifactManifest) -> None:
    """Record the SHA-256 of the model file (and of its serving export) and write the manifest atomically."""
    names = [manifest.model_file] + ([manifest.serving["file"]] if manifest.serving else [])
    manifest.files = {name: sha256_file(artifact_dir / name) for name in names}
    validate_manifest_dict(asdict(manifest))
    tmp = artifact_dir / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, artifact_dir / MANIFEST_NAME)
