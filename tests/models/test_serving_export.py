"""Serving exports: written and checked at save time, tamper-proof, and served without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from genretag.cli.main import cli
from genretag.cli.model_option import RUNTIME_CHOICES
from genretag.daemon.config import PRECISIONS as CONFIG_PRECISIONS
from genretag.daemon.config import RUNTIMES as CONFIG_RUNTIMES
from genretag.models.artifact import ArtifactError, ArtifactManifest, read_manifest, write_manifest
from genretag.models.frontend import LogMelFrontEnd
from genretag.models.loudness import RmsNormalization
from genretag.models.openvino_predictor import PRECISIONS, OpenVinoPredictor
from genretag.models.predictor import RUNTIMES, KerasPredictor, known_inputs, load_predictor, save_artifact
from genretag.pipeline.synth import electronic_loop, string_chords

SR = 16000
SAMPLES = 47616
LABELS = ["a", "b", "c"]


def _student_like() -> keras.Model:
    """PCM -> loudness -> log-mel -> a "student_scores" sub-model: the shape of a distilled student."""
    mel = keras.Input((187, 96))
    x = keras.layers.Conv1D(8, 5, activation="relu")(mel)
    x = keras.layers.GlobalMaxPooling1D()(x)
    body = keras.Model(mel, keras.layers.Dense(len(LABELS), activation="softmax")(x), name="student_scores")
    pcm = keras.Input((SAMPLES,))
    return keras.Model(pcm, body(LogMelFrontEnd(name="log_mel")(RmsNormalization(name="loudness")(pcm))))


def _manifest(architecture: str = "musicnn-student") -> ArtifactManifest:
    return ArtifactManifest(
        kind="keras",
        architecture=architecture,
        labels=LABELS,
        output="softmax",
        sample_rate=SR,
        window_seconds=SAMPLES / SR,
        hop_seconds=1.5,
        model_file="",
    )


def _music() -> np.ndarray:
    return np.stack([electronic_loop(3.0, SR, seed=1)[:SAMPLES], string_chords(3.0, SR, seed=2)[:SAMPLES]])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serving") / "student"
    save_artifact(_student_like(), _manifest(), out)
    return out


def test_save_writes_a_checked_export_that_serves_like_keras(exported: Path) -> None:
    manifest = read_manifest(exported)
    assert set(manifest.files) == {"model.keras", "model.onnx"}
    assert manifest.serving["runtime"] == "openvino" and manifest.serving["input"] == "power_spectrum"
    assert 0 <= manifest.serving["max_abs_error"] <= manifest.serving["tolerance"] == 1e-4
    served = load_predictor(exported)
    assert isinstance(served, OpenVinoPredictor)
    keras_predictor = load_predictor(exported, runtime="keras")
    assert isinstance(keras_predictor, KerasPredictor)
    windows = np.concatenate([known_inputs(manifest), _music()])
    exact = load_predictor(exported, precision="f32").predict(windows)
    np.testing.assert_allclose(exact, keras_predictor.predict(windows), atol=1e-4)
    # "auto" may compute in bfloat16 where the CPU has it: close, not exact.
    np.testing.assert_allclose(served.predict(windows), exact, atol=0.03)
    assert served.predict(np.zeros((0, SAMPLES), np.float32)).shape == (0, 3)
    # More windows than one inference request holds, given as a list of rows.
    many = list(np.tile(windows, (4, 1)))
    np.testing.assert_allclose(served.predict(many), np.tile(served.predict(windows), (4, 1)), atol=1e-6)


def test_a_changed_export_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in exported.iterdir():
        copy.joinpath(path.name).write_bytes(path.read_bytes())
    onnx = copy / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"x" * 10)
    with pytest.raises(ArtifactError, match="model.onnx.*tampered"):
        load_predictor(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["serving"]["file"] = "other.onnx"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="'serving'.*other.onnx.*not listed"):
        load_predictor(copy)


def test_architectures_without_an_export_are_served_by_keras(tmp_path: Path) -> None:
    pcm = keras.Input((SAMPLES,))
    x = keras.layers.Reshape((-1, 1))(pcm)
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Conv1D(4, 64, strides=32)(x))
    model = keras.Model(pcm, keras.layers.Dense(3, activation="softmax")(x))
    saved = save_artifact(model, _manifest("cnn1d"), tmp_path / "raw")
    assert saved.manifest.serving == {} and set(saved.manifest.files) == {"model.keras"}
    assert isinstance(load_predictor(tmp_path / "raw"), KerasPredictor)
    with pytest.raises(ArtifactError, match="no serving export.*genretag export"):
        load_predictor(tmp_path / "raw", runtime="openvino")


def test_export_command_adds_the_export_to_an_older_artifact(exported: Path, tmp_path: Path) -> None:
    older = tmp_path / "older"
    older.mkdir()
    older.joinpath("model.keras").write_bytes((exported / "model.keras").read_bytes())
    manifest = read_manifest(exported)
    manifest.serving = {}
    write_manifest(older, manifest)
    assert isinstance(load_predictor(older), KerasPredictor)

    result = CliRunner().invoke(cli, ["export", str(older)])

    assert result.exit_code == 0, result.output
    assert "model.onnx added" in result.output
    assert isinstance(load_predictor(older), OpenVinoPredictor)


def test_serving_a_bundled_model_imports_no_deep_learning_framework() -> None:
    script = (
        "import sys, numpy as np\nfrom genretag.models.bundled import resolve_model\n"
        "from genretag.models.predictor import load_predictor\n"
        "p = load_predictor(resolve_model('fast'))\n"
        "s = p.predict(np.zeros((2, p.manifest.window_samples), np.float32))\n"
        "frameworks = ('tensorflow', 'keras', 'jax', 'torch')\n"
        "print(s.shape, sorted(m for m in frameworks if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(2, 11) []"


def test_runtime_and_precision_choices_are_spelled_alike_everywhere() -> None:
    assert RUNTIMES == CONFIG_RUNTIMES == RUNTIME_CHOICES and PRECISIONS == CONFIG_PRECISIONS


def test_a_command_missing_the_training_extra_names_it(exported: Path) -> None:
    """In a serving-only install (no Keras), ``export`` fails with a line that says what to install."""
    script = (
        "import sys\nsys.modules['keras'] = None  # as if not installed\n"
        "from genretag.cli.main import cli\ncli(['export', sys.argv[1]])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(exported)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "genretag: error: this command needs keras, part of the training extra: pip install 'genretag[train]'"
    )


def test_classify_gives_the_same_labels_on_either_runtime(exported: Path, tmp_path: Path) -> None:
    import soundfile as sf

    clip = tmp_path / "loop.wav"
    sf.write(clip, electronic_loop(7.0, SR, seed=4), SR)
    rows = {}
    for runtime in ("openvino", "keras"):
        args = ["classify", "--json", "--model", str(exported), "--runtime", runtime, str(clip)]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        rows[runtime] = json.loads(result.output.strip().splitlines()[-1])
    assert rows["openvino"]["label"] == rows["keras"]["label"]
    for label, score in rows["keras"]["scores"].items():
        assert abs(rows["openvino"]["scores"][label] - score) < 0.03
