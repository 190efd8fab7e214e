"""Export of a Keras artifact's inference graph for the serving runtime (ONNX, run by OpenVINO).

The exported graph starts at the power spectrum, not at PCM: the front end
before it (loudness normalisation, STFT) runs in numpy
(:mod:`genretag.models.spectrum`), once per window however many backbones
the model has.  Two reasons: the default model's two backbones each computed
the same front end, and the ONNX converter turns the STFT into ops
(``RFFT``, ``Real``) that OpenVINO cannot read.

Only the architectures whose graph is known to start with that front end are
exported: the musicnn tagger and its distilled student.  Any other Keras
artifact raises :class:`ExportUnsupported` and is served through Keras.
:func:`genretag.models.predictor.save_artifact` checks the export against the
Keras model and records the largest difference in the manifest.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from genretag.models.artifact import ArtifactManifest
from genretag.models.model_types import STUDENT_ARCHITECTURE, STUDENT_SCORES_MODEL, TAGGER_ARCHITECTURE
from genretag.models.spectrum import SpectrumFrontEnd

SERVING_FILE = "model.onnx"
#: Largest difference in any score allowed between the export (run in float32) and the Keras model.
EXPORT_TOLERANCE = 1e-4


class ExportUnsupported(Exception):
    """The model's graph has no known split into numpy front end and exportable body."""


def export_serving(model: Any, manifest: ArtifactManifest, directory: Path) -> dict[str, Any]:
    """Write ``directory / SERVING_FILE`` and return the manifest's ``serving`` field (before its check)."""
    body, front = spectrum_model(model, manifest)
    n_frames = front.n_frames(manifest.window_samples)
    body.predict_on_batch(np.zeros((1, n_frames, front.n_fft // 2 + 1), np.float32))  # export needs a call
    path = directory / SERVING_FILE
    # tf2onnx prints its progress and warns about numpy aliases: neither is news to the user.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        body.export(str(path), format="onnx", verbose=False)
    return {
        "format": "onnx",
        "file": SERVING_FILE,
        "runtime": "openvino",
        "input": "power_spectrum",
        "front_end": asdict(front),
        "tolerance": EXPORT_TOLERANCE,
    }


def spectrum_model(model: Any, manifest: ArtifactManifest) -> tuple[Any, SpectrumFrontEnd]:
    """The model's graph from the power spectrum on, and the numpy front end that feeds it."""
    import keras

    from genretag.models.frontend import LogMelFrontEnd
    from genretag.models.loudness import RmsNormalization

    build_body = _BODIES.get(manifest.architecture)
    if build_body is None:
        raise ExportUnsupported(f"architecture {manifest.architecture!r} has no serving export")
    log_mels = [layer for layer in _layers_two_deep(model) if isinstance(layer, LogMelFrontEnd)]
    loudness = [layer for layer in model.layers if isinstance(layer, RmsNormalization)]
    if not log_mels or len(loudness) > 1:
        raise ExportUnsupported("expected a log-mel front end after at most one loudness layer")
    first = log_mels[0]
    bases = [np.asarray(keras.ops.convert_to_numpy(layer.mel_basis)) for layer in log_mels]
    if any(layer.get_config() | {"name": first.name} != first.get_config() for layer in log_mels) or any(
        not np.array_equal(basis, bases[0]) for basis in bases
    ):
        raise ExportUnsupported("the backbones' log-mel front ends differ, so they cannot share one")
    front = SpectrumFrontEnd(
        n_fft=first.n_fft,
        hop_length=first.hop_length,
        normalize_db=loudness[0].target_db if loudness else None,
        max_gain_db=loudness[0].max_gain_db if loudness else SpectrumFrontEnd.max_gain_db,
    )
    power = keras.Input((front.n_frames(manifest.window_samples), first.n_fft // 2 + 1), name="power")
    scores = build_body(model, manifest, first.power_to_log_mel()(power))
    return keras.Model(power, scores, name=f"{model.name}_from_power"), front


def _layers_two_deep(model: Any) -> list[Any]:
    """The model's layers and those of the sub-models among them."""
    found = []
    for layer in model.layers:
        found.append(layer)
        found.extend(getattr(layer, "layers", []))
    return found


def _student_body(model: Any, manifest: ArtifactManifest, mel: Any) -> Any:
    """The distilled student: its mel -> scores sub-model (see :mod:`genretag.models.student`)."""
    if manifest.heads:
        raise ExportUnsupported("the student has no analysis heads to export")
    return model.get_layer(STUDENT_SCORES_MODEL)(mel)


def _tagger_body(model: Any, manifest: ArtifactManifest, mel: Any) -> Any:
    """The musicnn tagger: every backbone's mel network on the one log-mel, then the heads.

    The heads' input is the backbones' ``features.layers`` in the order
    :func:`genretag.models.tagger.build_tagger` concatenates them, read from the manifest;
    the outputs are genre's scores, then the manifest's ``heads`` in order, each from the
    model's layer of that name (one output, genre's, without heads).
    """
    import keras

    from genretag.models.musicnn import mel_network

    if not {"backbones", "layers"} <= set(manifest.features):
        raise ExportUnsupported("the manifest's features do not name the backbones and layers the head reads")
    features = []
    for variant in manifest.features["backbones"]:
        inner = mel_network(model.get_layer(variant))
        # The inner networks are all named "musicnn"; one graph needs unique names.
        outputs = keras.Model(inner.input, inner.output, name=variant)(mel)
        features += [outputs[layer] for layer in manifest.features["layers"]]
    embedding = model.get_layer("embedding")(features) if len(features) > 1 else features[0]
    scores = model.get_layer("scores")(embedding)
    if not manifest.heads:
        return scores
    # Genre, then each head from its layer of the same name: the order of output_labels(manifest).
    return [scores, *(model.get_layer(name)(embedding) for name in manifest.heads)]


_BODIES: dict[str, Callable[[Any, ArtifactManifest, Any], Any]] = {
    TAGGER_ARCHITECTURE: _tagger_body,
    STUDENT_ARCHITECTURE: _student_body,
}
