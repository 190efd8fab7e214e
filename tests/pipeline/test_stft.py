"""The streaming STFT frames a stream the same whatever its block sizes, and holds blocks until an update."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from genretag.pipeline.stft import PendingBlocks, StreamingStft, periodic_hann


def test_frames_of_odd_blocks_equal_the_frames_of_one_block() -> None:
    signal = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    whole = StreamingStft(512, 200).push(signal)
    stft = StreamingStft(512, 200)
    cuts = np.cumsum(np.random.default_rng(1).integers(1, 700, 40))
    pieces = [stft.push(block) for block in np.split(signal, cuts[cuts < signal.size])]
    np.testing.assert_allclose(np.concatenate(pieces), whole, rtol=1e-5, atol=1e-5)
    assert len(whole) == (10_000 - 512) // 200 + 1
    frame = signal[3 * 200 : 3 * 200 + 512] * periodic_hann(512)
    np.testing.assert_allclose(whole[3], np.abs(np.fft.rfft(frame)), rtol=1e-4, atol=1e-4)


def test_non_finite_samples_count_as_silence() -> None:
    stft = StreamingStft(64, 32)
    frames = stft.push(np.array([np.nan, np.inf, -np.inf] + [0.0] * 61, np.float32))
    assert stft.bad_samples == 3
    assert np.all(frames == 0.0)


def test_pending_blocks_say_when_the_next_update_is_due() -> None:
    stft = StreamingStft(100, 50)
    pending = PendingBlocks(stft, every=4)  # frame 4 ends at sample 3 * 50 + 100 = 250
    assert not pending.add(np.zeros(200, np.float32))
    assert pending.add(np.zeros(50, np.float32))
    assert len(stft.push(pending.take())) == 4
    assert not pending.add(np.zeros(199, np.float32))  # frame 8 ends at 450
    assert pending.add(np.zeros(1, np.float32))


def test_bad_shapes_and_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="hop"):
        StreamingStft(64, 65)
    with pytest.raises(ValueError, match="mono"):
        StreamingStft(64, 32).push(np.zeros((10, 2), np.float32))


def test_pending_blocks_do_not_keep_the_array_a_block_is_a_view_of_alive() -> None:
    """Issue 18: the daemon's trackers get the last hop of each window as a view; holding the view held the
    whole window (and, from an ingest worker's ring of windows, rows that the ring then reuses)."""
    window = np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32)
    hop = window[-24000:]
    expected = hop.copy()
    alive = weakref.ref(window)
    pending = PendingBlocks(StreamingStft(512, 256), every=10_000)
    assert not pending.add(hop)
    del window, hop
    gc.collect()
    assert alive() is None
    np.testing.assert_array_equal(pending.take(), expected)


def test_the_hann_window_is_one_shared_read_only_array_per_length() -> None:
    """Issue 18: one analysis window per length for every stream's trackers, not one each."""
    a, b = StreamingStft(2048, 512), StreamingStft(2048, 1024)
    assert a.window is b.window is periodic_hann(2048)
    assert not a.window.flags.writeable
    assert periodic_hann(1024).size == 1024 and periodic_hann(1024) is not a.window
