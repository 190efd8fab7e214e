"""Distil the bundled fast model on a GPU box without TensorFlow (Keras 3 on JAX).

The teacher labels about ten windows a second on a 2-core CPU but a thousand
on one GPU, so the distillation set (about 60,000 windows) is made there.
The GPU box lends no TensorFlow (no TFRecords) and no scikit-learn, so this
script takes plain inputs, prepared where the dataset lives:

* ``CLIPS``: JSON ``{"clips": [{"file": ..., "split": ...}, ...]}``, files
  relative to the JSON's folder (any format the project decodes; the bundled model
  used 24 kb/s Opus copies, because the lent machine takes at most 64 MiB);
* ``HEAD``: ``.npz`` of the teacher's linear head (``mean, scale, coef,
  intercept``, from :func:`genretag.training.backbone_train.fit_head` on the
  same clips' embeddings).

Run: ``KERAS_BACKEND=jax python training/recipes/distill_on_gpu.py CLIPS HEAD OUT.keras [--splits train]``;
then wrap ``OUT.keras`` in an artifact with
:func:`genretag.training.distill.student_manifest` and
:func:`genretag.models.predictor.save_artifact` on a machine with TensorFlow,
which reloads and checks it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genretag.pipeline.audio import decode
from genretag.training.backbone_train import BACKBONE_RATE, LinearHead
from genretag.training.distill import StudentConfig, distil


def load_clips(clips_json: Path, splits: set[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """16 kHz mono clips of ``splits`` and of the dev split (for a dev loss when dev is held out)."""
    chosen, dev = [], []
    for clip in json.loads(clips_json.read_text())["clips"]:
        pcm = decode(clips_json.parent / clip["file"], BACKBONE_RATE)
        if clip["split"] in splits:
            chosen.append(pcm)
        elif clip["split"] == "dev":
            dev.append(pcm)
    return chosen, dev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path)
    parser.add_argument("head", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--splits", default="train,dev,test", help="comma-separated splits to distil on")
    args = parser.parse_args()
    splits = set(args.splits.split(","))
    train, dev = load_clips(args.clips, splits)
    with np.load(args.head) as h:
        head = LinearHead(h["mean"], h["scale"], h["coef"], h["intercept"])
    model = distil(train, head, StudentConfig(), dev_clips=dev if "dev" not in splits else ())
    model.save(args.out)


if __name__ == "__main__":
    main()
