"""Distil the bundled fast model on a GPU box without TensorFlow (Keras 3 on JAX).

The teacher labels about ten windows a second on a 2-core CPU and over a thousand
on one GPU, so the distillation set (about 120,000 windows) is made there.
The GPU box lends no TensorFlow (no TFRecords), so this script takes plain
inputs, made where the collections live by ``tools/distill_inputs.py``:

* ``CLIPS``: JSON ``{"clips": [{"file": ..., "split": ...}, ...]}``, files
  relative to the JSON's folder (any format the project decodes; 24 kb/s Opus
  copies, because the lent machine takes at most 64 MiB a call);
* ``HEAD``: ``.npz`` of the teacher's calibrated head, its config and labels
  (:func:`genretag.training.distill.save_teacher_head`).

``--config`` sets the :class:`~genretag.training.distill.StudentConfig` fields that differ from
the defaults (JSON); the student goes to ``OUT.keras`` (PCM -> probabilities) with ``OUT.json``
(its config, the data, the time it took).  Several students can train side by side on one GPU,
one process each (``XLA_PYTHON_CLIENT_MEM_FRACTION`` shares its memory; the teacher's labelling,
bound by the GPU, then takes longer in each).

Run there as ``benchmarks/gpu.sh`` sets up (wheels in ``.whl/``, installed with ``pip --target``, and a
``genretag`` package of symlinks); besides keras, namex, optree, soundfile, cffi, pycparser and soxr it
needs librosa 0.11 and audioread, decorator, pooch, platformdirs (the front end's mel filters)::

    KERAS_BACKEND=jax python3 tools/distill_on_gpu.py CLIPS HEAD OUT [--config JSON]

How ``models/fast`` was made (2026-12-07; one H100 of ``device``: 1,152 clips decoded and 124,185
windows labelled in 193 s, 25 epochs in 232 s)::

    # here: teacher head = the default model's (checked against models/default), Opus copies (104 MiB)
    python tools/distill_inputs.py --manifest ../shared/data/music/manifest.csv \\
        --manifest ../shared/data/mer4q/manifest.csv --teacher models/default \\
        --copies .dist/audio --out .dist/jobs/all --cache CACHE
    # device: .dist/audio travels in three calls to a warm machine (64 MiB each, the tree included),
    # e.g. music/audio/emotify + mer4q/audio/hiphop + .whl, then music/audio/gtzan + mer4q/audio/{pop,blues,
    # classical}, then mer4q/audio/{electronic,jazz,country,reggae} + .dist/jobs with the command:
    KERAS_BACKEND=jax python3 tools/distill_on_gpu.py .dist/jobs/all/clips.json \\
        .dist/jobs/all/head.npz $OUT/all-small --config '{"augmented_windows": 61440}'
    # here again, with the figures measured on its held-out twin (README, "The bundled fast model")
    python tools/student_artifact.py all-small.keras models/fast --dev-metrics FIGURES.json

The held-out twin is the same three steps with ``--manifest ../shared/data/music/manifest.csv
--report-on ../shared/data/mer4q/manifest.csv`` (no ``--teacher``: the temperature is fitted as
``train-tagger`` fits it) and ``--out .dist/jobs/music``, then ``python -m benchmarks.clip_level`` on
``mer4q/`` and ``python -m benchmarks.programme --seed 1`` (README).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from genretag.models.musicnn_input import BACKBONE_RATE
from genretag.pipeline.audio import decode
from genretag.training.distill import (
    StudentConfig,
    assemble_student,
    config_from_json,
    distillation_data,
    fit_student,
    load_teacher_head,
)


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


def device_name() -> str:
    """The accelerator and framework that trained the student, for its manifest."""
    import keras

    if keras.backend.backend() != "jax":
        return f"Keras {keras.__version__} on {keras.backend.backend()}"
    import jax

    return f"{jax.devices()[0].device_kind}, Keras {keras.__version__} on JAX {jax.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("clips", type=Path)
    parser.add_argument("head", type=Path)
    parser.add_argument("out", type=Path, help="the student is saved as OUT.keras, its report as OUT.json")
    parser.add_argument("--splits", default="train,dev,test", help="comma-separated splits to distil on")
    parser.add_argument("--config", default="{}", help="StudentConfig fields as JSON [the defaults]")
    args = parser.parse_args()
    config = config_from_json(StudentConfig, json.loads(args.config))
    splits = set(args.splits.split(","))
    started = time.monotonic()
    train, dev = load_clips(args.clips, splits)
    head, teacher, labels, info = load_teacher_head(args.head)
    data = distillation_data(train, head, config, teacher)
    validation = (
        distillation_data(dev, head, config, teacher, augmented=False)
        if dev and "dev" not in splits
        else None
    )
    labelled = time.monotonic() - started
    print(f"{len(train)} clips, {len(data.mels)} windows labelled in {labelled:.0f} s", flush=True)
    started = time.monotonic()
    model = assemble_student(fit_student(data, head, config, validation), teacher.normalize_db)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out.with_suffix(".keras"))
    report = {
        "student": asdict(config),
        "teacher": asdict(teacher),
        "labels": labels,
        "teacher_info": info,
        "clips": len(train),
        "windows": len(data.mels),
        "augmented_windows": config.augmented_windows,
        "labelling_seconds": round(labelled),
        "training_seconds": round(time.monotonic() - started),
        "device": device_name(),
    }
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    print(f"{args.out}: trained in {report['training_seconds']} s", flush=True)


if __name__ == "__main__":
    main()
