"""``genretag export``: give an older Keras artifact the serving export that newer ones are saved with."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def export(model_dir: Path) -> None:
    """Add the ONNX export that serves MODEL_DIR without TensorFlow, in place.

    Artifacts saved by this version of genretag have it already; this is for
    older ones.  The artifact is saved anew (its Keras model unchanged) with
    model.onnx next to it, checked against the Keras model on known inputs,
    and replaces the old one only once that check passes.  Architectures
    whose graph has no such export (cnn1d, cnn2d, mobilenet) are left as
    they are, served through Keras.
    """
    from genretag.models.artifact import ArtifactError, read_manifest
    from genretag.models.predictor import import_keras, save_artifact

    try:
        manifest = read_manifest(model_dir)
        if manifest.kind != "keras":
            raise click.ClickException(f"{model_dir}: a {manifest.kind} artifact needs no export")
        keras = import_keras()
        model = keras.saving.load_model(model_dir / manifest.model_file, compile=False, safe_mode=True)
        saved = save_artifact(model, manifest, model_dir).manifest
    except ArtifactError as err:
        raise click.ClickException(str(err)) from None
    if not saved.serving:
        raise click.ClickException(
            f"{model_dir}: architecture {saved.architecture!r} has no serving export; "
            "it is served through Keras"
        )
    click.echo(
        f"{model_dir}: {saved.serving['file']} added (largest score difference from the Keras model "
        f"{saved.serving['max_abs_error']:.1e})"
    )
