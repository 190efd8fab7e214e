"""Which genres a clip may truly be: a manifest's labels read as a candidate set.

A clip has one true genre.  When a source cannot name it exactly, its
manifest lists the candidates (``pop;rock``): the clip is *one of* them, not
all of them.  Training on such a clip as a positive of every candidate (and a
negative of everything else) teaches the model that pop-or-rock songs are
never metal, which is wrong for AllMusic data, where "Pop/Rock" holds metal
bands too.  So the candidate set is widened by :data:`LABEL_GROUPS` and used
as a whole: a loss over the set, a hit when the top label is any member.

Every clip of ``../shared/data/music`` has one label; the sets come from
``../shared/data/mer4q`` (AllMusic genres).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: A set that holds all of a key's genres is widened to the value: AllMusic's
#: "Pop/Rock" (``pop;rock``) does not separate pop, rock and metal.
LABEL_GROUPS: dict[frozenset[str], frozenset[str]] = {
    frozenset({"pop", "rock"}): frozenset({"pop", "rock", "metal"}),
}


def candidate_set(labels: Iterable[str]) -> frozenset[str]:
    """The genres a clip with these manifest labels may be, widened by :data:`LABEL_GROUPS`."""
    found = frozenset(labels)
    for group, widened in LABEL_GROUPS.items():
        if group <= found:
            found |= widened
    return found


def candidate_matrix(label_lists: Sequence[Iterable[str]], names: Sequence[str]) -> np.ndarray:
    """``(n_clips, n_names)`` 0/1 matrix of each clip's candidate set over ``names``.

    Candidates not in ``names`` are dropped (a model without a metal class
    still learns pop-or-rock from such clips).
    """
    index = {name: j for j, name in enumerate(names)}
    out = np.zeros((len(label_lists), len(names)), np.float32)
    for i, labels in enumerate(label_lists):
        for label in candidate_set(labels):
            if label in index:
                out[i, index[label]] = 1.0
    return out


def is_exact(candidates: np.ndarray) -> np.ndarray:
    """Rows (clips) whose candidate set names one genre: those alone can be scored per genre."""
    return np.asarray(candidates).sum(axis=1) == 1
