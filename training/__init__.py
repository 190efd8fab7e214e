"""Offline training: dataset sources -> TFRecord shards -> trainers -> evaluation."""
