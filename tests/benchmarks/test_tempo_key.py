"""The standard tempo and key measures of benchmarks/tempo_key.py."""

from __future__ import annotations

import pytest

from benchmarks.tempo_key import mirex_key_score, parse_key, signature_hit, tempo_accuracy


@pytest.mark.parametrize(
    ("estimate", "hits"),
    [
        (120.0, (True, True)),
        (124.7, (True, True)),
        (125.0, (False, False)),
        (60.0, (False, True)),
        (240.0, (False, True)),
        (360.0, (False, True)),
        (40.0, (False, True)),
        (180.0, (False, False)),
        (None, (False, False)),
    ],
)
def test_tempo_accuracy_one_and_two(estimate: float | None, hits: tuple[bool, bool]) -> None:
    assert tempo_accuracy(estimate, 120.0) == hits


@pytest.mark.parametrize(
    ("estimate", "score"),
    [
        ("C major", 1.0),
        ("G major", 0.5),
        ("F major", 0.0),
        ("A minor", 0.3),
        ("C minor", 0.2),
        ("E minor", 0.0),
    ],
)
def test_mirex_weights_against_c_major(estimate: str, score: float) -> None:
    assert mirex_key_score(parse_key(estimate), (0, "major")) == score


@pytest.mark.parametrize(
    ("estimate", "score"),
    [
        ("A minor", 1.0),
        ("E minor", 0.5),
        ("C major", 0.3),
        ("A major", 0.2),
        ("D minor", 0.0),
        (None, 0.0),
    ],
)
def test_mirex_weights_against_a_minor(estimate: str | None, score: float) -> None:
    assert mirex_key_score(parse_key(estimate) if estimate else None, (9, "minor")) == score


def test_annotations_without_a_mode() -> None:
    assert parse_key("relative-major D (mode unlabelled)") is None
    assert parse_key("") is None
    assert signature_hit((11, "minor"), 2) and signature_hit((2, "major"), 2)
    assert not signature_hit((2, "minor"), 2)
