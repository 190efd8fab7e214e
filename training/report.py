"""Writing evaluation results: metrics JSON, a markdown table, a confusion-matrix PNG, bar charts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genretag.training.metrics import ScoredWindows, confusion, evaluate_windows

HEADLINE = ("hit_at_1", "macro_f1", "macro_roc_auc", "mean_per_genre_recall")


def fmt_metric(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def metrics_markdown(metrics: dict[str, Any], labels: Sequence[str]) -> str:
    """Window- and clip-level headline figures, then per-genre recall."""
    lines = [
        "| level | n | hit@1 | macro-F1 | macro ROC-AUC | mean per-genre recall |",
        "|---|---|---|---|---|---|",
    ]
    for level in ("window", "clip"):
        m = metrics[level]
        lines.append(f"| {level} | {m['n']} | " + " | ".join(fmt_metric(m[k]) for k in HEADLINE) + " |")
    lines += ["", "| genre | clip recall | window recall |", "|---|---|---|"]
    for name in labels:
        lines.append(
            f"| {name} | {fmt_metric(metrics['clip']['per_genre_recall'][name])} | "
            f"{fmt_metric(metrics['window']['per_genre_recall'][name])} |"
        )
    return "\n".join(lines) + "\n"


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(labels), 1 + 0.55 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                color="white" if v > matrix.max() / 2 else "black",
                fontsize=8,
            )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_evaluation(
    scored: ScoredWindows, labels: Sequence[str], out_dir: Path, title: str
) -> dict[str, Any]:
    """Write ``metrics.json``, ``metrics.md`` and ``confusion.png`` (clip level) to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_windows(scored, labels)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / "metrics.md").write_text(f"# {title}\n\n" + metrics_markdown(metrics, labels))
    clips = scored.by_clip()
    plot_confusion(
        confusion(clips.scores, clips.labels), labels, out_dir / "confusion.png", f"{title} (clip level)"
    )
    return metrics


def plot_comparison(rows: Sequence[dict[str, Any]], path: Path, metric: str = "hit_at_1") -> None:
    """Bar chart of dev and test clip-level ``metric`` per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["model"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(rows), 4))
    for offset, split in ((-0.2, "dev"), (0.2, "test")):
        values = [(r.get(split) or {}).get(metric, np.nan) for r in rows]
        ax.bar(x + offset, values, width=0.4, label=split)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel(f"clip {metric}")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
