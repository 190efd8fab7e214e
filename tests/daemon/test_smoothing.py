"""Rolling labels: smoothing, settling, hysteresis and reset, on synthetic window scores."""

from __future__ import annotations

import numpy as np
import pytest

from genretag.daemon.smoothing import LabelSmoother

LABELS = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
HOP = 1.5  # seconds between windows: the daemon's default hop
METHODS = ["ema", "mean"]


def scores(rng: np.random.Generator, means: dict[str, float], sigma: float) -> np.ndarray:
    """One window's scores: ``means`` (others 0.02) plus Gaussian noise on the named genres."""
    x = np.full(len(LABELS), 0.02)
    for name, mean in means.items():
        x[LABELS.index(name)] = mean + rng.normal(0.0, sigma)
    return np.clip(x, 0.0, 1.0)


def feed(
    sm: LabelSmoother, rng: np.random.Generator, means: dict[str, float], sigma: float, n: int, start: int = 0
) -> list[tuple[float, str | None, bool]]:
    """Feed ``n`` windows; return (pos, label, changed) per window."""
    out = []
    for k in range(start, start + n):
        r = sm.update(scores(rng, means, sigma), (k + 2) * HOP)
        out.append(((k + 2) * HOP, r.label, r.changed))
    return out


@pytest.mark.parametrize("method", METHODS)
def test_noisy_two_genre_clip_never_flaps(method: str) -> None:
    rng = np.random.default_rng(7)
    sm = LabelSmoother(LABELS, method)
    means = {"rock": 0.45, "metal": 0.30}  # rock leads by 0.15 on average ...
    sigma = 0.13
    raw = np.array([scores(np.random.default_rng(s), means, sigma) for s in range(2000)])
    assert (raw[:, LABELS.index("metal")] > raw[:, LABELS.index("rock")]).mean() > 0.15  # ... but loses often
    trace = feed(sm, rng, means, sigma, n=800)  # 20 minutes of stream time
    assert [label for _, label, _ in trace[:3]] == [None] * 3
    assert {label for _, label, _ in trace[3:]} == {"rock"}
    assert sum(changed for _, _, changed in trace) == 1  # None -> rock, once


@pytest.mark.parametrize("method", METHODS)
def test_real_genre_change_switches_within_switch_time_plus_a_few_windows(method: str) -> None:
    rng = np.random.default_rng(3)
    sm = LabelSmoother(LABELS, method)
    feed(sm, rng, {"jazz": 0.7, "blues": 0.2}, 0.1, n=40)
    assert sm.label == "jazz"
    change_pos = (40 + 2) * HOP
    trace = feed(sm, rng, {"jazz": 0.2, "blues": 0.7}, 0.1, n=40, start=40)
    switches = [(pos, label) for pos, label, changed in trace if changed]
    assert len(switches) == 1 and switches[0][1] == "blues"
    assert switches[0][0] - change_pos <= sm.switch_seconds + 6 * HOP


def test_switch_result_reports_previous_label_and_confidence() -> None:
    sm = LabelSmoother(LABELS, ema_alpha=1.0, settle_windows=1, switch_seconds=3.0)
    a, b = np.zeros(len(LABELS)), np.zeros(len(LABELS))
    a[0], b[1] = 0.9, 0.8
    first = sm.update(a, 1.5)
    assert (first.label, first.changed, first.prev, first.confidence) == ("blues", True, None, 0.9)
    results = [sm.update(b, pos) for pos in (3.0, 4.5, 6.0)]
    assert [r.label for r in results] == ["blues", "blues", "classical"]
    assert (results[-1].changed, results[-1].prev, results[-1].confidence) == (True, "blues", 0.8)
    np.testing.assert_array_equal(results[-1].scores, b)


def test_a_lead_must_hold_without_a_break() -> None:
    sm = LabelSmoother(LABELS, ema_alpha=1.0, settle_windows=1, switch_margin=0.1, switch_seconds=6.0)
    lead, tie = np.zeros(len(LABELS)), np.zeros(len(LABELS))
    lead[0], lead[1] = 0.3, 0.6
    tie[0], tie[1] = 0.5, 0.55  # classical ahead, but by less than the margin
    sm.update(np.eye(len(LABELS))[0], 0.0)
    pattern = [lead] * 4 + [tie] + [lead] * 4 + [tie]  # 4 windows = 4.5 s of lead, then a break
    assert all(sm.update(x, (k + 1) * HOP).label == "blues" for k, x in enumerate(pattern))
    labels = [sm.update(lead, (k + 11) * HOP).label for k in range(5)]
    assert labels == ["blues"] * 4 + ["classical"]  # 6.0 s after the lead began


def test_reset_forgets_label_and_settles_again() -> None:
    sm = LabelSmoother(LABELS, settle_windows=2)
    pop = np.eye(len(LABELS))[LABELS.index("pop")]
    reggae = np.eye(len(LABELS))[LABELS.index("reggae")]
    for k in range(3):
        sm.update(pop, k * HOP)
    assert sm.reset() == "pop" and sm.label is None and sm.reset() is None
    first = sm.update(reggae, 10.0)
    assert (first.label, first.confidence, first.changed) == (None, None, False)
    np.testing.assert_array_equal(first.scores, reggae)  # the old song is forgotten
    second = sm.update(reggae, 11.5)
    assert (second.label, second.changed, second.prev) == ("reggae", True, None)


def test_ema_and_mean_smooth_as_documented() -> None:
    rng = np.random.default_rng(0)
    xs = rng.random((12, len(LABELS)))
    ema, mean = LabelSmoother(LABELS, "ema", ema_alpha=0.3), LabelSmoother(LABELS, "mean", mean_windows=5)
    expected = xs[0].copy()
    for k, x in enumerate(xs):
        if k:
            expected = 0.3 * x + 0.7 * expected
        np.testing.assert_allclose(ema.update(x, k).scores, expected)
        np.testing.assert_allclose(mean.update(x, k).scores, xs[max(0, k - 4) : k + 1].mean(axis=0))


@pytest.mark.parametrize("bad", [np.zeros(3), np.full(len(LABELS), np.nan)])
def test_bad_scores_are_refused_without_poisoning_state(bad: np.ndarray) -> None:
    sm = LabelSmoother(LABELS)
    with pytest.raises(ValueError):
        sm.update(bad, 0.0)
    np.testing.assert_array_equal(sm.update(np.ones(len(LABELS)), 1.5).scores, np.ones(len(LABELS)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "median"},
        {"ema_alpha": 0.0},
        {"mean_windows": 0},
        {"settle_windows": 0},
        {"switch_margin": -0.1},
    ],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LabelSmoother(LABELS, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", METHODS)
def test_abstains_below_min_confidence_with_reason_and_returns_when_sure(method: str) -> None:
    rng = np.random.default_rng(11)
    sm = LabelSmoother(LABELS, method, min_confidence=0.5)
    trace = feed(sm, rng, {"jazz": 0.8, "blues": 0.1}, 0.05, n=20)
    assert trace[-1][1] == "jazz"
    # the music turns ambiguous: jazz and blues at 0.35 each; the label must give way to null
    results = [sm.update(scores(rng, {"jazz": 0.35, "blues": 0.35}, 0.02), (22 + k) * HOP) for k in range(30)]
    dropped = [r for r in results if r.changed]
    assert len(dropped) == 1 and dropped[0].label is None and dropped[0].prev == "jazz"
    assert dropped[0].reason == "uncertain" and results[-1].label is None
    back = feed(sm, rng, {"blues": 0.8}, 0.05, n=20, start=60)
    assert back[-1][1] == "blues"


def test_no_abstention_by_default_and_no_reason_while_settling() -> None:
    sm = LabelSmoother(LABELS)
    first = sm.update(np.full(len(LABELS), 1 / len(LABELS)), HOP)
    assert first.label is None and first.reason is None  # settling, not unsure
    for k in range(10):
        r = sm.update(np.full(len(LABELS), 1 / len(LABELS)), (k + 2) * HOP)
    assert r.label is not None  # min_confidence 0: a flat score still gives a label


@pytest.mark.parametrize("method", METHODS)
def test_change_detection_follows_a_song_change_within_a_few_windows(method: str) -> None:
    rng = np.random.default_rng(5)
    plain = LabelSmoother(LABELS, method)
    quick = LabelSmoother(LABELS, method, change_distance=0.4, change_windows=2)
    delays = []
    for sm in (plain, quick):
        feed(sm, rng, {"jazz": 0.7, "blues": 0.2}, 0.1, n=40)
        trace = feed(sm, rng, {"jazz": 0.1, "rock": 0.8}, 0.1, n=40, start=40)
        first_rock = next(i for i, (_, label, _) in enumerate(trace) if label == "rock")
        delays.append(first_rock + 1)
    assert delays[1] <= 3 < delays[0]  # windows after the change until the new label shows


@pytest.mark.parametrize("method", METHODS)
def test_change_detection_does_not_flap_on_a_noisy_clip(method: str) -> None:
    rng = np.random.default_rng(7)
    sm = LabelSmoother(LABELS, method, change_distance=0.4, change_windows=2)
    trace = feed(sm, rng, {"rock": 0.45, "metal": 0.30}, 0.13, n=800)
    assert sum(changed for _, _, changed in trace) == 1
