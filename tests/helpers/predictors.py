"""A stand-in :class:`~genretag.models.predictor.Predictor` for tests of the daemon's bookkeeping.

The tagger tests (``tests/daemon/test_tagging.py``) and the fleet tests (``tests/daemon/test_fleet.py``)
each need a predictor that scores every window alike, so that what is under test is the tagger's
ordering, admission and reloads, not a model.  They used to keep two near copies of it; this is the one
both use (and the predictors of ``test_tagging.py`` that change its labels or heads subclass it).  Its
methods take the :class:`~genretag.models.predictor.Predictor` protocol's argument types, so it can be
passed wherever a ``Predictor`` is expected without a ``type: ignore``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genretag.models.artifact import ArtifactManifest

SR = 8000


class ConstantPredictor:
    """Every window scores ``scores`` (labels ``a`` and ``b``, softmax): 0.5 s windows at ``SR`` every
    ``hop`` seconds."""

    def __init__(self, scores: Sequence[float], hop: float = 0.25) -> None:
        self.manifest = ArtifactManifest(
            kind="sklearn",
            architecture="constant",
            labels=["a", "b"],
            output="softmax",
            sample_rate=SR,
            window_seconds=0.5,
            hop_seconds=hop,
            model_file="m",
        )
        self.scores = np.array(scores, np.float32)

    def predict(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        return np.tile(self.scores, (len(windows), 1))

    def predict_outputs(self, windows: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        return {"genre": self.predict(windows)}
