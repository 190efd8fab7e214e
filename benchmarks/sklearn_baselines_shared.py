"""Dev-split scores of the four scikit-learn baselines on the shared music set.

Reads ``shared/data/music/manifest.csv`` directly (its ``split`` column is the
suggested artist-disjoint split), cuts 3 s windows every 1.5 s, trains every
baseline on ``train`` with its grid chosen on ``dev`` and prints clip-level
dev metrics and timings.  A stop-gap until the dataset/TFRecord reader
lands; not part of the test suite.

    python benchmarks/sklearn_baselines_shared.py [--cache DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from genretag.models.features import FeatureConfig, feature_names
from genretag.models.sklearn_models import BASELINES
from genretag.pipeline.audio import decode
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.sklearn_train import (
    Clip,
    WindowTable,
    build_sklearn_artifact,
    cached_feature_table,
    first_label_index,
    train_sklearn,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "music"
SPEC = WindowSpec(sample_rate=22050, window_seconds=3.0, hop_seconds=1.5)


def _clips(data: Path, rows: list[dict[str, str]], labels: list[str]) -> Iterator[Clip]:
    for row in rows:
        windows, _ = frame_windows(decode(data / row["path"], SPEC.sample_rate), SPEC)
        yield row["path"], windows, first_label_index(row["labels"].split(";"), labels)


def _split_table(data: Path, rows: list[dict[str, str]], split: str, labels: list[str],
                 config: FeatureConfig, cache: Path | None) -> WindowTable:
    chosen = [r for r in rows if r["split"] == split]
    key = hashlib.sha256(json.dumps([chosen, asdict(SPEC)], sort_keys=True).encode())
    started = time.perf_counter()
    table = cached_feature_table(cache / f"{split}.npz" if cache else None, key.hexdigest(),
                                 config, _clips(data, chosen, labels))
    seconds = time.perf_counter() - started
    print(f"{split}: {len(chosen)} clips, {len(table.features)} windows, features in "
          f"{seconds:.1f} s ({len(table.features) / seconds:.0f} windows/s incl. decoding)")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of manifest.csv")
    parser.add_argument("--cache", type=Path, help="folder to cache window features in")
    parser.add_argument("--out", type=Path, help="also save each baseline as an artifact here")
    args = parser.parse_args()

    with open(args.data / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = sorted({label for r in rows for label in r["labels"].split(";")})
    config = FeatureConfig(sample_rate=SPEC.sample_rate)
    print(f"{len(labels)} labels, {len(feature_names(config))} features per window")
    train = _split_table(args.data, rows, "train", labels, config, args.cache)
    dev = _split_table(args.data, rows, "dev", labels, config, args.cache)

    print(f"\n{'model':8} {'clip acc':>8} {'bal acc':>8} {'macro-F1':>8} {'win acc':>8} "
          f"{'seconds':>8}  params")
    for name in BASELINES:
        started = time.perf_counter()
        estimator, metrics = train_sklearn(name, train, dev, len(labels))
        seconds = time.perf_counter() - started
        print(f"{name:8} {metrics['clip_accuracy']:8.3f} {metrics['clip_balanced_accuracy']:8.3f} "
              f"{metrics['clip_macro_f1']:8.3f} {metrics['window_accuracy']:8.3f} "
              f"{seconds:8.1f}  {metrics['params']}")
        if args.out:
            build_sklearn_artifact(estimator, name, labels, SPEC, config, args.out / name,
                                   dev_metrics=metrics,
                                   training_data={"manifest": "music/manifest.csv",
                                                  "split": "train", "clips": len(set(train.clips)),
                                                  "windows": len(train.features)})


if __name__ == "__main__":
    main()
