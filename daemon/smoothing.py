"""Per-stream rolling label: smoothed window scores plus hysteresis.

Single windows of real music are noisy: a rock song scores "metal" for a
window during a loud chorus, a quiet bridge scores "folk".  The smoother
averages window scores (an exponential moving average or a sliding mean) and
only then lets the label change, and only when another genre's smoothed score
has beaten the current label's by ``switch_margin`` without a break for
``switch_seconds`` of stream time.  Stream time (window end positions), not
wall time, so a stream replayed faster than real time labels the same way.

Defaults are tuned for radio with the daemon's default hop of 1.5 s (3 s
windows), on synthetic scores in ``tests/daemon/test_smoothing.py``:

- ``ema_alpha=0.2``: a time constant of ~5 windows (~7.5 s).  Against a genre
  that leads by 0.15 on average but loses one window in five to the runner-up,
  the runner-up's smoothed lead practically never reaches the 0.1 margin for
  the whole switch time: one spurious change in 33 hours of such audio
  (0.25: two; a real change is followed ~1.5 s sooner).
- ``mean_windows=9``: the sliding mean with the noise reduction of
  ``ema_alpha=0.2`` (an EMA of alpha averages like a mean of ``2/alpha - 1``
  windows); its box shape keeps runs of bad windows longer, so it flaps a
  little more often (four spurious changes in 33 hours in the same test).
- ``switch_margin=0.1``, ``switch_seconds=6.0``: a challenger must lead in five
  consecutive windows at a 1.5 s hop.  A clear genre change (0.7 vs 0.2) is
  followed after ~12 s (EMA) or ~13.5 s (mean): the smoothing lag plus
  ``switch_seconds``.
- ``settle_windows=4``: the first label waits for 4 windows (~4.5 s of hop
  after the first window) after a (re)start, so a song's first seconds or a
  jingle do not set it; correcting a wrong first label would cost a full switch.

Two additions for live programmes, off in this class by default and on in the
daemon's configuration (``[smoothing]``), tuned on the programme benchmark
(``benchmarks/programme.py``; figures in the README):

- Change detection (``change_distance``, ``change_windows``): on a new song the
  EMA carries the old genre for 10-20 s.  When ``change_windows`` windows in a
  row sit further than ``change_distance`` (total variation) from the smoothed
  scores and their mean prefers another genre, the smoothing restarts from
  those windows and the label follows at once.  The daemon's 0.35 x 3 took the
  median delay to the first right label from 15-17 s to 7.5-8.5 s; two windows
  followed faster still but doubled the wrong changes inside songs.
- Abstention (``min_confidence``): below it the label is None with reason
  ``"uncertain"``; it is dropped only :data:`ABSTAIN_GAP` below the threshold,
  so a score hovering there does not flap.  It makes sense on calibrated
  scores: the daemon takes the threshold from the artifact's calibration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from genretag.daemon.config import SmoothingConfig

#: The label is dropped only when its smoothed score falls this far below ``min_confidence``, so a
#: score hovering at the threshold does not flap between a label and null.
ABSTAIN_GAP = 0.05


@dataclass(frozen=True, slots=True)
class SmoothResult:
    """The smoother's view after one window.

    Attributes
    ----------
    scores : smoothed score per label, ``(n_labels,)`` float64; a copy.
    label : the current rolling label, or None until settled.
    confidence : smoothed score of ``label`` (None while ``label`` is None).
    changed : ``label`` differs from the previous window's (None -> first label included).
    prev : the label before the change (meaningful when ``changed``).
    reason : why ``label`` is None, when the smoother says (e.g. ``"uncertain"``: it
        abstains); the daemon publishes it with the null label event.
    """

    scores: np.ndarray
    label: str | None
    confidence: float | None
    changed: bool
    prev: str | None
    reason: str | None = None


class LabelSmoother:
    """Rolling label of one stream; see the module docstring.

    Parameters
    ----------
    labels : genre names, in the model's score order.
    method : ``"ema"`` (exponential moving average) or ``"mean"`` (sliding mean).
    ema_alpha : weight of the newest window for ``"ema"``, in (0, 1].
    mean_windows : number of windows averaged for ``"mean"``.
    switch_margin : smoothed-score lead (absolute, scores in [0, 1]) a challenger needs.
    switch_seconds : stream seconds the lead must hold without a break.
    settle_windows : windows seen after construction or :meth:`reset` before a first label.
    min_confidence : smoothed score below which the label is None (reason "uncertain"); 0: never.
    change_distance : total-variation distance from the smoothed scores that marks a window as a
        possible change of song, in (0, 1]; 1 turns change detection off.
    change_windows : such windows in a row (agreeing on another genre) that restart the smoothing.
    """

    def __init__(
        self,
        labels: Sequence[str],
        method: Literal["ema", "mean"] = "ema",
        ema_alpha: float = 0.2,
        mean_windows: int = 9,
        switch_margin: float = 0.1,
        switch_seconds: float = 6.0,
        settle_windows: int = 4,
        min_confidence: float = 0.0,
        change_distance: float = 1.0,
        change_windows: int = 2,
    ) -> None:
        if method not in ("ema", "mean"):
            raise ValueError(f"method must be 'ema' or 'mean', got {method!r}")
        if not 0.0 < ema_alpha <= 1.0:
            raise ValueError(f"ema_alpha must be in (0, 1], got {ema_alpha}")
        if mean_windows < 1 or settle_windows < 1 or switch_margin < 0 or switch_seconds < 0:
            raise ValueError("mean_windows and settle_windows must be >= 1, switch margin and time >= 0")
        if not 0.0 <= min_confidence < 1.0 or not 0.0 < change_distance <= 1.0 or change_windows < 1:
            raise ValueError(
                "min_confidence must be in [0, 1), change_distance in (0, 1], change_windows >= 1"
            )
        if not labels:
            raise ValueError("labels must not be empty")
        self.labels = list(labels)
        self.method = method
        self.ema_alpha = ema_alpha
        self.switch_margin = switch_margin
        self.switch_seconds = switch_seconds
        self.settle_windows = settle_windows
        self.min_confidence = min_confidence
        self.change_distance = change_distance
        n = len(self.labels)
        self._recent = np.zeros((change_windows, n))  # the last windows, for change detection
        self._distant = 0  # how many of the newest windows in a row were far from the smoothed scores
        self._smoothed = np.zeros(n)
        self._history = np.zeros((mean_windows if method == "mean" else 1, n))
        self._lead_since = np.full(n, np.nan)  # stream time each label started leading by the margin
        self._seen = 0
        self._label: int | None = None

    @property
    def label(self) -> str | None:
        """The current rolling label (None until settled and after :meth:`reset`)."""
        return None if self._label is None else self.labels[self._label]

    def reset(self) -> str | None:
        """Forget the stream's past (it went silent or down); return the label it had."""
        prev = self.label
        self._seen = 0
        self._distant = 0
        self._label = None
        self._lead_since.fill(np.nan)
        return prev

    def current(self) -> SmoothResult:
        """The smoother's view as it stands, without a window (a window it must not learn from)."""
        label = self.label
        return SmoothResult(
            scores=self._smoothed.copy(),
            label=label,
            confidence=None if self._label is None else float(self._smoothed[self._label]),
            changed=False,
            prev=label,
        )

    def update(self, scores: np.ndarray, pos_seconds: float) -> SmoothResult:
        """Fold in one window's scores, ``(n_labels,)``, for the window ending at ``pos_seconds``."""
        x = np.asarray(scores, dtype=np.float64)
        if x.shape != self._smoothed.shape or not np.isfinite(x).all():
            raise ValueError(f"scores must be {self._smoothed.shape} and finite, got shape {x.shape}")
        prev = self._label
        if self._changed_here(x):
            self._restart_from_recent()
        else:
            self._smooth(x)
            self._seen += 1
            if self._label is not None:
                self._hysteresis(self._label, pos_seconds)
        self._decide()
        label = self.label
        settled = self._seen >= self.settle_windows
        return SmoothResult(
            scores=self._smoothed.copy(),
            label=label,
            confidence=None if self._label is None else float(self._smoothed[self._label]),
            changed=self._label != prev,
            prev=None if prev is None else self.labels[prev],
            reason="uncertain" if label is None and settled else None,
        )

    def _decide(self) -> None:
        """Set a first label once settled and sure enough; drop the label when no longer sure."""
        if self._seen < self.settle_windows:
            return
        if self._label is None:
            best = int(np.argmax(self._smoothed))
            if self._smoothed[best] >= self.min_confidence:
                self._label = best
        elif self._smoothed[self._label] < self.min_confidence - ABSTAIN_GAP:
            self._label = None
            self._lead_since.fill(np.nan)

    def _changed_here(self, x: np.ndarray) -> bool:
        """True when the last ``change_windows`` windows all sit far from the smoothed scores
        (total variation distance above ``change_distance``) and agree on another genre."""
        if self.change_distance >= 1.0 or self._seen == 0:
            return False
        k = self._recent.shape[0]
        self._recent[self._distant % k] = x
        far = 0.5 * float(np.abs(x - self._smoothed).sum()) > self.change_distance
        self._distant = self._distant + 1 if far else 0
        if self._distant < k:
            return False
        return int(np.argmax(self._recent.mean(axis=0))) != int(np.argmax(self._smoothed))

    def _restart_from_recent(self) -> None:
        """A new song or style began ``change_windows`` windows ago: smooth from there on, settled,
        and let the label follow at once (the windows since the change are the evidence)."""
        recent = self._recent[
            [(self._distant - len(self._recent) + i) % len(self._recent) for i in range(len(self._recent))]
        ]
        self._seen = 0
        for row in recent:
            self._smooth(row)
            self._seen += 1
        self._seen = max(self._seen, self.settle_windows)
        self._distant = 0
        self._label = None
        self._lead_since.fill(np.nan)

    def _smooth(self, x: np.ndarray) -> None:
        if self.method == "ema":
            if self._seen == 0:
                self._smoothed[:] = x
            else:  # in place: s = alpha * x + (1 - alpha) * s
                self._smoothed *= 1.0 - self.ema_alpha
                self._smoothed += self.ema_alpha * x
            return
        rows = self._history.shape[0]
        self._history[self._seen % rows] = x
        np.mean(self._history[: min(self._seen + 1, rows)], axis=0, out=self._smoothed)

    def _hysteresis(self, current: int, pos: float) -> None:
        """Switch to the best challenger that has led by the margin for ``switch_seconds``."""
        lead = self._smoothed - self._smoothed[current]
        if lead.max() < self.switch_margin:  # the usual case: no challenger, skip the bookkeeping
            self._lead_since.fill(np.nan)
            return
        leading = lead >= self.switch_margin
        self._lead_since[~leading] = np.nan
        self._lead_since[leading & np.isnan(self._lead_since)] = pos
        ready = pos - self._lead_since >= self.switch_seconds  # NaN compares False
        if ready.any():
            self._label = int(np.argmax(np.where(ready, self._smoothed, -np.inf)))
            self._lead_since.fill(np.nan)


def smoother_from_config(
    labels: Sequence[str], config: SmoothingConfig, calibrated_threshold: float
) -> LabelSmoother:
    """The smoother ``serve`` runs for ``[smoothing]``; ``calibrated_threshold`` (the artifact's
    ``calibration.min_confidence``) applies where the config leaves ``min_confidence`` unset."""
    min_confidence = calibrated_threshold if config.min_confidence is None else config.min_confidence
    return LabelSmoother(
        labels,
        config.method,  # type: ignore[arg-type]  # "ema" or "mean": checked by the config
        config.ema_alpha,
        config.mean_windows,
        config.switch_margin,
        config.switch_seconds,
        config.settle_windows,
        min_confidence,
        config.change_distance,
        config.change_windows,
    )
