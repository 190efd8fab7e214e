"""The model types ``genretag train`` can make, by family, and the names artifacts know the musicnn ones by.

No heavy imports: the CLI and the serving export read them.
"""

from __future__ import annotations

SKLEARN_MODELS = ("logreg", "knn", "gnb", "svm")
KERAS_MODELS = ("cnn1d", "cnn2d", "mobilenet")
BACKBONE_MODELS = ("musicnn",)
DISTILLED_MODELS = ("student",)
#: Every model type, in the order ``--help`` and ``compare`` list them.
MODEL_CHOICES = SKLEARN_MODELS + KERAS_MODELS + BACKBONE_MODELS + DISTILLED_MODELS

#: The manifest's ``architecture`` of the musicnn tagger (:mod:`genretag.models.tagger`) and of the student
#: distilled from it (:mod:`genretag.models.student`).
TAGGER_ARCHITECTURE = "musicnn"
STUDENT_ARCHITECTURE = "musicnn-student"
#: The student's mel -> probabilities sub-model, which the serving export takes out by this name.
STUDENT_SCORES_MODEL = "student_scores"
