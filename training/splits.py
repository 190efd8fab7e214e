"""Group-disjoint train/dev/test splits.

Clips of one artist (or one clip's windows) on both sides of a split make a
model look better than it is, so the unit of splitting is the *group*: no group
and no clip ever sits in two splits.  Supplied splits are validated against the
same rule; generated splits are deterministic for a given seed and stratified
greedily by label so that rare labels still reach the training split.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from genretag.training.layouts import ClipSpec

SPLITS = ("train", "dev", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


class SplitError(ValueError):
    """Split fractions or a supplied split are invalid; ``str(err)`` says why."""


def parse_fractions(text: str) -> tuple[float, float, float]:
    """Parse ``"train,dev,test"`` fractions, e.g. ``"0.7,0.15,0.15"`` or ``"70,15,15"``.

    The numbers are normalised to sum to 1; the train fraction must be positive.
    """
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SplitError(f"split fractions {text!r}: expected three numbers like 0.7,0.15,0.15") from None
    if len(values) != 3 or any(v < 0 for v in values) or values[0] <= 0:
        raise SplitError(f"split fractions {text!r}: need three non-negative numbers, train > 0")
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


def check_group_disjoint(clips: Sequence[ClipSpec]) -> None:
    """Raise :class:`SplitError` naming the first group found in two splits."""
    seen: dict[str, ClipSpec] = {}
    for clip in clips:
        first = seen.setdefault(clip.group, clip)
        if first.split != clip.split:
            raise SplitError(
                f"group {clip.group!r} is in two splits: {first.clip_id} is in {first.split}, "
                f"{clip.clip_id} is in {clip.split}; fix the split column or rebuild with --resplit"
            )


def assign_splits(
    clips: Sequence[ClipSpec],
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> list[ClipSpec]:
    """Give every clip a split so that groups never straddle two splits.

    Greedy stratification: labels are visited rarest first (fewest groups);
    each still-unplaced group of that label, largest first, goes to the split
    whose share of that label's clips lags its target fraction the most (ties:
    the split lagging most overall, then train before dev before test).  With
    train the largest fraction, the largest group of every label lands in
    train, and a label with three or more groups normally reaches every split.
    ``seed`` orders equal-sized groups; the same seed and clips always give
    the same splits.
    """
    groups: dict[str, list[ClipSpec]] = defaultdict(list)
    for clip in clips:
        groups[clip.group].append(clip)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    rank = {g: i for i, g in enumerate(order)}
    label_groups: dict[str, list[str]] = defaultdict(list)
    label_total: dict[str, int] = defaultdict(int)
    for g in order:
        for label in sorted({lab for c in groups[g] for lab in c.labels}):
            label_groups[label].append(g)
    for clip in clips:
        for label in clip.labels:
            label_total[label] += 1

    active = [i for i, f in enumerate(fractions) if f > 0]
    split_clips = [0, 0, 0]
    label_clips: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    placed: dict[str, int] = {}
    for label in sorted(label_groups, key=lambda lab: (len(label_groups[lab]), lab)):
        pending = [g for g in label_groups[label] if g not in placed]
        for g in sorted(pending, key=lambda g: (-len(groups[g]), rank[g])):
            lag = label_clips[label]
            s = max(
                active,
                key=lambda i: (
                    fractions[i] * label_total[label] - lag[i],
                    fractions[i] * len(clips) - split_clips[i],
                    -i,
                ),
            )
            placed[g] = s
            split_clips[s] += len(groups[g])
            for c in groups[g]:
                for lab in c.labels:
                    label_clips[lab][s] += 1
    return [replace(c, split=SPLITS[placed[c.group]]) for c in clips]


def resolve_splits(
    clips: Sequence[ClipSpec],
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    resplit: bool = False,
) -> list[ClipSpec]:
    """Use the source's splits when every clip has one (validated), else assign new ones.

    ``resplit`` ignores supplied splits.  A source where only some clips have a
    split is an error: guessing the rest could put one artist on both sides.
    """
    given = [c for c in clips if c.split is not None]
    if resplit or not given:
        return assign_splits(clips, fractions, seed)
    if len(given) != len(clips):
        first = next(c for c in clips if c.split is None)
        raise SplitError(
            f"{len(clips) - len(given)} of {len(clips)} clips have no split "
            f"(first: {first.clip_id}); give every clip a split or rebuild with --resplit"
        )
    check_group_disjoint(clips)
    return list(clips)
