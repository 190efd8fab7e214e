"""What the musicnn and vgg port tests share: real classical and metal windows, and the check that a
port's tags tell them apart (a port running random or misplaced weights does not)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from genretag.models.musicnn_input import WINDOW_SAMPLES
from genretag.pipeline.audio import decode

#: Tags whose summed scores must separate classical from metal clips, by the data set a backbone was
#: trained on (the first part of its variant name: MSD or MTT).
CALM_TAGS = {
    "MSD": ("instrumental", "ambient", "beautiful", "Mellow", "easy listening", "acoustic"),
    "MTT": ("classical", "strings", "violin", "cello", "piano", "harpsichord"),
}
HEAVY_TAGS = {
    "MSD": ("metal", "heavy metal", "hard rock", "rock", "punk"),
    "MTT": ("metal", "rock", "loud", "drums"),
}


def classical_and_metal_windows(
    shared_music: Path, clips_per_genre: int, windows_per_clip: int
) -> dict[str, np.ndarray]:
    """``{"classical"|"metal": (clips, windows, samples)}`` of real 3 s PCM windows at 16 kHz."""
    with open(shared_music / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    windows = {}
    for genre in ("classical", "metal"):
        paths = sorted(row["path"] for row in rows if row["labels"] == genre)[:clips_per_genre]
        seconds = windows_per_clip * 3.0 + 1.0
        clips = [decode(shared_music / path, sr=16000, max_seconds=seconds) for path in paths]
        windows[genre] = np.stack(
            [clip[: windows_per_clip * WINDOW_SAMPLES].reshape(windows_per_clip, -1) for clip in clips]
        )
    return windows


def assert_tags_separate_classical_from_metal(
    variant: str, names: list[str], clip_outputs: dict[str, dict[str, np.ndarray]], clips_per_genre: int
) -> None:
    """Every classical clip scores higher on the calm tags, every metal clip on the heavy ones."""
    dataset = variant.split("_")[0]
    calm = [names.index(tag) for tag in CALM_TAGS[dataset]]
    heavy = [names.index(tag) for tag in HEAVY_TAGS[dataset]]
    scores = {}
    for genre, outputs in clip_outputs.items():
        per_clip = outputs["taggram"].reshape(clips_per_genre, -1, outputs["taggram"].shape[-1]).mean(axis=1)
        scores[genre] = (per_clip[:, calm].sum(axis=1), per_clip[:, heavy].sum(axis=1))
    (classical_calm, classical_heavy), (metal_calm, metal_heavy) = scores.values()
    assert classical_calm.min() > metal_calm.max(), scores
    assert metal_heavy.min() > classical_heavy.max(), scores


def run_checkpoint_graph(
    prefix: str | Path, fetches: dict[str, str], mel: np.ndarray
) -> dict[str, np.ndarray]:
    """Run a checkpoint's own ``.meta`` training graph (inference mode) on log-mel patches.

    TF 1.12 stored ``_output_shapes`` attributes on some gradient nodes that
    disagree with their ops (e.g. ``FusedBatchNormGrad``), and TF 2.x's importer
    rejects them.  They are shape hints only, so they are dropped before
    ``import_meta_graph``; the graph itself is used as written.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(Path(prefix, ".meta").read_bytes())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        saver.restore(session, str(prefix))
        out: dict[str, np.ndarray] = session.run(
            fetches, {"model/Placeholder:0": mel, "model/Placeholder_2:0": False}
        )
    return out
