"""What the daemon says about a stream beside its genre: talk or music, mood, tags, tempo and key.

One :class:`StreamAnalysis` per stream lives on the output side (the inference
thread), next to the stream's genre smoother, and sees every scored window with
the artifact's head scores for it (:mod:`genretag.models.artifact`, ``heads``):

* **Speech** (head ``speech``): a window whose P(speech) reaches
  ``speech_threshold`` is talk, and talk over a music bed counts as talk.  The
  stream's *state* enters ``speech`` after ``speech_windows`` talk windows in a
  row and leaves it (``music``) after as many music windows.  While it is
  ``speech`` no window reaches the genre smoother (:attr:`WindowAnalysis.held`),
  so the rolling genre holds through a DJ's link, an ad's voice-over or the
  news, and a stray music window in the talk does not feed it either.  The
  talk windows before the state switches do reach it: one window cannot change
  the label, and holding every lone window taken for talk (about 2 % of music
  windows) cost the rolling label 1-1.4 points of right share on the programme
  benchmark (0.7 and none with the state alone).
* **Mood** (head ``mood``): the four valence/arousal quadrants, smoothed with the
  genre smoother's own machinery and settings (:class:`LabelSmoother`), so a
  rolling mood changes with the same hysteresis as the rolling genre.  It never
  abstains: the mood head has no calibrated threshold.
* **Tags** (head ``tags``): an exponential moving average of the tag scores with
  the smoothing's ``ema_alpha``.
* **Tempo and key**: the streaming trackers of :mod:`genretag.pipeline.tempo` and
  :mod:`genretag.pipeline.key`, fed each window's new audio (its last hop), over
  the last ``context_seconds``, updated every ``update_seconds`` of audio.

Tempo and key cost about a millisecond per window (``make bench-analysis``),
twice the fast model's inference, and they run on the inference thread: they
are best effort.  A :class:`TrackingBudget` gives them at most
``analysis.cpu_share`` of that thread's time; windows beyond it are left out
of them (counted), so that genre keeps its capacity whatever the stream count,
and each stream's trackers see gaps, as after talk.

Mood, tags, tempo and key follow music only: held (talk) windows do not feed
them, and entering the speech state starts tempo and key afresh, as a link
between songs usually precedes another song.  Silence and outages reset
everything (:meth:`StreamAnalysis.reset`), as they reset the genre smoother.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from genretag.daemon.config import AnalysisConfig, SmoothingConfig
from genretag.daemon.events import rounded
from genretag.daemon.smoothing import SmoothResult, smoother_from_config
from genretag.daemon.stream import Window
from genretag.pipeline.key import KeyEstimate, KeyTracker
from genretag.pipeline.tempo import TempoEstimate, TempoTracker

SPEECH = "speech"
MUSIC = "music"


class TrackingBudget:
    """At most ``share`` of the wall time for tempo and key, as a token bucket of thread time.

    Time accrues at ``share`` seconds per second, up to ``burst`` seconds; each tracked
    window spends what it took.  A window is tracked while the bucket is not empty, so
    over any second the trackers take at most about ``share`` of it (plus one window).
    ``share`` 1 never refuses.
    """

    def __init__(
        self, share: float, burst: float = 0.05, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.share, self.burst, self._clock = share, burst, clock
        self._tokens = burst
        self._last = clock()

    def allows(self) -> bool:
        """Whether the next window may be tracked."""
        if self.share >= 1.0:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.share)
        self._last = now
        return self._tokens > 0.0

    def spend(self, seconds: float) -> None:
        self._tokens -= seconds


class SpeechGate:
    """Hysteresis on per-window P(speech): ``windows`` in a row on the other side switch the state."""

    def __init__(self, threshold: float = 0.5, windows: int = 2) -> None:
        if not 0.0 < threshold < 1.0 or windows < 1:
            raise ValueError("threshold must be in (0, 1) and windows >= 1")
        self.threshold = threshold
        self.windows = windows
        self.active = False  # the stream is in the speech state
        self._against = 0  # windows in a row that disagree with the state

    def update(self, p_speech: float) -> bool:
        """Fold in one window's P(speech); True when the state changed with it."""
        talk = p_speech >= self.threshold
        self._against = self._against + 1 if talk != self.active else 0
        if self._against < self.windows:
            return False
        self.active, self._against = talk, 0
        return True

    def reset(self) -> None:
        self.active, self._against = False, 0


@dataclass(frozen=True, slots=True)
class WindowAnalysis:
    """What one window changed.

    Attributes
    ----------
    speech : the window's P(speech), or None without a speech head (or with it switched off).
    held : the window is talk, or the stream is in the speech state: genre must not learn from it.
    state : ``"speech"`` or ``"music"`` when the stream's speech state changed with this window.
    mood : the mood smoother's view after this window (None when not updated).
    tempo, key : a new estimate, when this window's audio completed an update.
    """

    speech: float | None = None
    held: bool = False
    state: str | None = None
    mood: SmoothResult | None = None
    tempo: TempoEstimate | None = None
    key: KeyEstimate | None = None


@dataclass(frozen=True)
class AnalysisSetup:
    """How every stream is analysed: the ``[analysis]`` and ``[smoothing]`` settings, the artifact's heads.

    ``heads`` maps each head of the served artifact to its labels; a head switched off in
    the config or absent from the artifact is not run.
    """

    config: AnalysisConfig
    smoothing: SmoothingConfig
    heads: Mapping[str, Sequence[str]]
    sample_rate: int
    hop_seconds: float  # stream time per scored window (the served hop)

    @property
    def speech(self) -> bool:
        return self.config.speech and SPEECH in self.heads

    @property
    def mood(self) -> bool:
        return self.config.mood and "mood" in self.heads

    @property
    def tags(self) -> bool:
        return self.config.tags and "tags" in self.heads

    def new_stream(self) -> StreamAnalysis:
        return StreamAnalysis(self)


class StreamAnalysis:
    """Speech state, rolling mood and tags, tempo and key of one stream; see the module docstring."""

    def __init__(self, setup: AnalysisSetup) -> None:
        self.setup = setup
        c = setup.config
        self.gate = SpeechGate(c.speech_threshold, c.speech_windows) if setup.speech else None
        self.mood = smoother_from_config(setup.heads["mood"], setup.smoothing, 0.0) if setup.mood else None
        self.mood_result: SmoothResult | None = None
        self.tag_names = list(setup.heads["tags"]) if setup.tags else []
        self.tags: np.ndarray | None = None  # smoothed tag scores, once a music window was seen
        self.tempo_tracker: TempoTracker | None = None
        self.key_tracker: KeyTracker | None = None
        self.tempo: TempoEstimate | None = None  # the last estimate
        self.key: KeyEstimate | None = None
        self._fed_to = -1.0  # stream position (s) up to which the trackers have the audio
        self._restart_trackers()

    @property
    def tracks(self) -> bool:
        """Tempo or key is on."""
        return self.setup.config.tempo or self.setup.config.key

    @property
    def in_speech(self) -> bool:
        return self.gate is not None and self.gate.active

    def update(self, window: Window, heads: Mapping[str, np.ndarray], track: bool = True) -> WindowAnalysis:
        """Fold in one scored window and its head scores (by head name).

        ``track=False`` leaves tempo and key out for this window (their :class:`TrackingBudget` is
        spent); the next window they see feeds them all its audio.
        """
        p_speech, state = None, None
        if self.gate is not None:
            p_speech = float(heads[SPEECH][1])  # labels ["music", "speech"]: the artifact checks them
            if self.gate.update(p_speech):
                state = SPEECH if self.gate.active else MUSIC
                if self.gate.active:
                    self._restart_trackers()
        held = self.in_speech
        if held:
            self._fed_to = -1.0  # the trackers skip the talk; the next music window feeds all its audio
            return WindowAnalysis(p_speech, True, state)
        mood = None
        if self.mood is not None:
            mood = self.mood_result = self.mood.update(heads["mood"], window.pos)
        if self.tag_names:
            scores = np.asarray(heads["tags"], np.float64)
            alpha = self.setup.smoothing.ema_alpha
            self.tags = scores.copy() if self.tags is None else (1.0 - alpha) * self.tags + alpha * scores
        if not track:
            self._fed_to = -1.0
            return WindowAnalysis(p_speech, False, state, mood)
        tempo, key = self._track(window)
        return WindowAnalysis(p_speech, False, state, mood, tempo, key)

    def descriptors(self, seen: WindowAnalysis) -> dict[str, object]:
        """The optional event keys beside genre (see :mod:`genretag.daemon.events`), as far as the
        model and the config provide them."""
        keys: dict[str, object] = {}
        setup = self.setup
        if seen.speech is not None:
            keys["speech"] = round(seen.speech, 4)
            keys["held"] = seen.held
        if setup.mood:
            mood = self.mood_result
            label = None if mood is None else mood.label
            keys["mood"] = label
            keys["mood_confidence"] = (
                None if mood is None or mood.confidence is None else round(mood.confidence, 4)
            )
            keys["mood_scores"] = (
                {}
                if mood is None
                else rounded(dict(zip(setup.heads["mood"], mood.scores.tolist(), strict=True)))
            )
        if setup.tags:
            tags = self.tags
            keys["tags"] = (
                {} if tags is None else rounded(dict(zip(self.tag_names, tags.tolist(), strict=True)))
            )
        if setup.config.tempo:
            tempo = self.tempo
            keys["tempo"] = (
                None
                if tempo is None or tempo.bpm is None
                else {"bpm": round(tempo.bpm, 1), "confidence": round(tempo.confidence, 3)}
            )
        if setup.config.key:
            key = self.key
            keys["key"] = (
                None
                if key is None or key.name is None
                else {
                    "name": key.name,
                    "tonic": key.tonic,
                    "mode": key.mode,
                    "confidence": round(key.confidence, 3),
                }
            )
        return keys

    def reset(self) -> None:
        """The stream went silent or down: forget its past, as its genre smoother does."""
        if self.gate is not None:
            self.gate.reset()
        if self.mood is not None:
            self.mood.reset()
        self.mood_result = None
        self.tags = None
        self.tempo = self.key = None
        self._restart_trackers()

    def _restart_trackers(self) -> None:
        """Forget the trackers' audio.  New ones are made by the next tracked window, within the
        tracking budget: made here, for every new, silent or talking stream, they cost the inference
        thread more than the budget let them track (thousands of streams starting at once on a GPU)."""
        self.tempo_tracker = self.key_tracker = None
        self._fed_to = -1.0

    def _track(self, window: Window) -> tuple[TempoEstimate | None, KeyEstimate | None]:
        """Feed the trackers the audio of ``window`` they have not had (all of it after a gap)."""
        c, rate = self.setup.config, self.setup.sample_rate
        if c.tempo and self.tempo_tracker is None:
            self.tempo_tracker = TempoTracker(rate, c.context_seconds, c.update_seconds)
        if c.key and self.key_tracker is None:
            self.key_tracker = KeyTracker(rate, c.context_seconds, c.update_seconds)
        if self.tempo_tracker is None and self.key_tracker is None:
            return None, None
        samples = window.samples
        if self._fed_to >= 0.0:
            new = int(round((window.pos - self._fed_to) * self.setup.sample_rate))
            samples = samples[max(0, samples.size - new) :] if new < samples.size else samples
        self._fed_to = window.pos
        tempo = key = None
        if self.tempo_tracker is not None and (tempo := self.tempo_tracker.push(samples)) is not None:
            self.tempo = tempo
        if self.key_tracker is not None and (key := self.key_tracker.push(samples)) is not None:
            self.key = key
        return tempo, key
