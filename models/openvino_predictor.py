"""Serving an exported artifact through OpenVINO, without TensorFlow or Keras in the process.

OpenVINO was chosen on numbers measured side by side on the 2-core development
box (benchmarks/RESULTS.md, "Serving runtime"): for the default model it ran
21-24 ms per window against 41-47 ms for ONNX Runtime and 44 ms for LiteRT,
because on a CPU with native bfloat16 it computes in bfloat16 (largest score
difference 0.008, the same top label on every test window), and it held the
daemon's memory far lower than ONNX Runtime's arena (774 MiB against 3.7 GiB
at batch 64).  ``precision="f32"`` asks for float32 everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genretag.models.artifact import ArtifactError, ArtifactManifest
from genretag.models.spectrum import SpectrumFrontEnd
from genretag.models.staging import StagingBuffer

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "f32")
#: Windows per inference request.  The default model's first layers hold about 12 MB of activations
#: per window: a batch of 64 in one request peaked at 944 MiB resident, in requests of 8 at 280 MiB,
#: and both ran 21-23 ms a window (benchmarks/RESULTS.md, "Serving runtime").
CHUNK_WINDOWS = 8


class OpenVinoPredictor:
    """Scores PCM windows with the artifact's ONNX export: numpy front end, then OpenVINO on the CPU.

    Like every predictor, :meth:`predict` is for one thread at a time (one staging
    buffer, one inference request).
    """

    def __init__(self, manifest: ArtifactManifest, artifact_dir: Path, precision: str = "auto") -> None:
        import openvino

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        serving = manifest.serving
        self.manifest = manifest
        self.front = SpectrumFrontEnd.from_config(serving["front_end"])
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if precision == "f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            self._compiled = openvino.Core().compile_model(str(artifact_dir / serving["file"]), "CPU", config)
        except RuntimeError as err:
            raise ArtifactError(f"{artifact_dir / serving['file']}: OpenVINO cannot load it: {err}") from None
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._request = self._compiled.create_infer_request()
        self._output = self._compiled.output(0)
        self._staging = StagingBuffer()

    def predict(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Scores ``(n, n_labels)`` for a ``(n, window_samples)`` array or a sequence of ``n`` windows."""
        n = len(windows)
        scores = np.empty((n, len(self.manifest.labels)), np.float32)
        if n == 0:
            return scores
        x = self._staging.stage(windows, n)
        for start in range(0, n, CHUNK_WINDOWS):
            power = self.front(x[start:start + CHUNK_WINDOWS])
            scores[start:start + len(power)] = self._request.infer({0: power})[self._output]
        return scores
