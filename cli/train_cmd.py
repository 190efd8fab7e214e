"""``genretag train``, ``compare`` and ``crossval``: model training and selection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from genretag.cli import messages
from genretag.cli.training_options import artifact_out_option, dataset_option, embedding_cache_option
from genretag.models.model_types import MODEL_CHOICES
from genretag.training.strategy import is_chief

if TYPE_CHECKING:
    from genretag.training.runner import TrainOptions


def _training_options(f: click.decorators.FC) -> click.decorators.FC:
    """Options every training command shares."""
    for option in reversed(
        [
            click.option("--seed", default=0, show_default=True, help="Random seed (runs are repeatable)."),
            click.option(
                "--epochs",
                default=30,
                show_default=True,
                help="Maximum epochs for Keras models (early stopping on dev ends sooner).",
            ),
            click.option("--batch-size", default=32, show_default=True),
            click.option(
                "--patience",
                default=5,
                show_default=True,
                help="Epochs without dev improvement before stopping.",
            ),
            click.option(
                "--steps-per-epoch",
                type=int,
                default=None,
                help="Cap training steps per epoch (default: one pass of random crops).",
            ),
            click.option(
                "--imagenet-weights",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Local MobileNetV2 ImageNet weights (.h5, no top) for 'mobilenet'; "
                "without it mobilenet trains from scratch. Never downloaded.",
            ),
            click.option(
                "--cache",
                "cache_dir",
                type=click.Path(path_type=Path),
                default=None,
                help="Folder to cache musicnn embeddings and scikit-learn window features in "
                "(per clip / per split; safe to delete).",
            ),
            click.option(
                "--output",
                type=click.Choice(["softmax", "sigmoid"]),
                default="softmax",
                show_default=True,
                help="Keras models: softmax with soft targets (a two-label clip counts half to "
                "each) or independent sigmoids for multi-label data.",
            ),
        ]
    ):
        f = option(f)
    return f


def _options(
    seed: int,
    epochs: int,
    batch_size: int,
    patience: int,
    steps_per_epoch: int | None,
    imagenet_weights: Path | None,
    cache_dir: Path | None,
    output: str,
    train_splits: tuple[str, ...] = ("train",),
    cv_folds: int = 0,
) -> TrainOptions:
    from genretag.training.runner import TrainOptions

    return TrainOptions(
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        steps_per_epoch=steps_per_epoch,
        imagenet_weights=imagenet_weights,
        cache_dir=cache_dir,
        output=output,
        train_splits=train_splits,
        cv_folds=cv_folds,
    )


@click.command()
@dataset_option()
@click.option(
    "--model-type",
    "model_name",
    type=click.Choice(MODEL_CHOICES),
    help="Model type (required): scikit-learn baselines on librosa features (logreg, knn, gnb, "
    "svm), "
    "Keras from scratch (cnn1d, cnn2d, mobilenet), or a head on the pretrained "
    "musicnn backbones (musicnn), or a small CNN distilled from that recipe (student: "
    'slow on a CPU, minutes on a GPU; the bundled "fast" model).',
)
@click.option(
    "--model",
    "model_name_old",
    type=click.Choice(MODEL_CHOICES),
    hidden=True,
    help="Deprecated spelling of --model-type (--model names an artifact in the other commands).",
)
@artifact_out_option()
@click.option(
    "--train-splits",
    default="train",
    show_default=True,
    help="Comma-separated splits to train on, e.g. 'train,dev' for a final model.",
)
@click.option(
    "--cross-validate",
    "cv_folds",
    default=0,
    show_default=True,
    help="musicnn: also cross-validate the head on the training clips with this many "
    "artist-grouped folds and record the figures in the manifest.",
)
@_training_options
def train(
    data: Path,
    model_name: str | None,
    model_name_old: str | None,
    out_dir: Path,
    train_splits: str,
    cv_folds: int,
    **kw: object,
) -> None:
    """Train one model on a built dataset and save a validated artifact.

    Hyper-parameters and early stopping use the dev split; dev figures go into
    the artifact's manifest.  TensorBoard logs of Keras models go to OUT.logs/.
    With TF_CONFIG naming a cluster, run the same command on every worker:
    Keras models train with MultiWorkerMirroredStrategy (--batch-size is the
    global batch) and only the chief (worker 0) writes OUT.
    """
    model_name = _model_type(model_name, model_name_old)
    from genretag.training.runner import train_model

    splits = tuple(s.strip() for s in train_splits.split(",") if s.strip())
    options = _options(**kw, train_splits=splits, cv_folds=cv_folds)  # type: ignore[arg-type]
    predictor = train_model(model_name, data, out_dir, options)
    if not is_chief():
        click.echo(f"trained as a worker of the TF_CONFIG cluster; the chief saves {out_dir}")
        return
    cv = predictor.manifest.dev_metrics.get("cross_validation")
    if cv:
        click.echo(
            f"{cv['folds']}-fold artist-grouped CV: hit@1 {cv['hit_at_1']:.3f}  macro ROC-AUC "
            f"{cv['macro_roc_auc']:.3f}  mean per-genre recall {cv['mean_per_genre_recall']:.3f}"
        )
    clip = predictor.manifest.dev_metrics.get("clip")
    replicas = predictor.manifest.training_data.get("replicas")
    on = f", trained on {replicas} replicas" if replicas else ""
    click.echo(f"saved {out_dir} ({model_name}, {len(predictor.manifest.labels)} labels{on})")
    if clip:
        click.echo(
            f"dev clip hit@1 {clip['hit_at_1']:.3f}  macro-F1 {clip['macro_f1']:.3f}  "
            f"macro ROC-AUC {clip['macro_roc_auc']:.3f}"
        )


def _model_type(given: str | None, deprecated: str | None) -> str:
    """``--model-type``, or the old ``--model`` spelling with a deprecation warning."""
    if given and deprecated and given != deprecated:
        raise click.UsageError("--model (deprecated) and --model-type disagree; give --model-type only")
    if deprecated:
        messages.warning(
            "train --model is deprecated (elsewhere --model names an artifact): use --model-type"
        )
    if not (given or deprecated):
        raise click.UsageError("Missing option '--model-type'.")
    return str(given or deprecated)


@click.command()
@dataset_option()
@click.option(
    "--out",
    "out_dir",
    default=Path("comparison"),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder for models/, results.md, results.json, results.png.",
)
@click.option(
    "--models",
    "model_names",
    default=",".join(MODEL_CHOICES),
    show_default=True,
    help="Comma-separated model types to include.",
)
@click.option("--retrain", is_flag=True, help="Train again even where OUT/models/NAME fits this dataset.")
@_training_options
def compare(data: Path, out_dir: Path, model_names: str, retrain: bool, **kw: object) -> None:
    """Train (or reuse) several model types on the same splits and tabulate dev and test figures."""
    from genretag.training.compare import compare_models

    names = [n.strip() for n in model_names.split(",") if n.strip()]
    unknown = sorted(set(names) - set(MODEL_CHOICES))
    if unknown:
        raise click.BadParameter(f"unknown model(s) {unknown}", param_hint="--models")
    table = compare_models(data, out_dir, names, _options(**kw), retrain)  # type: ignore[arg-type]
    click.echo(table)


@click.command()
@dataset_option("Dataset directory written by 'genretag dataset build' (all splits are pooled).")
@click.option("--folds", default=5, show_default=True, help="Artist-grouped folds.")
@click.option("--seed", default=0, show_default=True)
@embedding_cache_option("Folder to cache backbone embeddings in.")
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path),
    default=Path("crossval.json"),
    show_default=True,
    help="Where to write every candidate's figures.",
)
def crossval(data: Path, folds: int, seed: int, cache_dir: Path, out_file: Path) -> None:
    """Choose the backbone head by artist-grouped cross-validation.

    Pools every split, embeds each clip with both musicnn backbones, and scores
    candidate heads (backbone, layer, regularisation) on folds that never share
    an artist.  Genres of a single artist cannot be cross-validated and are
    reported as such.
    """
    from genretag.training.backbone_train import (
        HeadConfig,
        backbone_window_levels,
        dataset_clips,
        embed_clips,
    )
    from genretag.training.cross_validation import CANDIDATES, cross_validate, format_table
    from genretag.training.reader import read_dataset

    info = read_dataset(data)
    base = HeadConfig()
    clips = dataset_clips(data, [s for s, n in info.counts["splits"].items() if n])
    emb = embed_clips(clips, base.variants, base.hop_seconds, base.normalize_db, cache_dir)
    levels = backbone_window_levels(clips, base.hop_seconds)
    results = [cross_validate(emb, c, info.labels, folds, seed, levels) for c in CANDIDATES]
    out_file.write_text(json.dumps(results, indent=2) + "\n")
    click.echo(format_table(results, info.labels))
