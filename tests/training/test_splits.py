"""Group-disjoint splits: generated, supplied, and on the real shared manifest."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest

from genretag.training.layouts import ClipSpec, read_layout
from genretag.training.splits import (
    SplitError,
    assign_splits,
    check_group_disjoint,
    parse_fractions,
    resolve_splits,
)


def clips_of(groups: dict[str, tuple[int, str]]) -> list[ClipSpec]:
    """``{group: (n_clips, label)}`` -> clips named ``group/i``."""
    return [
        ClipSpec(Path(f"{g}/{i}"), f"{g}/{i}", (label,), g)
        for g, (n, label) in groups.items()
        for i in range(n)
    ]


def assert_disjoint(clips: Sequence[ClipSpec]) -> None:
    """No group and no clip id in two splits."""
    splits_of: dict[str, set[str | None]] = defaultdict(set)
    for c in clips:
        splits_of[c.group].add(c.split)
    assert all(len(s) == 1 for s in splits_of.values()), splits_of
    assert len({c.clip_id for c in clips}) == len(clips)


def test_parse_fractions() -> None:
    assert parse_fractions("0.7,0.15,0.15") == pytest.approx((0.7, 0.15, 0.15))
    assert parse_fractions("70,15,15") == pytest.approx((0.7, 0.15, 0.15))
    assert parse_fractions("8,2,0") == pytest.approx((0.8, 0.2, 0.0))
    for bad in ("0.5,0.5", "a,b,c", "0,0.5,0.5", "0.7,-0.1,0.4"):
        with pytest.raises(SplitError):
            parse_fractions(bad)


def test_assign_splits_is_group_disjoint_stratified_and_deterministic() -> None:
    groups = {
        f"{label}-{i}": (1 + i % 4, label)
        for label, n in (("rock", 20), ("pop", 12), ("jazz", 6), ("solo", 1), ("duo", 2))
        for i in range(n)
    }
    clips = clips_of(groups)
    a = assign_splits(clips, (0.7, 0.15, 0.15), seed=3)
    assert_disjoint(a)
    assert a == assign_splits(list(reversed(clips)), (0.7, 0.15, 0.15), seed=3)[::-1]
    assert a != assign_splits(clips, (0.7, 0.15, 0.15), seed=4)
    per_label: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in a:
        per_label[c.labels[0]][str(c.split)] += 1
    for label in ("rock", "pop", "jazz"):  # >= 3 groups: reaches every split
        assert set(per_label[label]) == {"train", "dev", "test"}, per_label[label]
    assert set(per_label["solo"]) == {"train"}
    assert per_label["duo"]["train"] == 2  # the larger of its two groups
    rock = per_label["rock"]
    assert 0.55 < rock["train"] / sum(rock.values()) < 0.85


def test_zero_fraction_split_gets_nothing() -> None:
    clips = clips_of({f"g{i}": (1, "x") for i in range(10)})
    assert {c.split for c in assign_splits(clips, (0.8, 0.2, 0.0))} == {"train", "dev"}


def test_supplied_split_is_validated() -> None:
    good = [ClipSpec(Path("a"), "a", ("x",), "Ann", "train"), ClipSpec(Path("b"), "b", ("x",), "Bob", "dev")]
    assert resolve_splits(good) == good
    bad = [*good, ClipSpec(Path("c"), "c", ("x",), "Ann", "test")]
    message = r"group 'Ann' is in two splits: a is in train, c is in test"
    with pytest.raises(SplitError, match=message):
        resolve_splits(bad)
    assert_disjoint(resolve_splits(bad, resplit=True))
    partial = [*good, ClipSpec(Path("d"), "d", ("x",), "Dan")]
    with pytest.raises(SplitError, match="1 of 3 clips have no split"):
        resolve_splits(partial)


def test_real_manifest_supplied_split(shared_music: Path) -> None:
    clips = read_layout(shared_music / "manifest.csv").clips
    assert len(clips) == 378
    check_group_disjoint(clips)
    resolved = resolve_splits(clips)
    assert_disjoint(resolved)
    assert sum(c.split == "train" for c in resolved) == 291
    assert sum(c.split == "dev" for c in resolved) == 87


def test_real_manifest_resplit(shared_music: Path) -> None:
    clips = read_layout(shared_music / "manifest.csv").clips
    resplit = resolve_splits(clips, seed=0, resplit=True)
    assert_disjoint(resplit)
    assert resplit == resolve_splits(clips, seed=0, resplit=True)
    assert resplit != resolve_splits(clips, seed=1, resplit=True)
    artists: dict[str, set[str]] = defaultdict(set)
    in_train: set[str] = set()
    for c in resplit:
        artists[c.labels[0]].add(c.group)
        if c.split == "train":
            in_train.add(c.labels[0])
    assert {label for label, a in artists.items() if len(a) >= 3} <= in_train
    counts = {s: sum(c.split == s for c in resplit) for s in ("train", "dev", "test")}
    assert 0.6 < counts["train"] / 378 < 0.8 and counts["dev"] > 30 and counts["test"] > 30
