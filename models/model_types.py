"""The model types ``genretag train`` can make, by family (no heavy imports: the CLI reads them)."""

from __future__ import annotations

SKLEARN_MODELS = ("logreg", "knn", "gnb", "svm")
KERAS_MODELS = ("cnn1d", "cnn2d", "mobilenet")
BACKBONE_MODELS = ("musicnn",)
DISTILLED_MODELS = ("student",)
#: Every model type, in the order ``--help`` and ``compare`` list them.
MODEL_CHOICES = SKLEARN_MODELS + KERAS_MODELS + BACKBONE_MODELS + DISTILLED_MODELS
