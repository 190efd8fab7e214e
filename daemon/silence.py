"""The per-stream silence gate: dead air is a state, not a genre.

The gate measures the RMS level of the model-rate mono signal in short fixed
blocks (``block_seconds``, 0.1 s by default) rather than per window or per hop.
Windows overlap and the hop is a tuning knob of the model (up to several
seconds), so a level per window would smear one loud second over a whole
window and make the hold time only as precise as the hop.  Short blocks give
the hold time a 0.1 s resolution whatever the window geometry, and measuring
after resampling means block boundaries fall on the same sample clock as the
window positions.

Levels are dBFS with full scale 1.0 (:func:`genretag.pipeline.windows.rms_dbfs`,
the measure ``classify`` uses to skip silent windows, also at -50 dBFS): a
full-scale sine reads -3 dBFS and digital silence -200 dBFS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

State = Literal["active", "silence"]

BLOCK_SECONDS = 0.1  # one level measurement


@dataclass(frozen=True, slots=True)
class StateChange:
    """The gate switched to ``state``.

    ``pos`` is the stream position (seconds of model-rate audio) where the gate
    decided: the end of the block that completed the hold time, or of the first
    loud block after silence.
    """

    state: State
    pos: float


class SilenceGate:
    """Tracks one stream's level and reports ``active`` <-> ``silence`` transitions.

    Parameters
    ----------
    sample_rate : rate in Hz of the signal fed to :meth:`process`.
    threshold_db : a block below this level (dBFS) counts as silent.
    hold_seconds : the level must stay below ``threshold_db`` this long (stream
        time) before the state becomes ``silence``; musical rests are shorter.
    hysteresis_db : in ``silence`` the level must reach ``threshold_db +
        hysteresis_db`` to become ``active`` again, so a level hovering at the
        threshold does not chatter.
    block_seconds : length of a level measurement (see the module docstring).
    """

    def __init__(
        self,
        sample_rate: int,
        threshold_db: float = -50.0,
        hold_seconds: float = 2.0,
        hysteresis_db: float = 3.0,
        block_seconds: float = BLOCK_SECONDS,
    ) -> None:
        if sample_rate <= 0 or hold_seconds < 0 or hysteresis_db < 0 or block_seconds <= 0:
            raise ValueError("sample_rate and block_seconds must be positive, hold and hysteresis >= 0")
        self.sample_rate = sample_rate
        self.threshold_db = threshold_db
        self.hysteresis_db = hysteresis_db
        self.block = self.block_samples(sample_rate, block_seconds)
        self._hold = int(round(hold_seconds * sample_rate))
        self.state: State = "active"
        self._silent_samples = 0  # in state silence, hold included
        self._seen = 0  # samples in complete blocks so far
        self._below_since: int | None = None  # first sample of the current run of quiet blocks
        self._partial = np.zeros(self.block, dtype=np.float32)
        self._partial_n = 0

    @staticmethod
    def block_samples(sample_rate: int, block_seconds: float = BLOCK_SECONDS) -> int:
        """Samples in one level measurement."""
        return max(1, int(round(block_seconds * sample_rate)))

    @property
    def silence_seconds(self) -> float:
        """Seconds of audio judged silent so far: each whole run that tripped the gate (hold included)."""
        return self._silent_samples / self.sample_rate

    def process(self, samples: np.ndarray) -> list[StateChange]:
        """Feed the next float32 mono samples; return the transitions they caused, in order."""
        levels: list[float] = []
        rest = samples
        if self._partial_n:
            take = min(self.block - self._partial_n, rest.size)
            self._partial[self._partial_n : self._partial_n + take] = rest[:take]
            self._partial_n += take
            rest = rest[take:]
            if self._partial_n < self.block:
                return []
            levels.append(_level_db(self._partial))
            self._partial_n = 0
        n_blocks = rest.size // self.block
        if n_blocks:
            levels.extend(_levels_db(rest[: n_blocks * self.block].reshape(n_blocks, self.block)))
        tail = rest[n_blocks * self.block :]
        self._partial[: tail.size] = tail
        self._partial_n = tail.size
        return [c for c in map(self._step, levels) if c is not None]

    def _step(self, level_db: float) -> StateChange | None:
        start, self._seen = self._seen, self._seen + self.block
        if self.state == "silence":
            if level_db >= self.threshold_db + self.hysteresis_db:
                self.state = "active"
                self._below_since = None
                return StateChange("active", self._seen / self.sample_rate)
            self._silent_samples += self.block
            return None
        if level_db >= self.threshold_db:
            self._below_since = None
            return None
        if self._below_since is None:
            self._below_since = start
        if self._seen - self._below_since < self._hold:
            return None
        self.state = "silence"
        self._silent_samples += self._seen - self._below_since
        return StateChange("silence", self._seen / self.sample_rate)


def _level_db(block: np.ndarray) -> float:
    """:func:`~genretag.pipeline.windows.rms_dbfs` of one block, through one dot product.

    The gate runs on every chunk of every stream; numpy's ``mean`` has a fixed cost
    several times that of the arithmetic on a 0.1 s block, and a chunk holds one or two.
    """
    power = float(np.dot(block, block)) / block.size
    return 10.0 * math.log10(max(power, 1e-20))


def _levels_db(blocks: np.ndarray) -> list[float]:
    """:func:`_level_db` of each row of ``blocks`` ``(n, block)``: one batched dot product per chunk."""
    power = (blocks[:, None, :] @ blocks[:, :, None]).ravel().astype(np.float64) / blocks.shape[1]
    return (10.0 * np.log10(np.maximum(power, 1e-20))).tolist()
