"""Serving an exported artifact through OpenVINO, without TensorFlow or Keras in the process.

OpenVINO was chosen over ONNX Runtime and LiteRT on numbers measured side by
side (benchmarks/RESULTS.md, "Serving runtime"): about twice as fast on the
default model, because on a CPU with native bfloat16 it computes in bfloat16
(scores within 0.01, same top labels), and far less memory.
``precision="f32"`` asks for float32 everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genretag.models.artifact import GENRE, ArtifactError, ArtifactManifest, output_labels
from genretag.models.spectrum import SpectrumFrontEnd
from genretag.models.staging import StagingBuffer

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "f32")
#: Windows per inference request: the default model's first layers hold about 12 MB of activations per
#: window, so requests of 8 bound the memory a large batch takes, at no cost in speed (RESULTS.md).
CHUNK_WINDOWS = 8


class OpenVinoPredictor:
    """Scores PCM windows with the artifact's ONNX export: numpy front end, then OpenVINO on the CPU.

    Like every predictor, :meth:`predict` is for one thread at a time (one staging
    buffer, one queue of inference requests).
    """

    def __init__(self, manifest: ArtifactManifest, artifact_dir: Path, precision: str = "auto") -> None:
        import openvino

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        serving = manifest.serving
        self.manifest = manifest
        self._outputs = output_labels(manifest)
        try:
            self.front = SpectrumFrontEnd(**serving["front_end"])
        except (TypeError, ValueError) as err:
            raise ArtifactError(f"manifest field 'serving': front_end: {err}") from None
        # Throughput: one inference stream per pair of cores, fed chunks of a batch in parallel (9 % more
        # windows per second than one request on every core, on 2 cores; RESULTS.md, "Serving runtime").
        config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
        if precision == "f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            self._compiled = openvino.Core().compile_model(str(artifact_dir / serving["file"]), "CPU", config)
        except RuntimeError as err:
            raise ArtifactError(f"{artifact_dir / serving['file']}: OpenVINO cannot load it: {err}") from None
        if len(self._compiled.outputs) != len(self._outputs):
            raise ArtifactError(
                f"manifest field 'heads': the serving export has {len(self._compiled.outputs)} outputs, "
                f"the manifest names {len(self._outputs)} ({', '.join(self._outputs)})"
            )
        # The export's outputs come in the Keras model's order (genre, then the heads; named Identity,
        # Identity_1, ... by the converter): widths must match, and save_artifact holds each one's values
        # to the Keras output of the same name, so a permutation never ships.
        for (name, labels), port in zip(self._outputs.items(), self._compiled.outputs, strict=True):
            width = port.get_partial_shape()[-1]
            if width.is_static and width.get_length() != len(labels):
                field_name = "labels" if name == GENRE else f"heads.{name}"
                raise ArtifactError(
                    f"manifest field '{field_name}': serving export output {port.get_any_name()!r} has "
                    f"{width.get_length()} scores, manifest lists {len(labels)} labels for {name!r}"
                )
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._parallel = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._requests = openvino.AsyncInferQueue(self._compiled, self._parallel)
        self._requests.set_callback(_collect)
        self._staging = StagingBuffer()

    def predict(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Scores ``(n, n_labels)`` for a ``(n, window_samples)`` array or a sequence of ``n`` windows."""
        return self.predict_outputs(windows)[GENRE]

    def predict_outputs(self, windows: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Every output (genre, then the heads: :func:`~genretag.models.artifact.output_labels`)."""
        n = len(windows)
        outputs = {name: np.empty((n, len(labels)), np.float32) for name, labels in self._outputs.items()}
        if n == 0:
            return outputs
        x = self._staging.stage(windows, n)
        chunk = min(CHUNK_WINDOWS, -(-n // self._parallel))  # a batch of 8 keeps every stream busy too
        for start in range(0, n, chunk):
            rows = [out[start : start + chunk] for out in outputs.values()]
            self._requests.start_async({0: self.front(x[start : start + chunk])}, rows)
        self._requests.wait_all()
        return outputs


def _collect(request: Any, rows: list[np.ndarray]) -> None:
    """An inference request's callback (on OpenVINO's thread): fill its rows of every output."""
    for index, out in enumerate(rows):
        out[:] = request.get_output_tensor(index).data
