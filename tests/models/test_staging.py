"""The batch staging buffer: aligned, reused, and no copy at all for windows that already lie in a row."""

from __future__ import annotations

import numpy as np
import pytest

from genretag.models.staging import ALIGN_BYTES, StagingBuffer, aligned_empty, consecutive_rows, is_aligned


def test_aligned_empty_is_aligned_whatever_numpy_hands_out() -> None:
    for rows, width in [(1, 1), (3, 47616), (7, 13)]:
        x = aligned_empty(rows, width)
        assert x.shape == (rows, width) and x.dtype == np.float32 and is_aligned(x)
        assert x.ctypes.data % ALIGN_BYTES == 0


def test_windows_in_consecutive_rows_are_staged_without_a_copy() -> None:
    ring = aligned_empty(10, 16)
    ring[:] = np.arange(160, dtype=np.float32).reshape(10, 16)
    staging = StagingBuffer()
    batch = staging.stage([ring[2], ring[3], ring[4]], 4)  # one padding row
    assert np.shares_memory(batch, ring) and batch.shape == (4, 16) and is_aligned(batch)
    np.testing.assert_array_equal(batch[:3], ring[2:5])


@pytest.mark.parametrize(
    ("rows_of", "rows"),
    [
        ((2, 4), 2),  # a gap
        ((3, 2), 2),  # out of order
        ((8, 9), 4),  # the padding rows would lie past the end
    ],
)
def test_other_windows_are_copied_into_the_reused_buffer(rows_of: tuple[int, int], rows: int) -> None:
    ring = aligned_empty(10, 16)
    ring[:] = np.arange(160, dtype=np.float32).reshape(10, 16)
    staging = StagingBuffer()
    given = [ring[i] for i in rows_of]
    batch = staging.stage(given, rows)
    assert not np.shares_memory(batch, ring) and is_aligned(batch) and batch.shape == (rows, 16)
    np.testing.assert_array_equal(batch[:2], np.stack(given))
    again = staging.stage([ring[1], np.array(ring[2])], 2)  # the second one is a copy, not a ring row
    assert np.shares_memory(again, batch), "the buffer is reused, not reallocated"
    np.testing.assert_array_equal(again, ring[1:3])


def test_misaligned_first_row_is_not_adopted() -> None:
    raw = aligned_empty(1, 5 * 16 + 1)[0, 1:]  # 4 bytes past an aligned address
    rows = raw.reshape(5, 16)
    assert consecutive_rows(list(rows), 5) is None
    batch = StagingBuffer().stage(list(rows), 5)
    assert is_aligned(batch) and not np.shares_memory(batch, rows)


def test_an_aligned_array_passes_through_and_a_wrong_width_is_an_error() -> None:
    staging = StagingBuffer()
    x = aligned_empty(4, 16)
    assert staging.stage(x, 4) is x
    staging.stage([np.zeros(16, np.float32)], 1)
    with pytest.raises(ValueError):
        staging.stage([np.zeros(16, np.float32), np.zeros(15, np.float32)], 2)
