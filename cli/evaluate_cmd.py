"""``genretag evaluate``: score a model artifact on labelled audio."""

from __future__ import annotations

import json
from pathlib import Path

import click

from genretag.cli.model_option import MODEL_HELP, runtime_option


@click.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help=MODEL_HELP)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A dataset directory from 'dataset build', or a source (manifest CSV, genre folders, FMA).",
)
@click.option(
    "--split",
    default=None,
    help="Split to score: train, dev or test (default: test for a dataset directory, "
    "every clip for a source).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("evaluation"),
    show_default=True,
    help="Folder for metrics.json, metrics.md and confusion.png.",
)
@runtime_option()
def evaluate(model_dir: Path | None, data: Path, split: str | None, out_dir: Path, runtime: str) -> None:
    """Window- and clip-level hit@1, macro-F1, macro ROC-AUC and per-genre recall.

    A clip's score follows classify's rule: at most 48 windows spread over the
    clip, those below -50 dBFS left out unless all are, the rest averaged
    (window-level figures use every window).  hit@1 counts the top label as
    right when it is any of the clip's labels.
    """
    from genretag.models.artifact import ArtifactError
    from genretag.models.bundled import resolve_model
    from genretag.models.predictor import load_predictor
    from genretag.training.eval_data import labelled_clips
    from genretag.training.report import write_evaluation
    from genretag.training.scoring import score_clips

    try:
        predictor = load_predictor(resolve_model(model_dir), runtime)
    except ArtifactError as err:
        raise click.ClickException(f"cannot load model: {err}") from None
    m = predictor.manifest
    scored = score_clips(predictor, labelled_clips(data, split, m.labels, m.sample_rate))
    if len(scored.scores) == 0:
        raise click.ClickException(f"no labelled clips with known labels in {data} (split {split})")
    metrics = write_evaluation(scored, m.labels, out_dir, f"{m.architecture} on {data.name}")
    click.echo((out_dir / "metrics.md").read_text())
    click.echo(json.dumps({"clip": {k: metrics["clip"][k] for k in ("n", "hit_at_1", "macro_roc_auc")}}))
