"""Artist-grouped cross-validation of backbone heads.

Model choice here is made on K folds whose test artists never appear in
training, not on one dev split: with 136 artists, one lucky split can move
hit@1 by ten points.  A genre whose every clip comes from one artist (blues
and reggae in ../shared) cannot be cross-validated at all - in the fold that
holds its artist, training has no example of it - so its recall is reported
as not measurable and left out of the per-genre mean.

Clip scores follow the clip rule of ``classify`` (:mod:`genretag.models.clip_scoring`);
the embeddings carry no audio, so each window's level is measured from the clips
by :func:`~genretag.training.backbone_train.backbone_window_levels` and passed along.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from genretag.training.backbone_train import HeadConfig, WindowEmbeddings, fit_head
from genretag.training.metrics import ScoredWindows, hit_at_1, macro_roc_auc, per_label_recall
from genretag.training.report import fmt_metric


def grouped_folds(emb: WindowEmbeddings, n_folds: int, seed: int) -> list[np.ndarray]:
    """Per fold, a boolean mask of test windows; folds are disjoint in groups, stratified by label."""
    from sklearn.model_selection import StratifiedGroupKFold

    clip_ids, first = np.unique(emb.clip_ids, return_index=True)
    clip_label = emb.labels[first].argmax(axis=1)
    clip_group = emb.groups[first]
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    masks = []
    for _, test_idx in splitter.split(clip_ids, clip_label, clip_group):
        masks.append(np.isin(emb.clip_ids, clip_ids[test_idx]))
    return masks


def single_group_labels(emb: WindowEmbeddings) -> np.ndarray:
    """Labels carried by clips of one group only: not measurable by grouped CV."""
    return np.array([len(set(emb.groups[emb.labels[:, j] > 0])) < 2 for j in range(emb.labels.shape[1])])


def cross_validate(
    emb: WindowEmbeddings,
    config: HeadConfig,
    names: Sequence[str],
    n_folds: int = 5,
    seed: int = 0,
    levels_db: np.ndarray | None = None,
) -> dict[str, Any]:
    """Out-of-fold clip-level hit@1, macro ROC-AUC and per-genre recall of one head config.

    ``levels_db``: each window's level
    (:func:`~genretag.training.backbone_train.backbone_window_levels`) for the clip rule's
    silent-window filter; None leaves the filter out (every window counts as audible).
    """
    x = emb.select(config)
    oof = np.zeros(emb.labels.shape, np.float32)
    for test in grouped_folds(emb, n_folds, seed):
        train = ~test
        head = fit_head(x[train], emb.labels[train], emb.clip_ids[train], config.C, seed)
        oof[test] = head.predict(x[test])
    clips = ScoredWindows(oof, emb.labels, emb.clip_ids, levels_db).by_clip()
    unmeasurable = single_group_labels(emb)
    measurable = ~unmeasurable
    rows = clips.labels[:, measurable].any(axis=1)
    recall = per_label_recall(clips.scores, clips.labels)
    return {
        "config": asdict(config),
        "folds": n_folds,
        "clips": int(rows.sum()),
        "hit_at_1": float(hit_at_1(clips.scores[rows], clips.labels[rows]).mean()),
        "macro_roc_auc": macro_roc_auc(clips.scores[rows][:, measurable], clips.labels[rows][:, measurable]),
        "mean_per_genre_recall": float(np.nanmean(recall[measurable])),
        "per_genre_recall": {
            name: (None if unmeasurable[j] else float(recall[j])) for j, name in enumerate(names)
        },
    }


CANDIDATES: tuple[HeadConfig, ...] = tuple(
    HeadConfig(variants=variants, layers=layers, C=C)
    for variants, layers in (
        (("MSD_musicnn",), ("penultimate",)),
        (("MSD_musicnn", "MTT_musicnn"), ("penultimate",)),
        (("MSD_musicnn", "MTT_musicnn"), ("taggram",)),
        (("MSD_musicnn", "MTT_musicnn"), ("penultimate", "taggram")),
    )
    for C in (0.001, 0.01)
)
"""Heads compared by ``genretag crossval`` (the default, :class:`HeadConfig`, is among them)."""


def describe(config: HeadConfig | dict[str, Any]) -> str:
    c = config if isinstance(config, dict) else asdict(config)
    backbones = "+".join(v.split("_")[0] for v in c["variants"])
    return f"{backbones} {'+'.join(c['layers'])} C={c['C']:g}"


def format_table(results: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """Markdown: one row per candidate, headline figures then per-genre recall."""
    head = "| head | hit@1 | macro ROC-AUC | mean per-genre | " + " | ".join(names) + " |"
    lines = [head, "|---" * (4 + len(names)) + "|"]
    for r in results:
        cells = [fmt_metric(r[k]) for k in ("hit_at_1", "macro_roc_auc", "mean_per_genre_recall")]
        cells += [
            "n/a" if r["per_genre_recall"][n] is None else fmt_metric(r["per_genre_recall"][n]) for n in names
        ]
        lines.append(f"| {describe(r['config'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
