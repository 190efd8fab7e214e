"""The Predictor interface and loading/saving of artifacts of every kind.

A predictor maps a batch of raw PCM windows ``(n, window_samples)`` at the
artifact's sample rate to scores ``(n, n_labels)``.  That one signature is all
the daemon and ``classify`` rely on, whatever the model kind.  An artifact with
analysis heads (``manifest.heads``: speech, mood, tags) scores them on the same
windows in the same call: :meth:`Predictor.predict_outputs` returns every output
by name (:func:`output_labels`), :meth:`Predictor.predict` genre's alone.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from genretag.models.artifact import (
    GENRE,
    ArtifactError,
    ArtifactManifest,
    check_heads,
    output_labels,
    read_manifest,
    write_manifest,
)
from genretag.models.openvino_predictor import OpenVinoPredictor
from genretag.models.serving_export import ExportUnsupported, export_serving
from genretag.models.staging import StagingBuffer, is_aligned
from genretag.pipeline.native_stderr import dropping
from genretag.pipeline.windows import WindowSpec

log = logging.getLogger(__name__)

KERAS_FILE = "model.keras"
SKLEARN_FILE = "model.skops"


class Predictor(Protocol):
    """Scores raw PCM windows; see the module docstring."""

    manifest: ArtifactManifest

    def predict(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray: ...

    def predict_outputs(self, windows: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]: ...


def window_spec(manifest: ArtifactManifest) -> WindowSpec:
    return WindowSpec(manifest.sample_rate, manifest.window_seconds, manifest.hop_seconds)


class KerasPredictor:
    """Runs a Keras model whose graph computes its own features from PCM.

    On the JAX backend ``predict_on_batch`` compiles the model once per input shape,
    and the daemon's batcher forms batches of every size from 1 to its maximum: each
    new size would stall inference for a compilation (seconds for a large model).
    There, batches are padded to the next power of two, so a serving process
    compiles at most a dozen shapes and then never again; the padding rows' scores
    are dropped.  TensorFlow relaxes shapes by itself and the CPU would pay for
    padding, so other backends run batches as they come.

    Every batch goes through one :class:`~genretag.models.staging.StagingBuffer`
    (see there why), so :meth:`predict` is for one thread at a time: the daemon's
    inference thread, or the one caller of ``classify`` and ``evaluate``.
    """

    def __init__(self, manifest: ArtifactManifest, model: Any) -> None:
        import keras

        self.manifest = manifest
        self.model = model
        self.backend = keras.backend.backend()
        self.pad_batches = self.backend == "jax"
        self._staging = StagingBuffer()

    def predict(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Scores ``(n, n_labels)`` for a ``(n, window_samples)`` array or a sequence of ``n`` windows."""
        return self.predict_outputs(windows)[GENRE]

    def predict_outputs(self, windows: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Every output (:func:`output_labels`), each ``(n, its labels)``, from one run of the model."""
        n = len(windows)
        names = output_labels(self.manifest)
        if n == 0:
            return {name: np.zeros((0, len(labels)), np.float32) for name, labels in names.items()}
        x = self._staging.stage(windows, padded_size(n) if self.pad_batches else n)
        outputs = self.model.predict_on_batch(self._adopt(x))
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        return {name: np.asarray(out, dtype=np.float32)[:n] for name, out in zip(names, outputs, strict=True)}

    def _adopt(self, x: np.ndarray) -> Any:
        """The backend's input for the staged batch: TensorFlow takes the buffer itself (DLPack, no copy)."""
        if self.backend != "tensorflow":
            return x
        import tensorflow as tf

        if not is_aligned(x):  # from_dlpack aborts the process on a misaligned tensor
            raise ValueError("staged batch is not aligned for TensorFlow")
        return tf.experimental.dlpack.from_dlpack(x.__dlpack__())


def padded_size(n: int) -> int:
    """The power of two a batch of ``n`` windows is padded to (``n`` itself when it is one)."""
    return 1 << max(0, n - 1).bit_length()


def warm_up(predictor: Predictor, max_batch: int) -> None:
    """Compile every batch shape a server of batches up to ``max_batch`` will use, before it serves.

    Only a padding (JAX) predictor needs it: its first call at each of the dozen
    shapes compiles for seconds, which in a live daemon is a stall every stream feels.
    """
    if isinstance(predictor, KerasPredictor) and predictor.pad_batches:
        size = 1
        while size <= padded_size(max_batch):
            predictor.predict(np.zeros((size, predictor.manifest.window_samples), np.float32))
            size *= 2


class SklearnPredictor:
    """Computes engineered librosa features per window, then a scikit-learn pipeline.

    Labels that never occurred in training have no estimator class; they score 0.
    """

    def __init__(self, manifest: ArtifactManifest, estimator: Any) -> None:
        from genretag.models.features import FeatureConfig
        from genretag.models.sklearn_models import class_columns

        self.manifest = manifest
        self.estimator = estimator
        try:
            self.feature_config = FeatureConfig(**manifest.features)
        except (TypeError, ValueError) as err:
            raise ArtifactError(f"manifest field 'features': {err}") from None
        if self.feature_config.sample_rate != manifest.sample_rate:
            raise ArtifactError(
                f"manifest field 'features': sample_rate {self.feature_config.sample_rate} "
                f"differs from the artifact's {manifest.sample_rate}"
            )
        try:
            class_columns(estimator, len(manifest.labels))
        except ValueError as err:
            raise ArtifactError(f"manifest field 'labels': {err}") from None

    def predict(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        from genretag.models.features import window_features
        from genretag.models.sklearn_models import label_scores

        feats = window_features(np.asarray(windows, dtype=np.float32), self.feature_config)
        return label_scores(self.estimator, feats, len(self.manifest.labels))

    def predict_outputs(self, windows: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Genre's scores alone: a scikit-learn artifact has no heads."""
        return {GENRE: self.predict(windows)}


# Imported by Keras and TensorFlow, when installed, only for what loading and running a model never uses:
# plotting (keras.visualization imports pyplot), Keras' scikit-learn wrappers and TF Lite's JAX
# converter.  They took 1.2 of the 4.1 s of `import keras` on 2 cores (benchmarks/RESULTS.md, issue 14).
_NOT_FOR_INFERENCE = ("matplotlib.pyplot", "sklearn", "jax")
# TensorFlow's native log lines while its libraries load, which TF_CPP_MIN_LOG_LEVEL does not reach yet
# (oneDNN is on, CPU features; see genretag.pipeline.native_stderr).
_TF_LOAD_NOTE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are "
    rb"written to STDERR|To enable the following instructions: )"
)


def import_keras() -> Any:
    """Keras (and its backend), imported for loading models: quietly and without unused extras.

    The one place where TensorFlow's logging is set before it is imported:
    ``TF_CPP_MIN_LOG_LEVEL=2`` (errors only) unless set already, and its INFO
    and WARNING lines from library load time dropped, unless it is 0 (show
    everything; Keras sets it to 1 in a process that imported it, which a
    child process inherits).  The modules in ``_NOT_FOR_INFERENCE`` are held
    out of the import (``sys.modules[name] = None`` makes their ``try: import``
    fail as if not installed) and importable as usual afterwards; Keras' plot
    and scikit-learn wrapper helpers stay unavailable in this process, which
    only loads and runs models.  ``jax`` is held out only when it is not the
    Keras backend.
    """
    if "keras" in sys.modules:  # imported by someone else: the custom layers may still be unregistered
        import genretag.models.keras_layers  # noqa: F401

        return sys.modules["keras"]
    quiet = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2") != "0"
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    held = [name for name in _NOT_FOR_INFERENCE if name not in sys.modules and name != backend]
    for name in held:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        with dropping(_TF_LOAD_NOTE) if quiet else nullcontext():
            import keras

            import genretag.models.keras_layers  # noqa: F401  (registers the custom layers)
    finally:
        for name in held:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    return keras


def _load_keras(path: Path) -> Any:
    keras = import_keras()
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def _load_sklearn(path: Path) -> Any:
    from genretag.models.sklearn_io import load_estimator

    return load_estimator(path)


#: Serving runtimes.  ``auto``: the serving export through OpenVINO where the artifact has one and
#: OpenVINO is installed (the GPU box lends none), else the model's own framework; ``openvino``: the
#: export, or an error; ``keras``: the ``.keras`` model, on Keras' backend (TensorFlow, or JAX on a GPU).
RUNTIMES = ("auto", "openvino", "keras")


def load_predictor(artifact_dir: str | Path, runtime: str = "auto", precision: str = "auto") -> Predictor:
    """Validate an artifact and return a ready predictor on ``runtime`` (see ``RUNTIMES``).

    ``precision`` is the OpenVINO runtime's (``auto`` or ``f32``, see
    :mod:`genretag.models.openvino_predictor`).  Raises :class:`ArtifactError`
    for anything inconsistent: bad manifest, changed file, model whose input
    or output shape contradicts the manifest, a runtime the artifact cannot use.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    root = Path(artifact_dir)
    manifest = read_manifest(root)
    if _served_by_openvino(manifest, runtime, root):
        return OpenVinoPredictor(manifest, root, precision)
    model_path = root / manifest.model_file
    predictor: Predictor
    try:
        if manifest.kind == "keras":
            model = _load_keras(model_path)
            _check_keras_shapes(model, manifest)
            predictor = KerasPredictor(manifest, model)
        else:
            predictor = SklearnPredictor(manifest, _load_sklearn(model_path))
    except ArtifactError:
        raise
    except Exception as err:  # noqa: BLE001  (any loader failure means a bad artifact)
        raise ArtifactError(f"{model_path}: cannot load {manifest.kind} model: {err}") from err
    return predictor


def runtime_name(predictor: Predictor) -> str:
    """What runs a predictor, for logs and ``classify``: ``OpenVINO (bf16)``, ``Keras (tensorflow)``, ..."""
    if isinstance(predictor, KerasPredictor):
        return f"Keras ({predictor.backend})"
    if isinstance(predictor, SklearnPredictor):
        return "scikit-learn"
    if isinstance(predictor, OpenVinoPredictor):
        return f"OpenVINO ({predictor.precision})"
    return type(predictor).__name__


def _export_serving(model: Any, manifest: ArtifactManifest, directory: Path) -> dict[str, Any]:
    """The ``serving`` field of a Keras artifact being saved in ``directory``: its export, or none."""
    try:
        return export_serving(model, manifest, directory)
    except ExportUnsupported as err:
        log.info("no serving export (%s): the artifact will be served through Keras", err)
        return {}


def _largest_difference(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> float:
    """The largest difference in any score of any output (both have the same outputs and shapes)."""
    return max(float(np.abs(got[name] - scores).max()) for name, scores in expected.items())


def _check_serving_export(
    directory: Path, manifest: ArtifactManifest, probe: np.ndarray, expected: dict[str, np.ndarray]
) -> None:
    """Hold the export, run in float32, to the Keras model's scores; record its largest difference."""
    error = _largest_difference(
        OpenVinoPredictor(manifest, directory, "f32").predict_outputs(probe), expected
    )
    if error > manifest.serving["tolerance"]:
        raise ArtifactError(
            f"serving export disagrees with the Keras model (max diff {error:.2e}, "
            f"tolerance {manifest.serving['tolerance']:.0e})"
        )
    manifest.serving["max_abs_error"] = error
    write_manifest(directory, manifest)


def _served_by_openvino(manifest: ArtifactManifest, runtime: str, root: Path) -> bool:
    """Whether ``runtime`` serves this artifact through its export (see ``RUNTIMES``)."""
    if manifest.kind != "keras" or runtime == "keras":
        return False
    if runtime == "auto":
        return bool(manifest.serving) and importlib.util.find_spec("openvino") is not None
    if not manifest.serving:
        raise ArtifactError(
            f"{root}: no serving export (an older artifact, or an architecture without one): "
            "add one with `genretag export`, or serve it with runtime 'keras'"
        )
    return True


def _check_keras_shapes(model: Any, manifest: ArtifactManifest) -> None:
    in_len = model.inputs[0].shape[-1]
    if in_len is not None and in_len != manifest.window_samples:
        raise ArtifactError(
            f"manifest field 'window_seconds': model takes {in_len} samples, "
            f"manifest implies {manifest.window_samples}"
        )
    names = output_labels(manifest)
    if len(model.outputs) != len(names):
        raise ArtifactError(
            f"manifest field 'heads': model has {len(model.outputs)} outputs, manifest names "
            f"{len(names)} ({', '.join(names)})"
        )
    for (name, labels), output in zip(names.items(), model.outputs, strict=True):
        if output.shape[-1] != len(labels):
            field_name = "labels" if name == GENRE else f"heads.{name}"
            raise ArtifactError(
                f"manifest field '{field_name}': model output {name!r} has {output.shape[-1]} scores, "
                f"manifest lists {len(labels)} labels"
            )


def known_inputs(manifest: ArtifactManifest, seed: int = 0) -> np.ndarray:
    """Silence, white noise and a tone: inputs every exported model must survive."""
    n = manifest.window_samples
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float32) / manifest.sample_rate
    return np.stack(
        [
            np.zeros(n, np.float32),
            (0.3 * rng.standard_normal(n)).astype(np.float32),
            (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32),
        ]
    )


def check_predictions(manifest: ArtifactManifest, outputs: dict[str, np.ndarray]) -> None:
    """Every output must be finite probabilities of the right shape (softmax ones summing to one)."""
    kinds = {GENRE: manifest.output} | {name: h["output"] for name, h in manifest.heads.items()}
    for name, labels in output_labels(manifest).items():
        scores = outputs.get(name)
        if scores is None or scores.shape[1:] != (len(labels),):
            got = "none" if scores is None else f"shape {scores.shape}"
            raise ArtifactError(f"model output {name!r}: {got}, expected (n, {len(labels)})")
        if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
            raise ArtifactError(f"model output {name!r}: scores outside [0, 1] or non-finite")
        if kinds[name] == "softmax" and not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
            raise ArtifactError(f"model output {name!r}: softmax scores do not sum to one")


def save_artifact(model: Any, manifest: ArtifactManifest, out_dir: str | Path) -> Predictor:
    """Save a model and manifest, then reload and re-check it on known inputs.

    The artifact is written to a temporary sibling directory and moved into
    place only after the reloaded model reproduces the in-memory model's
    scores, so a broken export never ships and never replaces a good one.
    """
    check_heads(manifest.heads)  # before the model is run on its account
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; an artifact must be readable by the service user
    try:
        if manifest.kind == "keras":
            _check_keras_shapes(model, manifest)
            serving = _export_serving(model, manifest, staging)
            manifest = replace(manifest, model_file=KERAS_FILE, serving=serving)
            model.save(staging / KERAS_FILE)
            live: Predictor = KerasPredictor(manifest, model)
        else:
            from genretag.models.sklearn_io import save_estimator

            manifest = replace(manifest, model_file=SKLEARN_FILE)
            save_estimator(model, staging / SKLEARN_FILE)
            live = SklearnPredictor(manifest, model)
        write_manifest(staging, manifest)
        probe = known_inputs(manifest)
        expected = live.predict_outputs(probe)
        check_predictions(manifest, expected)
        reloaded = load_predictor(staging, runtime="keras")
        diff = _largest_difference(reloaded.predict_outputs(probe), expected)
        if diff > 1e-4:
            raise ArtifactError(f"reloaded model disagrees with the trained one (max diff {diff:.2e})")
        if manifest.serving:
            _check_serving_export(staging, manifest, probe, expected)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        return load_predictor(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
