"""``genretag compare``: every model type on the same splits, one results table.

Models are trained into ``OUT/models/NAME`` or reused from there when the
artifact there was trained on this very dataset (same fingerprint), and a
reused artifact's figures are taken from the earlier ``results.json`` when it
is the very same artifact, so an interrupted comparison resumes where it
stopped without scoring anything twice (figures made under another clip rule,
:data:`~genretag.models.clip_scoring.CLIP_RULE`, are scored again).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genretag.models.artifact import ArtifactError
from genretag.models.clip_scoring import CLIP_RULE
from genretag.models.predictor import Predictor, load_predictor
from genretag.training.metrics import evaluate_windows
from genretag.training.reader import DatasetInfo, read_dataset
from genretag.training.report import fmt_metric, plot_comparison
from genretag.training.runner import TrainOptions, labelled, train_model
from genretag.training.scoring import score_clips

log = logging.getLogger(__name__)
COLUMNS = (("hit_at_1", "hit@1"), ("macro_f1", "macro-F1"), ("macro_roc_auc", "ROC-AUC"))


def _reusable(path: Path, info: DatasetInfo) -> Predictor | None:
    try:
        predictor = load_predictor(path)
    except ArtifactError:
        return None
    same_data = predictor.manifest.training_data.get("fingerprint") == info.fingerprint
    return predictor if same_data else None


def _split_figures(predictor: Predictor, info: DatasetInfo, data: Path, split: str) -> dict[str, Any] | None:
    if not info.counts["splits"].get(split):
        return None
    scored = score_clips(predictor, labelled(info, data, split))
    return evaluate_windows(scored, info.labels)["clip"]


def results_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The seed-style table: one row per model, clip-level dev and test figures."""
    head = " | ".join(f"{split} {title}" for split in ("dev", "test") for _, title in COLUMNS)
    lines = [f"| model | {head} |", "|---" * (1 + 2 * len(COLUMNS)) + "|"]
    for row in rows:
        cells = [
            fmt_metric((row.get(split) or {}).get(key)) for split in ("dev", "test") for key, _ in COLUMNS
        ]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_models(
    data: Path, out_dir: Path, names: Sequence[str], options: TrainOptions, retrain: bool = False
) -> str:
    """Train or reuse each model, score dev and test, write results.{md,json,png}; return the table."""
    info = read_dataset(data)
    results = out_dir / "results.json"
    earlier = {
        (r["model"], r.get("fingerprint"), r.get("clip_rule")): r
        for r in (json.loads(results.read_text()) if results.is_file() and not retrain else [])
    }
    rows = []
    for name in names:
        path = out_dir / "models" / name
        predictor = None if retrain else _reusable(path, info)
        if predictor is None:
            log.info("training %s", name)
            predictor = train_model(name, data, path, options)
        else:
            log.info("reusing %s", path)
        fingerprint = predictor.manifest.fingerprint()
        row = earlier.get((name, fingerprint, CLIP_RULE)) or {
            "model": name,
            "fingerprint": fingerprint,
            "clip_rule": CLIP_RULE,
            "dev": _split_figures(predictor, info, data, "dev"),
            "test": _split_figures(predictor, info, data, "test"),
        }
        rows.append(row)
        results.write_text(json.dumps(rows, indent=2) + "\n")
    table = results_markdown(rows)
    (out_dir / "results.md").write_text(
        f"# Model comparison on {data}\n\nClip level ({CLIP_RULE}).\n\n{table}"
    )
    plot_comparison(rows, out_dir / "results.png")
    return table
