"""One factory for artifact manifests, with a typed schema of each model family's ``features``.

A manifest's ``features`` field tells a consumer what the model expects as
input.  Each family writes it from one dataclass here, serialised with
:func:`dataclasses.asdict` to the JSON keys artifacts have always had, so
existing artifacts (the bundled ``models/default`` and ``models/fast``
included) load and validate unchanged.  The scikit-learn baselines' schema is
:class:`genretag.models.features.FeatureConfig` itself: it drives their
feature code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from genretag.models.artifact import ArtifactManifest
from genretag.models.model_types import STUDENT_ARCHITECTURE, TAGGER_ARCHITECTURE

if TYPE_CHECKING:
    from genretag.models.features import FeatureConfig

#: The front end of every musicnn-family model: :class:`genretag.models.frontend.LogMelFrontEnd` in the graph.
MUSICNN_FRONT_END = "in-graph librosa-compatible log-mel"


@dataclass(frozen=True)
class KerasFeatures:
    """A Keras model trained from scratch (:mod:`genretag.models.keras_builders`): raw PCM in,
    features computed in the graph."""

    KIND: ClassVar[str] = "keras"
    ARCHITECTURE: ClassVar[str | None] = None  # the builder's name (cnn1d, cnn2d, mobilenet)

    input: str = "pcm"
    front_end: str = "in-graph"


@dataclass
class TaggerFeatures:
    """The musicnn tagger (:mod:`genretag.models.tagger`): which backbones and outputs its head reads, and how
    that head was fitted.  The serving export reads ``backbones`` and ``layers``."""

    KIND: ClassVar[str] = "keras"
    ARCHITECTURE: ClassVar[str | None] = TAGGER_ARCHITECTURE

    backbones: list[str]
    layers: list[str]
    head: str  # how the head was fitted, in words
    C: float
    normalize_db: float | None
    input: str = "pcm"
    front_end: str = MUSICNN_FRONT_END


@dataclass
class StudentFeatures:
    """The distilled student (:mod:`genretag.models.student`): its teacher's and its own recipe
    (``asdict`` of the training configs) and, when known, what it was distilled on."""

    KIND: ClassVar[str] = "keras"
    ARCHITECTURE: ClassVar[str | None] = STUDENT_ARCHITECTURE
    OMIT_EMPTY: ClassVar[tuple[str, ...]] = ("distillation",)

    normalize_db: float | None
    teacher: dict[str, Any]
    student: dict[str, Any]
    distillation: dict[str, Any] = field(default_factory=dict)
    input: str = "pcm"
    front_end: str = MUSICNN_FRONT_END


ModelFeatures: TypeAlias = "FeatureConfig | KerasFeatures | TaggerFeatures | StudentFeatures"


def features_json(features: ModelFeatures) -> dict[str, Any]:
    """The manifest's ``features`` dict of ``features`` (empty optional entries left out)."""
    omit = getattr(features, "OMIT_EMPTY", ())
    return {key: value for key, value in asdict(features).items() if value or key not in omit}


def new_manifest(
    features: ModelFeatures,
    *,
    labels: Sequence[str],
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    architecture: str | None = None,
    output: str = "softmax",
    model_file: str = "",
    **fields: Any,
) -> ArtifactManifest:
    """A manifest for a freshly trained model of the family ``features`` describes.

    The family fixes ``kind`` and, for the musicnn ones, ``architecture``; the
    others name theirs.  ``model_file`` is filled in when the artifact is saved;
    ``fields`` are further manifest fields (``training_data``, ``dev_metrics``,
    ``calibration``).
    """
    architecture = architecture or features.ARCHITECTURE
    if architecture is None:
        raise ValueError(f"{type(features).__name__}: name the architecture")
    if features.ARCHITECTURE is not None and architecture != features.ARCHITECTURE:
        raise ValueError(
            f"{type(features).__name__} describes {features.ARCHITECTURE!r}, not {architecture!r}"
        )
    return ArtifactManifest(
        kind=features.KIND,
        architecture=architecture,
        labels=list(labels),
        output=output,
        sample_rate=sample_rate,
        window_seconds=window_seconds,
        hop_seconds=hop_seconds,
        model_file=model_file,
        features=features_json(features),
        **fields,
    )
