"""The streaming STFT frames a stream the same whatever its block sizes, and holds blocks until an update."""

from __future__ import annotations

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
