"""Window slicing: geometry, short signals, even spreading over long ones."""

from __future__ import annotations

import numpy as np
import pytest

from genretag.pipeline.windows import (
    WindowSpec,
    cut_windows,
    frame_count,
    frame_starts,
    frame_windows,
    rms_dbfs,
    spread_indices,
    spread_windows,
)


def test_frame_windows_geometry() -> None:
    spec = WindowSpec(100, 1.0, 0.5)
    x = np.arange(350, dtype=np.float32)
    windows, starts = frame_windows(x, spec)
    assert windows.shape == (6, 100)
    assert np.allclose(starts, [0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert windows[3, 0] == 150 and windows.flags["C_CONTIGUOUS"]


def test_short_signal_is_tiled_not_dropped() -> None:
    spec = WindowSpec(100, 1.0, 0.5)
    windows, starts = frame_windows(np.arange(30, dtype=np.float32), spec)
    assert windows.shape == (1, 100) and windows[0, 30] == 0 and windows[0, 31] == 1
    empty, _ = frame_windows(np.zeros(0, np.float32), spec)
    assert empty.shape == (1, 100) and not empty.any()


def test_spread_windows_cover_whole_signal() -> None:
    spec = WindowSpec(10, 1.0, 1.0)
    windows, starts = spread_windows(np.arange(1000, dtype=np.float32), spec, max_windows=5)
    assert len(windows) == 5 and starts[0] == 0 and starts[-1] == 99


def test_bad_spec() -> None:
    with pytest.raises(ValueError):
        WindowSpec(0, 1.0, 1.0)


def test_rms_dbfs_levels() -> None:
    t = np.arange(16000) / 16000
    rows = np.stack([np.sin(2 * np.pi * 440 * t), 0.01 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t)])
    levels = rms_dbfs(rows)
    assert abs(levels[0] + 3.01) < 0.05 and abs(levels[1] + 43.01) < 0.05 and levels[2] < -150


@pytest.mark.parametrize(
    ("n", "win", "hop"),
    [(0, 100, 50), (99, 100, 50), (100, 100, 50), (351, 100, 50), (1000, 100, 130), (48000, 47770, 24000)],
)
def test_one_framing_geometry(n: int, win: int, hop: int) -> None:
    """frame_count, frame_starts and cut_windows agree with frame_windows, the short signal included."""
    spec = WindowSpec(1000, win / 1000, hop / 1000)
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    windows, starts = frame_windows(x, spec)
    assert len(windows) == frame_count(n, win, hop) == max(1, frame_count(n, win, hop, tile_short=False))
    np.testing.assert_array_equal(frame_starts(n, win, hop), np.round(starts * 1000).astype(int))
    np.testing.assert_array_equal(cut_windows(x, win, hop), windows)
    for k, s in enumerate(frame_starts(n, win, hop)):
        if n >= win:
            np.testing.assert_array_equal(windows[k], x[s : s + win])
    assert frame_count(n, win, hop, tile_short=False) == (0 if n < win else len(windows))


def test_spread_indices() -> None:
    assert list(spread_indices(5, 48)) == [0, 1, 2, 3, 4]
    assert list(spread_indices(100, 5)) == [0, 25, 50, 74, 99]
    assert list(spread_indices(19, 19)) == list(range(19))
    spec = WindowSpec(10, 1.0, 1.0)
    _, starts = spread_windows(np.arange(1000, dtype=np.float32), spec, max_windows=5)
    np.testing.assert_array_equal(starts, frame_starts(1000, 10, 10)[spread_indices(100, 5)] / 10)
