"""Wrap a student from ``distill_on_gpu.py`` (``OUT.keras`` and ``OUT.json``) in a checked artifact.

Run where TensorFlow is (the artifact is reloaded and checked on known inputs)::

    python tools/student_artifact.py OUT.keras ARTIFACT_DIR [--dev-metrics FIGURES.json]

The manifest carries the student's and the teacher's configs, what it was distilled on (from
``OUT.json``), the teacher's training data, and its calibration: the student learnt the
teacher's calibrated probabilities, so it inherits the temperature (folded in) and the
abstention threshold.  ``--dev-metrics`` is a JSON object of figures measured on the
student (cross-source clips, programme benchmark), recorded as they are.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genretag.models.predictor import import_keras, save_artifact
from genretag.training.backbone_train import HeadConfig
from genretag.training.distill import StudentConfig, config_from_json, student_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("student", type=Path, help="OUT.keras from distill_on_gpu.py (OUT.json beside it)")
    parser.add_argument("out", type=Path, help="artifact folder to write")
    parser.add_argument("--dev-metrics", type=Path, help="JSON object of measured figures")
    args = parser.parse_args()

    report = json.loads(args.student.with_suffix(".json").read_text())
    info = report["teacher_info"]
    config = config_from_json(StudentConfig, report["student"])
    manifest = student_manifest(
        report["labels"],
        config,
        config_from_json(HeadConfig, report["teacher"]),
        distillation={
            "audio": info["audio"],
            "clips": report["clips"],
            "windows": report["windows"],
            "augmented_windows": report["augmented_windows"],
            "teacher_hop_seconds": config.teacher_hop_seconds,
            "trained_on": report["device"],
        },
        training_data={k: info[k] for k in ("manifests", "clips", "fingerprint")},
        calibration={
            "temperature": info["temperature"],
            "min_confidence": info["min_confidence"],
            "fitted_on": f"the teacher's ({info['temperature_fitted_on']}); the student learnt its "
            "calibrated probabilities",
        },
        dev_metrics=json.loads(args.dev_metrics.read_text()) if args.dev_metrics else {},
    )
    model = import_keras().saving.load_model(args.student, compile=False, safe_mode=True)
    save_artifact(model, manifest, args.out)
    print(f"{args.out}: {manifest.architecture}, {len(manifest.labels)} labels")


if __name__ == "__main__":
    main()
