"""The four scikit-learn baselines of the seed set and their hyper-parameter grids.

Each baseline is ``StandardScaler -> classifier`` over the window features of
:mod:`genretag.models.features`.  Targets are integer class indices
``0..L-1`` in the dataset's label order.  These baselines are single-label:
a clip with several labels trains and is scored under its *first* label
(see :func:`genretag.training.sklearn_train.first_label_index`), and their
artifacts declare ``output="softmax"``.

Class imbalance (7 to 92 clips per genre) is handled where the classifier
allows it: ``class_weight="balanced"`` for logistic regression and the SVM,
balanced sample weights for Gaussian naive Bayes (which makes its class priors
uniform).  k-NN has no such knob; ``weights="distance"`` in its grid is the
nearest it gets.

The SVM gets its probabilities from ``CalibratedClassifierCV(method="sigmoid",
ensemble=False)``: Platt scaling on cross-validated decision values, as
``SVC(probability=True)`` did, which scikit-learn deprecated in 1.9 and
removes in 1.11.  Its 5 folds are stratified and unshuffled, so windows given
clip by clip stay mostly within one fold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import ParameterGrid
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight


@dataclass(frozen=True)
class Baseline:
    """How to build one baseline's classifier and which of its parameters to search."""

    make_classifier: Callable[[], Any]
    grid: dict[str, list[Any]]
    balance_by_sample_weight: bool = False


BASELINES: dict[str, Baseline] = {
    "logreg": Baseline(
        lambda: LogisticRegression(class_weight="balanced", max_iter=5000),
        {"C": [0.01, 0.1, 1.0]},
    ),
    # Brute force: trees do not help in ~100 dimensions, and it fixes the saved types.
    "knn": Baseline(
        lambda: KNeighborsClassifier(algorithm="brute"),
        {"n_neighbors": [5, 15, 31], "weights": ["uniform", "distance"]},
    ),
    "gnb": Baseline(
        GaussianNB,
        {"var_smoothing": [1e-9, 1e-3, 1e-2, 1e-1]},
        balance_by_sample_weight=True,
    ),
    "svm": Baseline(
        lambda: CalibratedClassifierCV(
            SVC(kernel="rbf", class_weight="balanced"), method="sigmoid", ensemble=False
        ),
        {"estimator__C": [1.0, 10.0], "estimator__gamma": ["scale", 0.003, 0.03]},
    ),
}
"""The baselines by name, as used in ``ArtifactManifest.architecture``."""


def _baseline(name: str) -> Baseline:
    try:
        return BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown sklearn baseline {name!r}; choose one of {sorted(BASELINES)}") from None


def param_grid(name: str, n_samples: int | None = None) -> list[dict[str, Any]]:
    """Every classifier parameter combination to try for baseline ``name``.

    With ``n_samples`` given, points that cannot be fitted on that many rows
    (more neighbours than training windows) are left out.
    """
    grid = list(ParameterGrid(_baseline(name).grid))
    if n_samples is not None:
        grid = [p for p in grid if p.get("n_neighbors", 0) <= n_samples] or [
            {**grid[0], "n_neighbors": n_samples}
        ]
    return grid


def build_pipeline(name: str, params: dict[str, Any] | None = None) -> Pipeline:
    """An unfitted ``StandardScaler -> classifier`` pipeline with classifier ``params`` set."""
    classifier = _baseline(name).make_classifier().set_params(**(params or {}))
    return Pipeline([("scale", StandardScaler()), ("clf", classifier)])


def fit_baseline(
    name: str, features: np.ndarray, targets: np.ndarray, params: dict[str, Any] | None = None
) -> Pipeline:
    """Build and fit baseline ``name`` on window features ``(n, d)`` and class indices ``(n,)``."""
    pipeline = build_pipeline(name, params)
    fit_params = {}
    if _baseline(name).balance_by_sample_weight:
        fit_params["clf__sample_weight"] = compute_sample_weight("balanced", targets)
    return pipeline.fit(features, targets, **fit_params)


def class_columns(estimator: Any, n_labels: int) -> np.ndarray:
    """Label index of each column of ``estimator.predict_proba``.

    A label that never occurred in training has no column; any class outside
    ``0..n_labels-1`` means the estimator and the label list disagree.
    """
    classes = np.asarray(estimator.classes_)
    if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 or classes.max() >= n_labels:
        raise ValueError(f"estimator classes {classes.tolist()} are not label indices 0..{n_labels - 1}")
    return classes.astype(np.intp)


def label_scores(estimator: Any, features: np.ndarray, n_labels: int) -> np.ndarray:
    """Probabilities ``(n, n_labels)`` in label order; labels absent from training score 0."""
    scores = np.zeros((len(features), n_labels), dtype=np.float32)
    scores[:, class_columns(estimator, n_labels)] = estimator.predict_proba(features)
    return scores
