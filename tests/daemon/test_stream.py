"""Per-stream windowing: streaming resampling, ring buffer, the chunks it refuses and the silence gate."""

from __future__ import annotations

import ctypes
import gc
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soxr

from genretag.daemon.protocol import DEFAULT_LIMITS, FrameError, check_chunk
from genretag.daemon.silence import SilenceGate
from genretag.daemon.sources.base import Chunk, deliver
from genretag.daemon.stream import BadAudio, PushResult, StreamWindower, Window, _mix
from genretag.pipeline.audio import INT16_SCALE, float_to_int16, int16_to_float
from genretag.pipeline.windows import WindowSpec, frame_windows

SPEC = WindowSpec(16000, 1.0, 0.5)  # small windows keep the tests fast; geometry is what matters
WIN, HOP = SPEC.window_samples, SPEC.hop_samples


def push_random_chunks(
    w: StreamWindower, x: np.ndarray, sr: int, seed: int = 0, flush: bool = True
) -> list[Window]:
    """Push ``x`` in chunks of 1..5000 frames (then flush); return every window."""
    rng = np.random.default_rng(seed)
    windows: list[Window] = []
    i = 0
    while i < len(x):
        n = int(rng.integers(1, 5001))
        windows += w.push(x[i : i + n], sr, arrival_time=float(i)).windows
        i += n
    return windows + (w.flush().windows if flush else [])


def as_served(x: np.ndarray) -> np.ndarray:
    """``x`` as the ring holds it: quantised to int16 like the training shards, back in float32."""
    return int16_to_float(float_to_int16(x))


def assert_windows_match(windows: list[Window], ref: np.ndarray) -> None:
    """Windows are the reference signal cut every hop, at exact positions, in int16 steps (half a step
    of rounding, and the streaming resampler's difference from one-shot resampling, under 1e-5)."""
    assert len(windows) == 1 + (len(ref) - WIN) // HOP
    for k, win in enumerate(windows):
        assert win.samples.dtype == np.float32 and win.samples.shape == (WIN,)
        assert win.pos == (k * HOP + WIN) / SPEC.sample_rate
        np.testing.assert_array_equal(as_served(win.samples), win.samples)
        np.testing.assert_allclose(win.samples, ref[k * HOP : k * HOP + WIN], atol=0.5 / INT16_SCALE + 1e-5)


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def test_stereo_int16_sine_in_random_chunks_matches_one_shot_resampling() -> None:
    sr = 44100
    t = np.arange(6 * sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 97 * t)], axis=1) * 0.4
    x = np.round(stereo * INT16_SCALE).astype(np.int16)
    w = StreamWindower(SPEC)
    windows = push_random_chunks(w, x, sr)
    ref = soxr.resample(x.mean(axis=1, dtype=np.float32) / INT16_SCALE, sr, SPEC.sample_rate, quality="HQ")
    assert_windows_match(windows, ref)
    assert w.frames_in == len(x) and w.windows_out == len(windows) and w.format_changes == 0


def test_float32_chirp_at_48k_matches_one_shot_resampling() -> None:
    sr = 48000
    t = np.arange(5 * sr) / sr
    x = (0.5 * np.sin(2 * np.pi * (50 * t + 700 * t**2))).astype(np.float32)  # 50 Hz -> 7 kHz
    windows = push_random_chunks(StreamWindower(SPEC), x, sr, seed=1)
    assert_windows_match(windows, soxr.resample(x, sr, SPEC.sample_rate, quality="HQ"))


def test_windows_carry_arrival_time_of_completing_chunk() -> None:
    w = StreamWindower(SPEC)
    x = tone(1.6, 16000)
    assert w.push(x[: WIN - 1], 16000, arrival_time=1.0).windows == []
    first = w.push(x[WIN - 1 : WIN + HOP], 16000, arrival_time=2.0).windows
    assert [(win.pos, win.arrival_time) for win in first] == [(1.0, 2.0), (1.5, 2.0)]


def test_rate_change_mid_stream_is_flushed_and_counted() -> None:
    a, b = tone(2.3, 44100), tone(2.9, 48000)
    w = StreamWindower(SPEC)
    windows = push_random_chunks(w, a, 44100, flush=False) + push_random_chunks(w, b, 48000, seed=1)
    assert w.format_changes == 1
    ref = np.concatenate(
        [soxr.resample(a, 44100, 16000, quality="HQ"), soxr.resample(b, 48000, 16000, quality="HQ")]
    )
    assert_windows_match(windows, ref)


def test_channel_change_is_counted_and_keeps_the_resampler_running() -> None:
    x = tone(3.0, 44100)
    w = StreamWindower(SPEC)
    windows = w.push(np.stack([x[:60000], x[:60000]], axis=1), 44100, 0.0).windows
    windows += w.push(x[60000:], 44100, 1.0).windows + w.flush().windows
    assert w.format_changes == 1
    assert_windows_match(windows, soxr.resample(x, 44100, 16000, quality="HQ"))


@pytest.mark.slow
def test_ring_buffer_memory_is_constant_over_ten_minutes_of_20ms_chunks() -> None:
    sr = 44100
    chunk = np.round(np.random.default_rng(0).normal(0, 0.1, (sr // 50, 2)) * INT16_SCALE).astype(np.int16)
    w = StreamWindower(SPEC)
    buffer, nbytes = w.buffer, w.buffer.nbytes
    for _ in range(50):  # warm up allocator caches and soxr before measuring
        w.push(chunk, sr, 0.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(50, 10 * 60 * 50):
        w.push(chunk, sr, float(i))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert w.buffer is buffer and w.buffer.nbytes == nbytes == WIN * 2  # int16
    assert grown < 64 * 1024
    assert w.windows_out == 1 + (round(w.pos * 16000) - WIN) // HOP
    assert abs(w.pos - 600.0) < 0.01


class _WindowingSink:
    """The daemon's ingest side in miniature: chunks that pass the boundary go into one windower."""

    def __init__(self, windower: StreamWindower) -> None:
        self.windower = windower
        self.windows: list[Window] = []
        self.errors: list[tuple[str, str, str]] = []

    def audio(self, chunk: Chunk) -> None:
        self.windows += self.windower.push(chunk.samples, chunk.sample_rate, chunk.arrival_time).windows

    def state(self, stream: str, state: str, reason: str = "", detail: str = "") -> None:
        pass

    def error(self, stream: str, kind: str, message: str) -> None:
        self.errors.append((stream, kind, message))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_chunk_is_refused_and_the_stream_continues_unharmed(bad: float) -> None:
    """Refused once, where it enters (``deliver``, as the file and mic sources hand chunks over)."""
    x = tone(3.0, 44100)
    clean = StreamWindower(SPEC)
    expected = clean.push(x[:70000], 44100, 0.0).windows + clean.push(x[70000:], 44100, 1.0).windows

    w = StreamWindower(SPEC)
    sink = _WindowingSink(w)
    deliver(sink, Chunk("s", x[:70000], 44100, 0.0), DEFAULT_LIMITS)
    poisoned = x[70000:71000].copy()
    poisoned[10] = bad
    deliver(sink, Chunk("s", np.stack([poisoned, poisoned], axis=1), 22050, 0.5), DEFAULT_LIMITS)
    assert [(stream, kind) for stream, kind, _ in sink.errors] == [("s", "bad_audio")]
    assert "NaN/Inf" in sink.errors[0][2]
    assert w.bad_chunks == 0 and w.format_changes == 0 and w.frames_in == 70000
    deliver(sink, Chunk("s", x[70000:], 44100, 1.0), DEFAULT_LIMITS)
    got = sink.windows
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected, strict=True):
        assert g.pos == e.pos
        np.testing.assert_array_equal(g.samples, e.samples)


@pytest.mark.parametrize(
    ("samples", "sr"),
    [
        (np.zeros(10, dtype=np.float64), 16000),
        (np.zeros((10, 2, 2), dtype=np.float32), 16000),
        (np.zeros((10, 0), dtype=np.int16), 16000),
        (np.zeros(10, dtype=np.int16), 0),
    ],
)
def test_chunks_it_cannot_mix_raise_bad_audio(samples: np.ndarray, sr: int) -> None:
    w = StreamWindower(SPEC)
    with pytest.raises(BadAudio):
        w.push(samples, sr, 0.0)
    assert w.bad_chunks == 1


@pytest.mark.parametrize(
    ("samples", "sr"),
    [
        (np.zeros(10, dtype=np.float64), 16000),
        (np.zeros((10, 2, 2), dtype=np.float32), 16000),
        (np.zeros((10, 0), dtype=np.int16), 16000),
        (np.zeros(10, dtype=np.int16), 0),
        (np.zeros(10, dtype=np.int16), 10_000_000),
    ],
)
def test_malformed_chunks_are_refused_at_the_boundary(samples: np.ndarray, sr: int) -> None:
    with pytest.raises(FrameError):
        check_chunk(samples, sr, DEFAULT_LIMITS)


def test_empty_chunks_are_fine() -> None:
    w = StreamWindower(SPEC)
    assert w.push(np.zeros(0, dtype=np.float32), 44100, 0.0) == PushResult()
    assert w.push(np.zeros((0, 2), dtype=np.int16), 8000, 0.0) == PushResult()
    assert w.format_changes == 0 and w.frames_in == 0 and w.flush() == PushResult()


def test_hop_longer_than_window_skips_samples_between_windows() -> None:
    spec = WindowSpec(16000, 0.5, 1.25)
    x = np.random.default_rng(2).normal(0, 0.1, 16000 * 6).astype(np.float32)
    w = StreamWindower(spec)
    windows = [win for i in range(0, len(x), 777) for win in w.push(x[i : i + 777], 16000, 0.0).windows]
    assert [win.pos for win in windows] == [0.5, 1.75, 3.0, 4.25, 5.5]
    for k, win in enumerate(windows):
        np.testing.assert_array_equal(win.samples, as_served(x[k * 20000 : k * 20000 + 8000]))


def program(*parts: tuple[float, float], sr: int = 44100) -> np.ndarray:
    """Concatenate (seconds, dBFS) tone segments; -inf dBFS is digital silence."""
    amp = [0.0 if np.isinf(db) else 10 ** (db / 20) * np.sqrt(2) for _, db in parts]  # RMS of a sine
    return np.concatenate([tone(s, sr, amp=a) for (s, _), a in zip(parts, amp, strict=True)])


def test_silence_gate_tone_gap_tone() -> None:
    w = StreamWindower(WindowSpec(16000, 3.0, 1.5), silence_db=-50.0, silence_hold_seconds=2.0)
    x = program((5.0, -12.0), (3.0, -np.inf), (5.0, -12.0))
    results = [w.push(x[i : i + 882], 44100, 0.0) for i in range(0, len(x), 882)]
    changes = [c for r in results for c in r.changes]
    assert [c.state for c in changes] == ["silence", "active"]
    assert changes[0].pos == pytest.approx(7.0, abs=0.15)
    assert changes[1].pos == pytest.approx(8.0, abs=0.15)
    assert w.gate.silence_seconds == pytest.approx(3.0, abs=0.2)
    assert w.gate.silence_seconds == pytest.approx(changes[1].pos - changes[0].pos + 2.0, abs=0.11)
    windows = [win for r in results for win in r.windows]
    assert [win.pos for win in windows if win.silent] == [7.5]  # only the window ending in silence
    assert len(windows) == 1 + (13 * 16000 - 48000) // 24000


def test_quiet_passage_is_not_silence() -> None:
    w = StreamWindower(SPEC, silence_db=-50.0)
    x = program((2.0, -12.0), (8.0, -40.0), (2.0, -12.0))
    changes = [c for i in range(0, len(x), 4410) for c in w.push(x[i : i + 4410], 44100, 0.0).changes]
    assert changes == [] and w.gate.silence_seconds == 0.0


def test_gate_hysteresis_needs_threshold_plus_margin_to_recover() -> None:
    gate = SilenceGate(16000, threshold_db=-50.0, hold_seconds=2.0, hysteresis_db=3.0)
    x = program((3.0, -60.0), (3.0, -49.0), (1.0, -46.0), sr=16000)
    assert [c.state for c in gate.process(x)] == ["silence", "active"]
    assert [round(c.pos, 1) for c in SilenceGate(16000).process(x)] == [2.0, 6.1]


def test_gate_is_independent_of_chunking() -> None:
    x = program((1.0, -20.0), (2.5, -np.inf), (1.0, -20.0), (2.2, -70.0), sr=16000)
    whole = SilenceGate(16000).process(x)
    gate = SilenceGate(16000)
    chunked = [c for i in range(0, len(x), 333) for c in gate.process(x[i : i + 333])]
    assert chunked == whole and [c.state for c in whole] == ["silence", "active", "silence"]


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_fast_mixdown_matches_the_pipeline_mix(channels: int, dtype: type) -> None:
    from genretag.pipeline.audio import int16_to_float, to_mono

    rng = np.random.default_rng(channels)
    x = rng.normal(0, 0.3, (16000, channels))
    x = np.round(x * 8000).astype(np.int16) if dtype is np.int16 else x.astype(np.float32)
    ref = to_mono(x) if dtype is np.float32 else int16_to_float(to_mono(x))
    ref = np.asarray(ref, dtype=np.float32).reshape(-1)
    np.testing.assert_allclose(_mix(x if channels > 1 else x[:, 0], 16000), ref, atol=1e-6)
    w = StreamWindower(WindowSpec(16000, 0.5, 0.5), silence_db=-200)
    got = np.concatenate([win.samples for win in w.push(x if channels > 1 else x[:, 0], 16000, 0.0).windows])
    np.testing.assert_allclose(got, as_served(ref[: got.size]), atol=1 / INT16_SCALE + 1e-6)  # clipped too


def test_gate_levels_are_the_pipeline_rms_dbfs() -> None:
    from genretag.daemon.silence import _level_db, _levels_db
    from genretag.pipeline.windows import rms_dbfs

    rng = np.random.default_rng(3)
    blocks = [np.zeros(1600, np.float32), np.full(1600, 1.0, np.float32)]
    blocks += [rng.normal(0, 10 ** (db / 20), 1600).astype(np.float32) for db in (-90, -50, -20, 0)]
    for block in blocks:
        assert _level_db(block) == pytest.approx(float(rms_dbfs(block)), abs=1e-4)
    np.testing.assert_allclose(_levels_db(np.stack(blocks)), rms_dbfs(np.stack(blocks)), atol=1e-4)


@pytest.mark.parametrize("hop_seconds", [0.5, 0.3, 1.25])
def test_ring_cuts_the_windows_of_the_one_framing_helper(hop_seconds: float) -> None:
    """Issue 15.5: at the model rate the ring's windows are pipeline.windows.frame_windows' windows of
    the whole signal: same starts, same samples, whatever the chunking."""
    spec = WindowSpec(16000, 1.0, hop_seconds)
    x = np.random.default_rng(3).uniform(-0.5, 0.5, 16000 * 7 + 123).astype(np.float32)
    w = StreamWindower(spec)
    windows = push_random_chunks(w, x, spec.sample_rate, seed=4)
    expected, starts = frame_windows(as_served(x), spec)
    assert len(windows) == len(expected) == w.windows_out
    np.testing.assert_array_equal(np.stack([win.samples for win in windows]), expected)
    np.testing.assert_allclose([win.pos - spec.window_seconds for win in windows], starts, atol=1e-9)
    assert push_random_chunks(StreamWindower(spec), x[: spec.window_samples - 1], spec.sample_rate) == []


@pytest.mark.parametrize("window, hop", [(50, 7), (50, 20), (50, 49), (50, 50), (50, 73), (1, 1), (2, 3)])
@pytest.mark.parametrize("chunking", ["single samples", "odd sizes", "one push"])
def test_ring_of_one_window_cuts_every_window_for_any_chunking(window: int, hop: int, chunking: str) -> None:
    """Issue 18: a ring of exactly ``window_samples`` (no spare hop) still cuts frame_windows' windows,
    whether a chunk is one sample, a few windows, or the whole signal at once."""
    spec = WindowSpec(1000, window / 1000, hop / 1000)
    assert (spec.window_samples, spec.hop_samples) == (window, hop)
    x = np.random.default_rng(window + hop).uniform(-0.5, 0.5, 20 * window + 5 * hop + 3).astype(np.float32)
    w = StreamWindower(spec)
    assert w.buffer.size == window
    sizes = {"single samples": [1] * x.size, "odd sizes": [1, window - 1, 2 * window + 1, hop, 3] * x.size}
    windows: list[Window] = []
    i = 0
    for n in sizes.get(chunking, [x.size]):
        if i >= x.size:
            break
        windows += w.push(x[i : i + n], spec.sample_rate, arrival_time=float(i)).windows
        i += n
    expected, starts = frame_windows(as_served(x), spec)
    assert len(windows) == len(expected) == w.windows_out
    np.testing.assert_array_equal(np.stack([win.samples for win in windows]), expected)
    np.testing.assert_allclose([win.pos - spec.window_seconds for win in windows], starts, atol=1e-9)
    assert w.buffer.size == window


def _resident_bytes() -> int:
    """This process's resident set after giving freed heap back (glibc's ``malloc_trim``)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and glibc's malloc_trim")
def test_per_stream_memory_is_the_ring_and_a_bounded_resampler() -> None:
    """Issue 18: 200 streams of 44.1 kHz audio in 0.5 s messages, at the bundled models' window, each hold
    its ring and under 170 KiB more (soxr's state, which grows with the largest block it is given: about
    300 KiB after 0.5 s blocks, 140 KiB after the 0.05 s blocks the windower feeds it)."""
    spec, sr, n = WindowSpec(16000, 2.976, 1.5), 44100, 200
    chunk = np.round(np.random.default_rng(5).normal(0, 0.1, sr // 2) * INT16_SCALE).astype(np.int16)
    before = _resident_bytes()
    windowers = [StreamWindower(spec) for _ in range(n)]
    cut = 0
    for i in range(12):  # 6 s: windows cut, every buffer at its steady size
        for w in windowers:
            cut += len(w.push(chunk, sr, float(i)).windows)
    per_stream = (_resident_bytes() - before) / n
    ring = windowers[0].buffer.nbytes
    assert cut == n * windowers[0].windows_out == n * 2  # the third waits for soxr's delay
    assert ring <= spec.window_samples * 4
    assert per_stream < ring + 170 * 1024, f"{per_stream / 1024:.0f} KiB a stream, ring {ring / 1024:.0f} KiB"


def test_ring_holds_int16_and_windows_are_exactly_the_training_quantisation() -> None:
    """Issue 18: the ring is int16 (half of float32), and a window is float_to_int16 then int16_to_float of
    the audio, bit for bit, including samples past full scale (clipped, as the training shards clip)."""
    spec = WindowSpec(16000, 0.5, 0.2)
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(0, 0.3, 16000), rng.uniform(-1.5, 1.5, 4000), np.full(3000, 2e-5)])
    x = x.astype(np.float32)
    w = StreamWindower(spec, silence_db=-200)
    assert w.buffer.dtype == np.int16 and w.buffer.nbytes == spec.window_samples * 2
    windows = push_random_chunks(w, x, 16000, seed=8)
    expected, _ = frame_windows(int16_to_float(float_to_int16(x)), spec)
    np.testing.assert_array_equal(np.stack([win.samples for win in windows]), expected)
    assert all(win.samples.dtype == np.float32 and win.samples.flags.c_contiguous for win in windows)
    assert np.abs(np.stack([win.samples for win in windows])).max() == 1.0
