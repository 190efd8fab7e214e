"""Saving and loading scikit-learn pipelines with skops, never with pickle.

A model file may come from anywhere (a downloaded artifact, a shared disk),
so loading must not run code chosen by whoever wrote it.  skops stores an
object tree as JSON plus ``.npy`` arrays and rebuilds only types it is told
to trust.  skops itself trusts every scikit-learn class and numpy function by
default, which is wider than we need: a ``FunctionTransformer(func=...)``
would sail through.  So :func:`load_estimator` refuses any file naming a type
outside :data:`ALLOWED_TYPES`, the closed set that the four baselines of
:mod:`genretag.models.sklearn_models` produce, before skops builds anything.

The file is read once and both the check and the load work on those bytes,
so the file cannot change between them.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import skops.io
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from genretag.models.artifact import ArtifactError

SCHEMA_NAME = "schema.json"  # skops' object tree inside the zip


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


ALLOWED_TYPES: frozenset[str] = frozenset(
    [
        _qualified(c)
        for c in (
            # containers of the skops tree (JSON scalars are recorded as str)
            dict,
            list,
            tuple,
            str,
            # fitted arrays and numpy scalars (sample counts, GaussianNB's epsilon)
            np.ndarray,
            np.float32,
            np.float64,
            # the four baselines
            Pipeline,
            StandardScaler,
            LogisticRegression,
            KNeighborsClassifier,
            GaussianNB,
            CalibratedClassifierCV,
            SVC,
        )
    ]
    # private helpers of CalibratedClassifierCV: by name, as scikit-learn does not export them
    + ["sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration"]
)
"""Fully qualified names of every type a baseline's skops file may contain.

Taken from the four baselines fitted on real data.  :func:`save_estimator`
enforces it too, so a scikit-learn upgrade that stores a new type fails when
a model is trained, not when the daemon loads it.
"""


def _schema_types(node: Any, found: set[str]) -> set[str]:
    """Collect ``module.class`` of every node of a skops schema (objects, functions, types)."""
    if isinstance(node, dict):
        if "__module__" in node and "__class__" in node:
            found.add(f"{node['__module__']}.{node['__class__']}")
        for child in node.values():
            _schema_types(child, found)
    elif isinstance(node, list):
        for child in node:
            _schema_types(child, found)
    return found


def _refuse_disallowed(data: bytes, path: Path) -> list[str]:
    """Raise :class:`ArtifactError` naming the first type outside :data:`ALLOWED_TYPES`.

    Two independent views must both be clean: every type named anywhere in
    the schema, and the types skops itself reports as untrusted.  Returns
    the latter, which :func:`skops.io.loads` must be told to trust.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read(SCHEMA_NAME))
        untrusted = skops.io.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not a skops model file: {err}") from None
    disallowed = sorted((_schema_types(schema, set()) | set(untrusted)) - ALLOWED_TYPES)
    if disallowed:
        raise ArtifactError(
            f"{path}: refusing to load type {disallowed[0]!r}, which no genretag baseline "
            f"contains (all disallowed: {', '.join(disallowed)})"
        )
    return untrusted


def save_estimator(estimator: Any, path: str | Path) -> None:
    """Write ``estimator`` as a skops file; refuse what :func:`load_estimator` would refuse."""
    data = skops.io.dumps(estimator)
    _refuse_disallowed(data, Path(path))
    Path(path).write_bytes(data)


def load_estimator(path: str | Path) -> Any:
    """Load a skops file holding only :data:`ALLOWED_TYPES`.

    Raises
    ------
    ArtifactError
        The file is not a skops file, or names a type outside the allowlist
        (the message names it); nothing from the file is built in that case.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ArtifactError(f"{path}: cannot read model file: {err}") from None
    trusted = _refuse_disallowed(data, path)
    return skops.io.loads(data, trusted=trusted)
